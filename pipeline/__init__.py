"""Viola-Jones vs CNN face-detector comparison under shadow and cartoon variants."""

"""Where the workflow keeps trained models: the patterns that the Snakefile's training rules
write and that the detectors' inputs, the figures and the benchmarks read."""

from __future__ import annotations

MODELS = "results/models"


def checkpoint(name: str, folder: str = MODELS) -> str:
    """A trained CNN (``models:`` entry): PyTorch checkpoint."""
    return f"{folder}/{name}.pt"


def trained_cascade(name: str, folder: str = MODELS) -> str:
    """A trained Viola-Jones cascade (``cascades:`` entry): OpenCV XML."""
    return f"{folder}/{name}.xml"


def cascade_history(name: str, folder: str = MODELS) -> str:
    """The per-stage record of a trained cascade: JSON."""
    return f"{folder}/{name}.stages.json"

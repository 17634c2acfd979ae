"""Cartoon stylisations of grayscale photos, sized to the faces in them.

Two styles flatten shading in different ways, so that a verdict does not hang on one filter:

- ``posterise``: bilateral smoothing, grey levels quantised evenly, dark Canny outlines;
- ``lab``: OpenCV's edge-preserving (recursive) filter, then the lightness quantised evenly in
  CIELAB L* (perceptually even steps, not even grey values), no outlines.

Every spatial size (smoothing kernel and range, outline width) is given for a face of
``reference_face`` pixels and scaled by the image's median face side over it, so a 20 px face
and a 200 px face are flattened alike. An image with no face keeps the reference sizes.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from pipeline.boxes import Box

STYLES = ("posterise", "lab")


def face_scale(boxes: list[Box], reference_face: float) -> float:
    """The image's median face side (pixels) over ``reference_face``; 1 with no face."""
    if not boxes:
        return 1.0
    return float(np.median([max(b.w, b.h) for b in boxes])) / reference_face


def quantise(values: np.ndarray, levels: int) -> np.ndarray:
    """Values in [0, 255] to ``levels`` even steps, each at its step's middle (uint8)."""
    step = 256.0 / levels
    return (np.floor(values / step) * step + step / 2).clip(0, 255).astype(np.uint8)


def posterise(image: np.ndarray, scale: float, settings: dict[str, Any]) -> np.ndarray:
    """Bilateral passes (diameter 7 x scale, spatial sigma 5 x scale), even grey levels, and
    Canny outlines of grey ``outline_value``, ``scale`` pixels wide (at least 1)."""
    smooth = image.copy()
    diameter = 2 * round(3 * scale) + 1
    for _ in range(settings["smoothing_passes"]):
        smooth = cv2.bilateralFilter(smooth, d=diameter, sigmaColor=40,
                                     sigmaSpace=max(5.0 * scale, 0.5))
    flat = quantise(smooth.astype(np.float32), settings["levels"])
    edges = cv2.Canny(smooth, settings["outline_low"], settings["outline_high"])
    width = max(1, round(scale))
    if width > 1:
        edges = cv2.dilate(edges, np.ones((width, width), np.uint8))
    flat[edges > 0] = settings["outline_value"]
    return flat


def lab(image: np.ndarray, scale: float, settings: dict[str, Any]) -> np.ndarray:
    """Edge-preserving smoothing (spatial sigma ``flatten`` x the face side, range 0.4),
    ``smoothing_passes`` times, then L* quantised to ``levels`` even steps; grey out."""
    colour = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    sigma = float(np.clip(settings["flatten"] * settings["reference_face"] * scale, 1, 200))
    for _ in range(settings["smoothing_passes"]):
        colour = cv2.edgePreservingFilter(colour, flags=cv2.RECURS_FILTER, sigma_s=sigma,
                                          sigma_r=0.4)
    lightness = cv2.cvtColor(colour, cv2.COLOR_BGR2Lab)[..., 0].astype(np.float32)
    neutral = np.full(image.shape + (3,), 128, np.uint8)
    neutral[..., 0] = quantise(lightness, settings["levels"])
    return cv2.cvtColor(cv2.cvtColor(neutral, cv2.COLOR_Lab2BGR), cv2.COLOR_BGR2GRAY)


def stylise(image: np.ndarray, boxes: list[Box], settings: dict[str, Any]) -> np.ndarray:
    """``image`` (H, W) uint8 in the cartoon ``style`` of ``settings``, sized to its faces."""
    scale = face_scale(boxes, settings["reference_face"])
    if settings["style"] == "posterise":
        return posterise(image, scale, settings)
    if settings["style"] == "lab":
        return lab(image, scale, settings)
    raise ValueError(f"cartoon style {settings['style']!r}: expected one of {STYLES}")

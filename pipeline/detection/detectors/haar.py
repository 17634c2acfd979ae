"""Viola-Jones baseline: an OpenCV Haar cascade with a score for every detection."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.boxes import Box

BUNDLED_CASCADES = {
    "default": "haarcascade_frontalface_default.xml",
    "alt": "haarcascade_frontalface_alt.xml",
    "alt2": "haarcascade_frontalface_alt2.xml",
    "alt_tree": "haarcascade_frontalface_alt_tree.xml",
}


def cascade_path(cascade: str) -> Path:
    """The XML file of a bundled cascade name, or ``cascade`` itself taken as a path."""
    if cascade in BUNDLED_CASCADES:
        return Path(cv2.data.haarcascades) / BUNDLED_CASCADES[cascade]
    return Path(cascade)


def cascade_file(settings: dict[str, Any]) -> str | None:
    """The cascade XML a haar detector's ``cascade`` names by path; None for OpenCV's bundled
    cascades, for a cascade trained here, and for other kinds."""
    cascade = settings.get("cascade")
    return None if cascade is None or cascade in BUNDLED_CASCADES else cascade


def load_cascade(path: str | Path) -> cv2.CascadeClassifier:
    """The OpenCV cascade in the XML file at ``path``; ``FileNotFoundError`` or
    ``ValueError`` naming the file when it is missing or not a cascade OpenCV loads."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Haar cascade XML not found")
    try:
        classifier = cv2.CascadeClassifier(str(path))
    except (cv2.error, SystemError) as error:  # SystemError wraps an unparsable file's error
        raise ValueError(f"{path}: OpenCV could not read this file ({error})") from error
    if classifier.empty():
        raise ValueError(f"{path}: OpenCV could not load this file as a cascade")
    return classifier


@dataclass
class HaarDetector:
    """``detectMultiScale3`` with ``outputRejectLevels=True``.

    The score of a detection is OpenCV's level weight: the boosted sum of the last cascade
    stage the grouped window reached, so thresholding it traces a precision-recall curve.
    """

    classifier: cv2.CascadeClassifier
    scale_factor: float
    min_neighbors: int
    min_size: int
    equalize_hist: bool

    @classmethod
    def from_file(cls, path: str | Path, settings: dict[str, Any]) -> HaarDetector:
        """The cascade XML at ``path`` with the detector ``settings`` (scale_factor, ...)."""
        return cls(classifier=load_cascade(path), scale_factor=settings["scale_factor"],
                   min_neighbors=settings["min_neighbors"], min_size=settings["min_size"],
                   equalize_hist=settings["equalize_hist"])

    def detect(self, image: np.ndarray) -> list[Box]:
        if self.equalize_hist:
            image = cv2.equalizeHist(image)
        rects, _levels, weights = self.classifier.detectMultiScale3(
            image,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        boxes = [Box(float(x), float(y), float(w), float(h), float(s))
                 for (x, y, w, h), s in zip(np.asarray(rects).reshape(-1, 4), weights,
                                            strict=True)]
        # OpenCV's threads return rects in a varying order: sort, so runs give equal files.
        return sorted(boxes, key=lambda b: (-b.score, b.x, b.y, b.w, b.h))

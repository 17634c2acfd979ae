"""Detector registry and the detection stage that runs one detector over one manifest."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from pipeline.boxes import Box, ImageRecord, Manifest
from pipeline.io import read_gray

LOG = logging.getLogger(__name__)


class Detector(Protocol):
    """Finds faces in a grayscale uint8 image (H, W); boxes carry a score, higher = surer."""

    def detect(self, image: np.ndarray) -> list[Box]: ...


def _haar(settings: dict[str, Any], model: str | None) -> Detector:
    from pipeline.detectors.haar import HaarDetector

    return HaarDetector.from_settings(settings)


def _cnn(settings: dict[str, Any], model: str | None) -> Detector:
    from pipeline.detectors.cnn import CnnDetector

    if model is None:
        raise ValueError("the cnn detector needs a trained model checkpoint (--model)")
    return CnnDetector.from_settings(settings, model)


# Detector kind -> factory(settings, model checkpoint path or None).
DETECTORS: dict[str, Callable[[dict[str, Any], str | None], Detector]] = {
    "haar": _haar,
    "cnn": _cnn,
}


def build_detector(settings: dict[str, Any], model: str | None = None) -> Detector:
    return DETECTORS[settings["kind"]](settings, model)


def run_detector(detector: Detector, source: Manifest, name: str) -> Manifest:
    """Detect on every image of ``source``; each record keeps its wall time in seconds."""
    records = []
    for record in tqdm(source.images, desc=f"detect {name}", unit="img"):
        image = read_gray(source.image_path(record))
        start = time.perf_counter()
        boxes = detector.detect(image)
        seconds = time.perf_counter() - start
        records.append(ImageRecord(record.file, record.width, record.height, boxes,
                                   seconds=seconds))
    result = Manifest("detections", source.root, records, meta={**source.meta, "detector": name})
    total = sum(r.seconds or 0.0 for r in records)
    LOG.info("%s: %d boxes on %d images, %.1f ms per image", name, result.n_boxes,
             len(records), 1000 * total / max(len(records), 1))
    return result


def detect_to_file(settings: dict[str, Any], manifest_path: str | Path, out_path: str | Path,
                   name: str, model: str | None = None) -> Manifest:
    source = Manifest.load(manifest_path)
    LOG.info("detector %s (%s) on %s: %d images", name, settings["kind"], manifest_path,
             len(source.images))
    result = run_detector(build_detector(settings, model), source, name)
    result.meta["detector_settings"] = settings
    result.save(out_path)
    return result

"""Variant registry: the same test images with the same boxes, altered.

A variant is a function ``(image, boxes, settings, rng) -> image`` on grayscale uint8 images
(H, W). A new variant kind needs the function registered in :data:`VARIANTS`, its kind in
``config/schema.yaml`` (the ``variants`` kind list and an ``if``/``then`` block with its
settings; ``tests/test_registries.py`` checks the two agree) and a config entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline import paths
from pipeline.boxes import Box, ImageRecord, Manifest
from pipeline.io import (
    atomic_folder,
    check_output_folder,
    mark_output_folder,
    progress,
    read_gray,
    write_image,
)

LOG = logging.getLogger(__name__)

VariantFunction = Callable[[np.ndarray, list[Box], dict[str, Any], np.random.Generator],
                           np.ndarray]


def original(image: np.ndarray, boxes: list[Box], settings: dict[str, Any],
             rng: np.random.Generator) -> np.ndarray:
    """The image unchanged."""
    return image.copy()


def shadow_mask(shape: tuple[int, int], boxes: list[Box], softness: float, offset: float,
                rng: np.random.Generator) -> np.ndarray:
    """Shadow opacity in [0, 1], shape ``shape``; zero outside every face box.

    Per face: a straight shadow edge at a random angle passing within ``offset`` x face size of
    the face centre, drawn as a logistic ramp ``softness`` x face size wide; the shadow fades in
    over the outer 10% of the box so that it has no hard rim at the box border.
    """
    height, width = shape
    mask = np.zeros(shape, np.float32)
    for box in boxes:
        size = max(box.w, box.h)
        angle = rng.uniform(0.0, 2.0 * np.pi)
        shift = rng.uniform(-offset, offset) * size
        x1, y1 = max(int(np.floor(box.x)), 0), max(int(np.floor(box.y)), 0)
        x2 = min(int(np.ceil(box.x + box.w)), width)
        y2 = min(int(np.ceil(box.y + box.h)), height)
        if x2 <= x1 or y2 <= y1:
            continue
        ys, xs = np.mgrid[y1:y2, x1:x2].astype(np.float32) + 0.5
        cx, cy = box.x + box.w / 2, box.y + box.h / 2
        signed = (xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle) - shift
        half_plane = 1.0 / (1.0 + np.exp(-signed / (softness * size)))
        fade = 0.1 * size
        inside_x = np.clip(np.minimum(xs - box.x, box.x + box.w - xs) / fade, 0, 1)
        inside_y = np.clip(np.minimum(ys - box.y, box.y + box.h - ys) / fade, 0, 1)
        mask[y1:y2, x1:x2] = np.maximum(mask[y1:y2, x1:x2], half_plane * inside_x * inside_y)
    return mask


def shadow(image: np.ndarray, boxes: list[Box], settings: dict[str, Any],
           rng: np.random.Generator) -> np.ndarray:
    """A soft-edged cast shadow across part of each face: pixels x (1 - strength x mask)."""
    mask = shadow_mask(image.shape, boxes, settings["softness"], settings["offset"], rng)
    shaded = image.astype(np.float32) * (1.0 - settings["strength"] * mask)
    return np.clip(shaded.round(), 0, 255).astype(np.uint8)


def cartoon(image: np.ndarray, boxes: list[Box], settings: dict[str, Any],
            rng: np.random.Generator) -> np.ndarray:
    """Flat shading: bilateral smoothing, intensity quantisation and dark Canny outlines."""
    smooth = image.copy()
    for _ in range(settings["smoothing_passes"]):
        smooth = cv2.bilateralFilter(smooth, d=7, sigmaColor=40, sigmaSpace=5)
    levels = settings["levels"]
    step = 256.0 / levels
    flat = (np.floor(smooth / step) * step + step / 2).clip(0, 255).astype(np.uint8)
    edges = cv2.Canny(smooth, settings["outline_low"], settings["outline_high"])
    flat[edges > 0] = settings["outline_value"]
    return flat


# The variant every other variant of a dataset is measured against: "share of AP kept" is a
# detector's AP on a variant over its AP on this one, and box calibrations are fitted on it.
BASELINE_VARIANT = "original"

# Variant kind -> function.
VARIANTS: dict[str, VariantFunction] = {
    "original": original,
    "shadow": shadow,
    "cartoon": cartoon,
}


def variant_instances(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """All variant names the workflow makes, with their settings.

    The configured variants plus the shadow sweep: ``<variant>_sweep_<strength>`` for each
    strength, the shadow settings with only the strength changed (same seed, same geometry).
    """
    instances = {name: dict(settings) for name, settings in config["variants"].items()}
    sweep = config["shadow_sweep"]
    for strength in sweep["strengths"]:
        settings = dict(config["variants"][sweep["variant"]], strength=float(strength))
        instances[sweep_name(sweep["variant"], strength)] = settings
    return instances


def sweep_name(variant: str, strength: float) -> str:
    return f"{variant}_sweep_{strength:.2f}"


def make_variant(source: Manifest, settings: dict[str, Any], out_dir: str | Path,
                 name: str) -> Manifest:
    """Apply the variant to every image of ``source``; write images and ``manifest.json``.

    Images are written under ``out_dir/images`` as :func:`pipeline.paths.image_name` names
    them, whatever path a record names; the record keeps its source name in the attribute
    ``source_file``.
    """
    from pipeline.defaults import with_defaults

    settings = with_defaults(settings, "variants.*")
    out_dir = check_output_folder(out_dir)  # never a folder of the user's
    function = VARIANTS[settings["kind"]]
    records = []
    with atomic_folder(out_dir / "images") as images:  # no partial folder if an image fails
        for index, record in enumerate(progress(source.images, desc=f"variant {name}",
                                                unit="img")):
            # One generator per image: a variant of image k does not depend on the others.
            rng = np.random.default_rng([settings["seed"], index])
            image = read_gray(source.image_path(record))
            altered = function(image, record.boxes, settings, rng)
            file = paths.image_name(index, record.file)  # never a path from the input
            write_image(images / file, altered)
            records.append(ImageRecord(file, record.width, record.height, list(record.boxes),
                                       attributes={**record.attributes,
                                                   "source_file": record.file}))
    mark_output_folder(out_dir)
    manifest = Manifest("ground_truth", out_dir / "images", records,
                        meta={**source.meta, "variant": name, "variant_settings": settings})
    manifest.save(out_dir / "manifest.json")
    LOG.info("variant %s: %d images written to %s", name, len(records), out_dir)
    return manifest

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

import numpy as np

from pipeline import paths
from pipeline.boxes import Box, ImageRecord, Manifest
from pipeline.data.shadows import cast_shadow
from pipeline.data.stylise import stylise
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


def shadow(image: np.ndarray, boxes: list[Box], settings: dict[str, Any],
           rng: np.random.Generator) -> np.ndarray:
    """A cast shadow of the configured ``family`` across part of each face and past it
    (:mod:`pipeline.data.shadows`): pixels x (1 - strength x mask)."""
    return cast_shadow(image, boxes, settings["strength"], settings["softness"],
                       settings["offset"], rng, settings["family"], settings["reach"])


def cartoon(image: np.ndarray, boxes: list[Box], settings: dict[str, Any],
            rng: np.random.Generator) -> np.ndarray:
    """Flat shading in the configured ``style``, sized to the faces
    (:mod:`pipeline.data.stylise`)."""
    return stylise(image, boxes, settings)


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

"""What an arm's two detectors do differently besides their features, and the check that every
such difference is declared in the configuration (``report.arms.<arm>.differences``).

An arm pairs a trained cascade and a CNN "trained on the same data". A reader attributes any
verdict to each difference between the two trainers or detectors before crediting learned
features, so each difference below must be named, with the reason it is kept, and the report
lists them under the verdict table. An aspect declared but not different is logged as a
warning: the report lists only the differences that are there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

LOG = logging.getLogger(__name__)

# Aspect -> what it is, in the report's words.
ASPECTS = {
    "copies_per_face": "augmented copies of each training face",
    "positives_redrawn": "positives drawn anew each training round",
    "scene_blended_faces": "extra positives blended into face-free scenes (feathered rim)",
    "illumination": "illumination augmentation of the positives",
    "low_resolution": "low-resolution augmentation of the positives",
    "window": "training window side (pixels)",
    "mining_scenes": "face-free scenes scanned per round or stage",
    "negative_budget": "random and mined negatives",
    "smallest_face": "smallest face searched (pixels)",
    "pyramid_step": "scale step between pyramid levels",
    "post_processing": "how overlapping detections are merged and scored",
    "box_regression": "box offsets regressed by the detector",
}


@dataclass(frozen=True)
class Difference:
    """One aspect in which an arm's CNN side and cascade side differ, in words."""

    aspect: str
    cnn: str
    haar: str


def _tuned(config: dict[str, Any], detector: str, key: str, value: Any) -> str:
    """A detector setting in words, or the grid it is chosen from on tune data (naming the
    detector: two sides tuned from one grid may still choose differently)."""
    grid = config.get("tuning", {}).get(detector, {}).get("grid", {})
    if key in grid:
        return f"chosen for {detector} on tune data from {', '.join(map(str, grid[key]))}"
    return str(value)


def arm_aspects(config: dict[str, Any], arm: dict[str, str]) -> dict[str, tuple[Any, Any]]:
    """Every aspect of :data:`ASPECTS` for the arm's CNN side and cascade side: settings as
    configured (compared as values) or words. The CNN side is the detector's verifying model
    (``model``), the cascade its ``trained_cascade``."""
    cnn_detector, haar_detector = config["detectors"][arm["cnn"]], config["detectors"][arm["haar"]]
    cnn = config["models"][cnn_detector["model"]]
    haar = config["cascades"][haar_detector["trained_cascade"]]
    rounds = cnn["hard_negative_rounds"]
    blended = cnn.get("box_regression")
    redrawn = rounds > 0 and cnn.get("redraw_positives", True)
    cnn_scene = blended["faces_per_face"] if blended and blended["faces_per_face"] else None
    haar_scene = (haar.get("scene_faces") or {}).get("faces_per_face")
    cnn_nms = _tuned(config, arm["cnn"], "nms_method", cnn_detector["nms_method"])
    haar_grouping = _tuned(config, arm["haar"], "min_neighbors", haar_detector["min_neighbors"])
    return {
        "copies_per_face": (cnn["positives_per_face"], haar["positives_per_face"]),
        "positives_redrawn": ("yes" if redrawn else "no", "no"),
        "scene_blended_faces": (f"{cnn_scene} per face" if cnn_scene else None,
                                f"{haar_scene} per face" if haar_scene else None),
        "illumination": (cnn.get("illumination"), haar.get("illumination")),
        "low_resolution": (cnn.get("low_resolution"), haar.get("low_resolution")),
        "window": (cnn["window"], haar["window"]),
        "mining_scenes": (cnn["mining_scenes"], haar["mining_scenes"]),
        "negative_budget": (
            f"{cnn['negatives_per_round']} random, then {rounds} x "
            f"{cnn['hard_negatives_per_round']} mined (pyramid step "
            f"{cnn['mining_scale_factor']})",
            f"{haar['negatives_per_stage']} per stage (random, then mined; pyramid step "
            f"{haar['mining_scale_factor']}), up to {haar['max_stages']} stages"),
        "smallest_face": (_tuned(config, arm["cnn"], "min_size", cnn_detector["min_size"]),
                          _tuned(config, arm["haar"], "min_size", haar_detector["min_size"])),
        "pyramid_step": (_tuned(config, arm["cnn"], "scale_factor", cnn_detector["scale_factor"]),
                         _tuned(config, arm["haar"], "scale_factor",
                                haar_detector["scale_factor"])),
        "post_processing": (f"NMS ({cnn_nms}), classifier probability as score",
                            f"OpenCV neighbour grouping (min_neighbors {haar_grouping}), "
                            "the last stage's boosted sum as score"),
        "box_regression": ("yes" if blended else "no", "no"),
    }


def words(value: Any) -> str:
    """A setting in the report's words: ``none``, ``key value, ...`` for a block, else str."""
    if value is None:
        return "none"
    if isinstance(value, dict):
        return ", ".join(f"{key} {value[key]}" for key in sorted(value))
    return str(value)


def configured_models(config: dict[str, Any], arm: dict[str, str]) -> bool:
    """Whether the arm's CNN model and trained cascade are configured (else nothing to
    compare)."""
    cnn, haar = config["detectors"][arm["cnn"]], config["detectors"][arm["haar"]]
    return (cnn.get("model") in config.get("models", {})
            and haar.get("trained_cascade") in config.get("cascades", {}))


def arm_differences(config: dict[str, Any], arm: dict[str, str]) -> list[Difference]:
    """The aspects in which the arm's two sides differ."""
    return [Difference(aspect, words(cnn), words(haar))
            for aspect, (cnn, haar) in arm_aspects(config, arm).items() if cnn != haar]


def declarations(arm: dict[str, Any]) -> dict[str, str]:
    """The arm's declared differences; an overlay withdraws one with ``null``."""
    return {k: v for k, v in arm.get("differences", {}).items() if v is not None}


def declaration_errors(config: dict[str, Any]) -> list[str]:
    """Messages for each arm's undeclared differences; a declaration whose aspect no longer
    differs (an overlay made the two sides equal) is logged as a warning."""
    messages = []
    for name, arm in config["report"]["arms"].items():
        if not configured_models(config, arm):
            continue  # a missing model is reported where detectors are checked
        declared = declarations(arm)
        actual = {d.aspect: d for d in arm_differences(config, arm)}
        for aspect, difference in actual.items():
            if aspect not in declared:
                messages.append(
                    f"report.arms.{name}.differences: '{aspect}' ({ASPECTS[aspect]}) differs "
                    f"(CNN: {difference.cnn}; cascade: {difference.haar}) and is not declared: "
                    "make the two sides equal, or declare it with the reason it is kept")
        for aspect in declared:
            if aspect not in actual:  # harmless (the report lists actual differences only)
                LOG.warning("report.arms.%s.differences.%s: declared, but both sides are the "
                            "same (an overlay may withdraw it with null)", name, aspect)
    return messages

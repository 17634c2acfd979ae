"""Operating points chosen on tune data: every combination of a detector's ``tuning.grid`` is
run on the tune sets' baseline images and scored by AP; the best (the first of equals, in grid
order) is the choice that detection uses everywhere, test sets included.

The tune sets are the evaluated sets with role ``tune`` (:mod:`pipeline.data.roles`), never a
test set, so no verdict is computed on images that chose anything. A tuned detector is tuned
once per training draw (each seed's model has its own operating point: the choice is part of
the training recipe).
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from pipeline.boxes import Manifest
from pipeline.io import read_json

LOG = logging.getLogger(__name__)


def candidates(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in grid order (the first key varies slowest)."""
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def tune_sets(config: dict[str, Any], detector: str) -> list[str]:
    """The tune sets a detector's operating point is chosen on: its ``tuning.datasets``, or
    (also for a detector without a ``tuning:`` entry) every evaluated set with role ``tune``."""
    from pipeline.data.roles import dataset_role, evaluated_datasets

    entry = config.get("tuning", {}).get(detector, {})
    return list(entry.get("datasets") or [name for name in evaluated_datasets(config)
                                          if dataset_role(config["datasets"][name]) == "tune"])


def tuning_conflicts(config: dict[str, Any]) -> list[str]:
    """What is wrong with the ``tuning:`` section: an unknown detector, a set that is not an
    evaluated tune set (or is box-calibrated: its calibration would have to be refitted per
    candidate), no tune set at all, or a candidate the detector's schema refuses."""
    from pipeline.config_limits import StrictValidator
    from pipeline.data.roles import dataset_role, evaluated_datasets
    from pipeline.defaults import section_schema

    messages = []
    validator = StrictValidator(section_schema("detectors.*"))
    for name, entry in config.get("tuning", {}).items():
        where = f"tuning.{name}"
        if name not in config["detectors"]:
            messages.append(f"{where}: not a detector ({', '.join(config['detectors'])})")
            continue
        sets = tune_sets(config, name)
        if not sets:
            messages.append(f"{where}: no evaluated dataset has role tune to choose it on")
        for dataset in sets:
            settings = config["datasets"].get(dataset)
            if dataset not in evaluated_datasets(config) or settings is None:
                messages.append(f"{where}.datasets: '{dataset}' is not an evaluated dataset")
            elif dataset_role(settings) != "tune":
                messages.append(f"{where}.datasets: '{dataset}' has role "
                                f"{dataset_role(settings)}; only tune sets may choose anything")
            elif settings.get("calibration"):
                messages.append(f"{where}.datasets: '{dataset}' is box-calibrated; tune on a "
                                "set without calibration")
        for candidate in candidates(entry["grid"]):
            error = jsonschema.exceptions.best_match(
                validator.iter_errors({**config["detectors"][name], **candidate}))
            if error is not None:
                messages.append(f"{where}.grid {candidate}: {error.message}")
    return messages


def choose(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """The candidate with the highest score (mean AP over the tune sets); the first of equals
    in grid order. A candidate whose score is undefined never wins."""
    defined = [row for row in scores if row["score"] is not None]
    if not defined:
        raise ValueError("no candidate has a defined AP on the tune sets (no faces?)")
    return max(defined, key=lambda row: (row["score"], -scores.index(row)))


def tune_operating_point(settings: dict[str, Any], grid: dict[str, list[Any]],
                         truths: dict[str, str | Path], models: list[str],
                         evaluation: dict[str, Any], name: str,
                         search_min_size: float | None = None) -> dict[str, Any]:
    """Run every candidate of ``grid`` (merged over the detector's ``settings``) on each tune
    set's baseline manifest (``truths`` {set: manifest}) and score it: AP per set and its mean.
    Returns the record written to ``results/tuning/``: every candidate's scores and the
    choice."""
    from pipeline.detection.detectors import detect_manifest
    from pipeline.evaluation.metrics import evaluate_as_configured

    loaded = {dataset: Manifest.load(path) for dataset, path in truths.items()}
    rows = []
    for candidate in candidates(grid):
        ap = {}
        for dataset, truth in loaded.items():
            found, _, _ = detect_manifest({**settings, **candidate}, truth,
                                          f"{name} {candidate} on {dataset}", models)
            ap[dataset] = evaluate_as_configured(truth, found, evaluation,
                                                 search_min_size)["average_precision"]
        defined = [v for v in ap.values() if v is not None]
        score = float(np.mean(defined)) if len(defined) == len(ap) else None
        rows.append({"settings": candidate, "average_precision": ap, "score": score})
        LOG.info("%s %s: AP %s (mean %s)", name, candidate, ap, score)
    best = choose(rows)
    LOG.info("%s: chose %s (mean tune AP %.4f of %d candidates)", name, best["settings"],
             best["score"], len(rows))
    return {"detector": name, "tune_sets": list(truths), "metric": "average_precision",
            "candidates": rows, "choice": best["settings"], "score": best["score"]}


def chosen_settings(settings: dict[str, Any], tuning_path: str | Path | None) -> dict[str, Any]:
    """A detector's settings with the operating point written by the tuning stage."""
    if tuning_path is None:
        return settings
    record = read_json(tuning_path)
    if "choice" not in record:
        raise ValueError(f"{tuning_path}: no 'choice' (not a tuning record)")
    return {**settings, **record["choice"]}

"""Runs of one detector on one variant, one per training seed: grouping and their mean.

A detector that needs trained models is run once per training seed (``seeds:``); one that
trains nothing is run once (``seed`` None) and stands for every seed. The point estimate of a
detector is the mean over its seeds (the expected result of its training recipe); the
bootstrap resamples the seeds beside the images (:mod:`pipeline.evaluation.bootstrap`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

RunKey = tuple[str, str, str]  # detector, dataset, variant
# Per-run numbers averaged over seeds (None when undefined for any seed).
MEAN_FIELDS = ("average_precision", "average_precision_coco101", "max_recall",
               "false_positives_per_image", "n_detections")


def by_run(runs: list[dict[str, Any]]) -> dict[RunKey, list[dict[str, Any]]]:
    """Metrics dicts grouped by (detector, dataset, variant), each group in seed order.
    ``ValueError`` for a repeated seed, or for a detector whose seeds differ between its runs
    (every run of a detector must hold the same training draws)."""
    grouped: dict[RunKey, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        grouped[run["detector"], run["dataset"], run["variant"]].append(run)
    seeds_of: dict[str, tuple[Any, ...]] = {}
    for key, group in grouped.items():
        group.sort(key=lambda r: -1 if seed_of(r) is None else seed_of(r))
        seeds = tuple(seed_of(r) for r in group)
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{'/'.join(key)}: training seed repeated among its runs {seeds}")
        if None in seeds and len(seeds) > 1:
            raise ValueError(f"{'/'.join(key)}: an untrained run beside trained ones {seeds}")
        known = seeds_of.setdefault(key[0], seeds)
        if known != seeds:
            raise ValueError(f"{key[0]}: runs with different training seeds ({known} and "
                             f"{seeds} on {key[1]}/{key[2]})")
    return dict(grouped)


def seed_of(run: dict[str, Any]) -> int | None:
    """The training seed of a metrics dict (None: trains nothing, or not labelled yet)."""
    return run.get("seed")


def _mean(values: list[Any]) -> Any:
    if any(v is None for v in values):
        return None
    return float(np.mean(values))


def seed_mean(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One detector's runs on one variant (one per seed) as one: the first run's record with
    AP, detection rates (per false-positive count and per image group) and counts replaced by
    their means over the seeds; its per-image matches and curve stay the first seed's."""
    merged = dict(runs[0])
    if len(runs) == 1:
        return merged
    for name in MEAN_FIELDS:
        if name in merged:
            merged[name] = _mean([r[name] for r in runs])
    merged["detection_rate_at_fp"] = {
        n: _mean([r["detection_rate_at_fp"][n] for r in runs])
        for n in runs[0]["detection_rate_at_fp"]}
    if runs[0].get("groups"):
        merged["groups"] = {
            g: {**group, "average_precision": _mean([r["groups"][g]["average_precision"]
                                                     for r in runs]),
                "detection_rate_at_fp": {n: _mean([r["groups"][g]["detection_rate_at_fp"][n]
                                                   for r in runs])
                                         for n in group["detection_rate_at_fp"]}}
            for g, group in runs[0]["groups"].items()}
    return merged


def per_seed(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each seed's point estimates of one detector on one variant: {seed, average_precision}."""
    return [{"seed": seed_of(r), "average_precision": r["average_precision"]} for r in runs]

"""Collect per-run metrics files into one table (CSV for people, JSON for later stages)."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.variants import BASELINE_VARIANT
from pipeline.evaluation.contracts import read_checked, stamped
from pipeline.evaluation.metrics import relative_ap
from pipeline.evaluation.seeds import by_run, per_seed, seed_mean
from pipeline.io import atomic_open, read_json, write_json

LOG = logging.getLogger(__name__)

COLUMNS = ["detector", "dataset", "variant", "n_seeds", "n_images", "n_faces", "n_detections",
           "average_precision", "ap_per_seed", "relative_ap", "max_recall", "ms_per_image_mean",
           "ms_per_image_median"]
LABELS = ("detector", "seed", "dataset", "variant")


def summarise(metric_files: list[str], timing_files: list[str], out_csv: str | Path,
              out_json: str | Path) -> list[dict]:
    """One row per detector x dataset x variant, over its training seeds (one run per seed,
    :mod:`pipeline.evaluation.seeds`): AP, detection rates, counts and timing are means over
    the seeds, ``seeds`` lists each seed's AP, and the curve is the first seed's
    (``curve_seed``); ``relative_ap``: the share of AP kept
    (:func:`pipeline.evaluation.metrics.relative_ap`, against the baseline variant; empty if
    undefined).

    Rows hold the metrics (without per-image data) and the timing of the same detector x
    dataset x variant; the JSON keeps the curves for the figures.
    """
    timings = {tuple(t.get(k) for k in LABELS): t for t in map(read_json, timing_files)}
    labelled = []
    for path in metric_files:
        run = read_checked("metrics", path)
        run.pop("per_image", None)
        for key in ("format", "format_version"):
            del run[key]
        timing = timings.get(tuple(run[k] for k in LABELS))
        if timing is None:
            raise ValueError(f"{path}: no timing file for {[run[k] for k in LABELS]}")
        run["ms_per_image_mean"] = timing["ms_per_image_mean"]
        run["ms_per_image_median"] = timing["ms_per_image_median"]
        labelled.append(run)
    runs = []
    for group in by_run(labelled).values():
        run = seed_mean(group)
        for key in ("ms_per_image_mean", "ms_per_image_median"):
            run[key] = float(np.mean([r[key] for r in group]))
        run["curve_seed"] = run.pop("seed")
        run["seeds"] = per_seed(group)
        run["n_seeds"] = len(group)
        run["ap_per_seed"] = " ".join(_cell(s["average_precision"]) or "-" for s in run["seeds"])
        runs.append(run)
    baseline = {(r["detector"], r["dataset"]): r["average_precision"]
                for r in runs if r["variant"] == BASELINE_VARIANT}
    for run in runs:
        run["relative_ap"] = relative_ap(run["average_precision"],
                                         baseline.get((run["detector"], run["dataset"])))
    runs.sort(key=lambda r: (r["dataset"], r["variant"], r["detector"]))
    fp_keys = sorted({k for r in runs for k in r["detection_rate_at_fp"]}, key=int)
    with atomic_open(out_csv, "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS + [f"detection_rate_at_{k}_fp" for k in fp_keys])
        for run in runs:
            writer.writerow([_cell(run.get(c)) for c in COLUMNS]
                            + [_cell(run["detection_rate_at_fp"].get(k)) for k in fp_keys])
    write_json(out_json, stamped("summary", {"runs": runs,
                                             "fp_points": [int(k) for k in fp_keys]}))
    LOG.info("summarised %d runs into %s", len(runs), out_csv)
    return runs


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    return "" if value is None else value

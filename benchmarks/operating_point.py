r"""Sweep a detector's operating-point settings on a development set: AP, detection rate at
given numbers of false positives, highest recall and ms/image for every combination of the
values given (prints measured numbers; not a test).

Run after the workflow has built the test set's variant images and trained the detector's
models, e.g. on the MIT+CMU development images of the research configuration:

    python benchmarks/operating_point.py --configfile config/research.yaml \
        --data-root /path/to/data --dataset mitcmu --detector cnn \
        --grid nms_method=greedy,weighted,soft nms_iou=0.2,0.3,0.4

Each ``--grid KEY=V1,V2,...`` names a key of the detector's settings (values are read as
YAML: ``0.3``, ``soft``); every combination is run on every image of the variant and scored
with the configuration's ``evaluation`` settings, exactly as the workflow's evaluate stage
scores it. A test set that is box-calibrated on another set is refused: its calibration
would have to be refitted for every combination, which the workflow does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

from pipeline import paths
from pipeline.boxes import Manifest
from pipeline.config import (
    ConfigError,
    deep_merge,
    load_config,
    load_yaml,
    validate_config,
)
from pipeline.detection.detectors import detect_manifest, model_files
from pipeline.evaluation.metrics import evaluate_as_configured
from pipeline.tuning.operating_point import candidates


def parse_grid(items: list[str]) -> dict[str, list]:
    """``["nms_iou=0.2,0.3", ...]`` -> ``{"nms_iou": [0.2, 0.3], ...}`` (values as YAML)."""
    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ValueError(f"--grid {item!r}: expected KEY=VALUE[,VALUE...]")
        grid[key] = [yaml.safe_load(value) for value in values.split(",")]
    return grid


def sweep(config: dict, dataset: str, variant: str, detector: str, grid: dict[str, list],
          models: str) -> list[dict]:
    """One row per combination of ``grid``: its settings and measured numbers."""
    if config["datasets"][dataset].get("calibration"):
        raise ValueError(f"{dataset} is box-calibrated on "
                         f"{config['datasets'][dataset]['calibration']}: sweep a set without "
                         "calibration, or run the workflow for each setting")
    manifest_path = Path(paths.variant_manifest(dataset, variant))
    if not manifest_path.is_file():
        raise ValueError(f"{manifest_path}: no such manifest; build it first "
                         f"(snakemake {manifest_path})")
    truth = Manifest.load(manifest_path)
    evaluation = config["evaluation"]
    rows = []
    for changed in candidates(grid):
        settings = {**config["detectors"][detector], **changed}
        validate_config(deep_merge(config, {"detectors": {detector: settings}}),
                        f"--grid {changed}")
        model_paths = model_files(settings, models)
        found, seconds, _ = detect_manifest(settings, truth, detector, model_paths)
        metrics = evaluate_as_configured(truth, found, evaluation, settings.get("min_size"))
        rows.append({**changed, "ap": metrics["average_precision"],
                     **{f"dr@{n}": rate for n, rate in metrics["detection_rate_at_fp"].items()},
                     "max_recall": metrics["max_recall"],
                     "ms": 1000 * float(np.median(list(seconds.values())))})
    return rows


def print_table(rows: list[dict]) -> None:
    columns = list(rows[0])
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c])
                         for c in columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", nargs="+", default=["config/default.yaml"],
                        help="configurations merged over config/default.yaml, in order")
    parser.add_argument("--data-root", help="the research data folder ({data_root})")
    parser.add_argument("--dataset", required=True, help="a built test set")
    parser.add_argument("--variant", default="original")
    parser.add_argument("--detector", required=True, help="a detector name of the config")
    parser.add_argument("--grid", nargs="+", default=[], metavar="KEY=V1,V2",
                        help="detector settings to sweep (default: the configured ones only)")
    parser.add_argument("--models", default="results/models/seed0",
                        help="trained models of one seed (default results/models/seed0)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)
    try:
        config = load_config(args.configfile[0], args.data_root)
        for path in args.configfile[1:]:
            config = deep_merge(config, load_yaml(path))
        validate_config(config, " + ".join(args.configfile))
        if args.detector not in config["detectors"]:
            raise ValueError(f"no detector {args.detector!r} in the configuration")
        if args.dataset not in config["datasets"]:
            raise ValueError(f"no dataset {args.dataset!r} in the configuration")
        rows = sweep(config, args.dataset, args.variant, args.detector,
                     parse_grid(args.grid), args.models)
    except (ValueError, ConfigError) as error:
        sys.exit(f"operating_point: {error}")
    print(f"\n{args.detector} on {args.dataset}/{args.variant}, {args.threads} thread(s), "
          f"criterion {config['evaluation'].get('criterion', 'iou')}:")
    print_table(rows)


if __name__ == "__main__":
    main()

r"""Does a box calibration carry over to images it was not fitted on? Cross-validates the
workflow's box calibration on one calibration set and prints held-out AP (measured numbers;
not a test).

The workflow fits each detector draw's calibration on its whole fitting set and reports the AP
there, where it was chosen. Here the set's units (``--unit``: subjects, or images) are dealt
into ``--folds`` folds in sorted order; each fold's detections are calibrated by a fit on the
other folds, and the held-out detections of all folds are scored together as one AP. Columns:
the boxes as drawn, the paired medians (the calibration before issue 29), and the search
(:func:`pipeline.evaluation.calibration.fit_calibration`) for each ``--min-gain`` (as in the
workflow, a move must also gain half of one face's share, 0.5 / faces in the fitting folds,
so ``--min-gain 0`` is that share alone).

Run in a workflow folder after its detections on the set exist, e.g. on the research
configuration's Yale B development subjects and cartoon calibration frames:

    python benchmarks/calibration_holdout.py --configfile config/research.yaml \
        --data-root /path/to/data --dataset yaleb_dev --unit subject --folds 3
    python benchmarks/calibration_holdout.py --configfile config/research.yaml \
        --data-root /path/to/data --dataset louie_calibration --folds 2

``--score-only 'light_angle<=20'`` scores only the held-out images whose attribute passes (the
fits still use every image of the other folds).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from pipeline import paths
from pipeline.boxes import ImageRecord, Manifest
from pipeline.config import ConfigError, load_config
from pipeline.data.roles import split_key
from pipeline.data.variants import BASELINE_VARIANT
from pipeline.evaluation.calibration import (
    MIN_GAIN,
    BoxCalibration,
    calibrated,
    fit_calibration,
    median_calibration,
)
from pipeline.evaluation.metrics import (
    Criterion,
    average_precision,
    match_manifests,
    pooled_curve,
)
from pipeline.io import progress


def folds_of(truth: Manifest, unit: str, folds: int) -> list[int]:
    """Each image's fold: its unit's position among the sorted units, modulo ``folds``
    (at least 2). Sorted neighbours (a show's consecutive frames) land in different folds, which
    flatters a calibration; a coarser ``unit`` (subject) avoids that."""
    if folds < 2:
        raise ValueError(f"--folds {folds}: at least 2 (one to fit on, one to score)")
    keys = [split_key(record, unit) for record in truth.images]
    position = {key: i for i, key in enumerate(sorted(set(keys)))}
    if len(position) < folds:
        raise ValueError(f"{len(position)} {unit} units cannot make {folds} folds")
    return [position[key] % folds for key in keys]


def subset(manifest: Manifest, files: set[str]) -> Manifest:
    """The manifest's images whose file is in ``files``."""
    return replace(manifest, images=[r for r in manifest.images if r.file in files])


Fit = Callable[[Manifest, Manifest], BoxCalibration]


def held_out_ap(truth: Manifest, detections: Manifest, fold: list[int], fit: Fit,
                scored: set[str], criterion: Criterion, min_face_size: float | None) -> float:
    """AP over the ``scored`` images of every fold's detections calibrated by
    ``fit(truth, detections)`` (-> BoxCalibration) on the other folds."""
    held: list[ImageRecord] = []
    for k in sorted(set(fold)):
        inside = {r.file for r, f in zip(truth.images, fold, strict=True) if f == k}
        outside = {r.file for r in truth.images} - inside
        calibration = fit(subset(truth, outside), subset(detections, outside))
        held += calibrated(calibration, subset(detections, inside & scored)).images
    matches = match_manifests(subset(truth, scored), replace(detections, images=held),
                              criterion, min_face_size)
    return average_precision(pooled_curve(matches))


def parse_filter(text: str | None) -> Callable[[ImageRecord], bool]:
    """``attr<=value`` -> a predicate on an image record (None: every image)."""
    if text is None:
        return lambda record: True
    attribute, sep, value = text.partition("<=")
    if not sep:
        raise ValueError(f"--score-only {text!r}: expected ATTRIBUTE<=NUMBER")
    return lambda record: float(record.attributes.get(attribute, float("inf"))) <= float(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", default="config/default.yaml")
    parser.add_argument("--data-root", help="the research data folder ({data_root})")
    parser.add_argument("--dataset", required=True, help="a calibration (fitting) set")
    parser.add_argument("--unit", default="image", help="what a fold holds: image, subject")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--min-gain", type=float, nargs="+", default=[MIN_GAIN])
    parser.add_argument("--score-only", metavar="ATTRIBUTE<=NUMBER",
                        help="score only these images, e.g. 'light_angle<=20' (quoted)")
    parser.add_argument("--detectors", nargs="*", help="default: every one with detections")
    args = parser.parse_args(argv)
    try:
        evaluation = load_config(args.configfile, args.data_root)["evaluation"]
        criterion, min_face = Criterion.from_settings(evaluation), evaluation.get("min_face_size")
        truth_path = Path(paths.variant_manifest(args.dataset, BASELINE_VARIANT))
        if not truth_path.is_file():
            raise ValueError(f"{truth_path}: no such manifest; run the workflow first")
        truth = Manifest.load(truth_path)
        fold = folds_of(truth, args.unit, args.folds)
        keep = parse_filter(args.score_only)
        scored = {r.file for r in truth.images if keep(r)}
        if not scored:
            raise ValueError(f"--score-only {args.score_only}: no image of {truth_path} passes")
        found = sorted(Path().glob(paths.detections("*", "*", args.dataset, BASELINE_VARIANT)))
        found = [p for p in found if not args.detectors or p.parts[-4] in args.detectors]
        if not found:
            raise ValueError(f"no detections on {args.dataset} under results/detections/")
    except (ValueError, ConfigError) as error:
        sys.exit(f"calibration_holdout: {error}")

    fits: dict[str, Fit] = {
        "as drawn": lambda t, d: BoxCalibration(),
        "medians": lambda t, d: median_calibration(t, d, min_face_size=min_face)[0]
        or BoxCalibration()}
    for gain in args.min_gain:
        fits[f"search >= {gain:g}"] = (lambda t, d, gain=gain: fit_calibration(
            t, d, criterion, min_face, min_gain=gain).chosen)
    print(f"\nheld-out AP on {args.dataset} ({len(set(fold))} folds by {args.unit}; "
          f"{len(scored)} of {len(truth.images)} images scored"
          + (f", {args.score_only}" if args.score_only else "") + ")")
    print("detector | draw | " + " | ".join(fits))
    for path in progress(found, desc="detector draws"):
        try:
            detections = Manifest.load(path)
            row = " | ".join(
                f"{held_out_ap(truth, detections, fold, fit, scored, criterion, min_face):.3f}"
                for fit in fits.values())
        except ValueError as error:   # a fold without a face to fit on, a file lacking images
            row = f"not scored: {error}"
        print(f"{path.parts[-4]} | {path.parts[-3]} | {row}", flush=True)


if __name__ == "__main__":
    main()

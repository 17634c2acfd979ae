"""The command line of the evaluation stage (rules/evaluation.smk): calibrate, evaluate,
statistics, summarise.

Run as ``python -m pipeline <command>`` or ``python -m pipeline.evaluation <command>`` (what the
rules call); ``--help`` on each command lists its arguments.
"""

from __future__ import annotations

import argparse
import logging

from pipeline.commands import add_command, add_draw, add_stage, entry_point, stage_settings
from pipeline.evaluation.statistics import statistics_settings

LOG = logging.getLogger("pipeline.evaluation")


def cmd_calibrate(args: argparse.Namespace) -> None:
    from pipeline.boxes import Manifest
    from pipeline.evaluation.calibration import fit_calibration
    from pipeline.evaluation.metrics import Criterion
    from pipeline.io import write_json

    settings = stage_settings(args)
    truth = Manifest.load(args.truth)
    try:
        fit = fit_calibration(truth, Manifest.load(args.detections),
                              Criterion.from_settings(settings), settings.get("min_face_size"))
    except ValueError as error:
        raise SystemExit(f"{args.truth}: {error}") from None
    LOG.info("%s calibrated on %s (%d candidates, starting from the %s): AP there %.4f -> "
             "%.4f; %s", args.detector, args.dataset, len(fit.candidates), fit.start,
             fit.average_precision_uncalibrated, fit.average_precision, fit.chosen)
    if max(candidate["average_precision"] for candidate in fit.candidates) == 0:
        LOG.warning("%s: no detection lies on a face of %s under any candidate; its boxes are "
                    "left as drawn", args.detector, args.truth)
    write_json(args.out, {"detector": args.detector, "seed": args.seed, "fitted_on": args.dataset,
                          **fit.chosen.to_dict(), "start": fit.start,
                          "n_paired_faces": fit.n_paired_faces,
                          "average_precision_uncalibrated": fit.average_precision_uncalibrated,
                          "average_precision": fit.average_precision,
                          "candidates": fit.candidates})


def cmd_evaluate(args: argparse.Namespace) -> None:
    from pipeline.boxes import Manifest
    from pipeline.evaluation.calibration import BoxCalibration, calibrated
    from pipeline.evaluation.contracts import stamped
    from pipeline.evaluation.metrics import evaluate_as_configured
    from pipeline.io import read_json, write_json

    settings = stage_settings(args)
    truth, detections = Manifest.load(args.truth), Manifest.load(args.detections)
    fitted = read_json(args.calibration) if args.calibration else None
    if fitted is not None:
        detections = calibrated(BoxCalibration.from_dict(fitted), detections)
    try:
        metrics = evaluate_as_configured(truth, detections, settings, args.search_min_size,
                                         args.resample_unit)
    except ValueError as error:
        raise SystemExit(f"{args.truth}: {error}") from None
    metrics = {
        "detector": args.detector,
        "seed": args.seed,
        "dataset": args.dataset,
        "variant": args.variant,
        "box_calibration": fitted and {k: v for k, v in fitted.items() if k != "candidates"},
        **metrics,
    }
    LOG.info(
        "%s on %s/%s: AP %s, %d faces scored (%d too small, excluded), %d detections, "
        "%.2f false positives per image",
        args.detector,
        args.dataset,
        args.variant,
        metrics["average_precision"],
        metrics["n_faces"],
        metrics["n_faces_excluded"],
        metrics["n_detections"],
        metrics["false_positives_per_image"],
    )
    if metrics["n_faces_below_search_size"]:
        LOG.warning(
            "%s/%s: %d faces are smaller than %s px, the smallest face every compared "
            "detector searches%s",
            args.dataset,
            args.variant,
            metrics["n_faces_below_search_size"],
            args.search_min_size,
            ""
            if settings["min_face_size"]
            else "; they count as misses (evaluation.min_face_size excludes them)",
        )
    write_json(args.out, stamped("metrics", metrics))


def cmd_statistics(args: argparse.Namespace) -> None:
    from pipeline.evaluation.contracts import read_checked, stamped
    from pipeline.evaluation.statistics import analyse
    from pipeline.io import write_json

    metrics = [read_checked("metrics", path) for path in args.metrics]
    write_json(args.out, stamped("statistics", analyse(metrics, stage_settings(args))))


def cmd_summarise(args: argparse.Namespace) -> None:
    from pipeline.evaluation.summary import summarise

    summarise(args.metrics, args.timings, args.out_csv, args.out_json)


def register(commands: argparse._SubParsersAction) -> None:
    """Add this stage's commands to ``commands``."""
    sub = add_stage(commands, "calibrate", cmd_calibrate,
                    "fit a detector's box calibration for AP under the evaluation's criterion",
                    "evaluation")
    sub.add_argument("--truth", required=True, help="ground truth of a training/dev set")
    sub.add_argument("--detections", required=True, help="the detector's boxes on it")
    sub.add_argument("--detector", required=True)
    add_draw(sub)
    sub.add_argument("--dataset", required=True, help="name of the fitting set")
    sub.add_argument("--out", required=True)
    sub = add_stage(
        commands,
        "evaluate",
        cmd_evaluate,
        "match detections to ground truth, write metrics",
        "evaluation",
    )
    sub.add_argument("--truth", required=True)
    sub.add_argument("--detections", required=True)
    sub.add_argument("--detector", required=True)
    add_draw(sub)
    sub.add_argument("--dataset", required=True)
    sub.add_argument("--variant", required=True)
    sub.add_argument("--calibration", help="box calibration JSON to apply to the detections")
    sub.add_argument(
        "--search-min-size",
        type=float,
        help="the smallest face (pixels) every compared detector searches; "
        "smaller faces are counted and reported",
    )
    sub.add_argument(
        "--resample-unit",
        default="image",
        help="what the bootstrap resamples: image (default), or an image "
        "attribute such as subject (the dataset's resample_unit)",
    )
    sub.add_argument("--out", required=True)
    sub = add_stage(
        commands, "statistics", cmd_statistics, "bootstrap intervals and paired detector tests",
        compose=statistics_settings)
    sub.add_argument("--metrics", nargs="+", required=True)
    sub.add_argument("--out", required=True)
    sub = add_command(commands, "summarise", cmd_summarise, "collect metrics files into one table")
    sub.add_argument("--metrics", nargs="+", required=True)
    sub.add_argument("--timings", nargs="+", required=True, help="merged timing files")
    sub.add_argument("--out-csv", required=True)
    sub.add_argument("--out-json", required=True)


main = entry_point("python -m pipeline.evaluation", register)

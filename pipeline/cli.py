"""Command-line entry points, one sub-command per workflow stage.

Each stage takes its settings either as a JSON object (``--settings '{...}'``, what the
Snakefile passes) or as a section of a YAML config file (``--config config/default.yaml
--section detectors.haar``), so every stage runs and tests without Snakemake::

    python -m pipeline build-dataset --config config/default.yaml --section datasets.embedded \\
        --out results/data/embedded
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from typing import Any

from pipeline.io import setup_logging

LOG = logging.getLogger("pipeline.cli")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The stage settings from ``--settings`` JSON or ``--config`` + ``--section``, checked
    against the stage's part of the schema (``args.schema_section``, where it has one).

    ``--config`` reads a file as Snakemake does: an overlay such as ``config/research.yaml``
    is merged over the default, and ``{data_root}`` is replaced by ``--data-root``.
    """
    from pipeline.config import ConfigError, load_config, validate_section

    try:
        if args.settings is not None:
            try:
                settings = json.loads(args.settings)
            except json.JSONDecodeError as error:
                raise SystemExit(f"--settings: not valid JSON ({error})") from error
            source = "--settings"
        elif args.config is None or args.section is None:
            raise SystemExit("give --settings JSON, or --config FILE with --section KEY.PATH")
        else:
            settings = load_config(args.config, args.data_root)
            for key in args.section.split("."):
                if not isinstance(settings, dict) or key not in settings:
                    raise SystemExit(f"{args.config}: no section '{args.section}' "
                                     f"(missing '{key}')")
                settings = settings[key]
            source = f"{args.config}: {args.section}"
        if args.schema_section:
            validate_section(settings, args.schema_section, source)
    except ConfigError as error:
        raise SystemExit(str(error)) from None
    return settings


def _set_threads(threads: int) -> None:
    import cv2
    import torch

    cv2.setNumThreads(threads)
    torch.set_num_threads(threads)


def cmd_build_dataset(args: argparse.Namespace) -> None:
    from pipeline.datasets import build_dataset

    build_dataset(_settings(args), args.out)


def cmd_make_variant(args: argparse.Namespace) -> None:
    from pipeline.boxes import Manifest
    from pipeline.variants import make_variant

    make_variant(Manifest.load(args.manifest), _settings(args), args.out, args.name)


def cmd_train_cnn(args: argparse.Namespace) -> None:
    from pipeline.training import train_cnn

    _set_threads(args.threads)
    train_cnn(_settings(args), args.train, args.backgrounds, args.out)


def cmd_train_haar(args: argparse.Namespace) -> None:
    from pipeline.cascade_training import train_cascade
    from pipeline.cnn import resolve_device
    from pipeline.io import write_json

    _set_threads(args.threads)
    settings = _settings(args)
    device = str(resolve_device(settings["device"]))
    history = train_cascade(settings, args.train, args.backgrounds, args.out, device)
    write_json(args.history, {"settings": settings, "device": device, "stages": history,
                              "train_seconds": sum(row["seconds"] for row in history)})


def cmd_detect(args: argparse.Namespace) -> None:
    from pipeline.detectors import detect_to_file

    _set_threads(args.threads)
    detect_to_file(_settings(args), args.manifest, args.out, args.timing, args.name, args.model,
                   args.shard, args.shards)


def cmd_merge_detections(args: argparse.Namespace) -> None:
    from pipeline.detectors import merge_shards

    labels = {"detector": args.detector, "dataset": args.dataset, "variant": args.variant}
    merge_shards(args.manifest, args.detections, args.timings, args.out, args.timing_out,
                 labels)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from pipeline.boxes import Manifest
    from pipeline.calibration import BoxCalibration
    from pipeline.io import read_json, write_json
    from pipeline.metrics import Criterion, evaluate

    settings = _settings(args)
    truth, detections = Manifest.load(args.truth), Manifest.load(args.detections)
    fitted = read_json(args.calibration) if args.calibration else None
    if fitted is not None:
        BoxCalibration.from_dict(fitted).apply_to(detections)
    try:
        metrics = evaluate(truth, detections, Criterion.from_settings(settings),
                           settings["false_positive_points"], settings["min_face_size"],
                           args.search_min_size, args.resample_unit)
    except ValueError as error:
        raise SystemExit(f"{args.truth}: {error}") from None
    metrics = {"detector": args.detector, "dataset": args.dataset, "variant": args.variant,
               "box_calibration": fitted, **metrics}
    LOG.info("%s on %s/%s: AP %s, %d faces scored (%d too small, excluded), %d detections, "
             "%.2f false positives per image", args.detector, args.dataset, args.variant,
             metrics["average_precision"], metrics["n_faces"], metrics["n_faces_excluded"],
             metrics["n_detections"], metrics["false_positives_per_image"])
    if metrics["n_faces_below_search_size"]:
        LOG.warning("%s/%s: %d faces are smaller than %s px, the smallest face every compared "
                    "detector searches%s", args.dataset, args.variant,
                    metrics["n_faces_below_search_size"], args.search_min_size,
                    "" if settings["min_face_size"] else
                    "; they count as misses (evaluation.min_face_size excludes them)")
    write_json(args.out, metrics)


def cmd_calibrate(args: argparse.Namespace) -> None:
    from pipeline.boxes import Manifest
    from pipeline.calibration import fit_calibration
    from pipeline.io import write_json

    truth = Manifest.load(args.truth)
    fitted = fit_calibration(truth, Manifest.load(args.detections))
    LOG.info("%s calibrated on %s: %s", args.detector, args.truth, fitted)
    write_json(args.out, {"detector": args.detector, "fitted_on": args.dataset,
                          **fitted.to_dict()})


def cmd_complexity(args: argparse.Namespace) -> None:
    from pipeline.complexity import complexity
    from pipeline.io import write_json

    write_json(args.out, complexity(args.architectures or None))


def cmd_summarise(args: argparse.Namespace) -> None:
    from pipeline.summary import summarise

    summarise(args.metrics, args.timings, args.out_csv, args.out_json)


def cmd_statistics(args: argparse.Namespace) -> None:
    from pipeline.io import read_json, write_json
    from pipeline.statistics import analyse

    write_json(args.out, analyse([read_json(p) for p in args.metrics], _settings(args)))


def cmd_figures(args: argparse.Namespace) -> None:
    from pipeline.figures import make_figures

    make_figures(_settings(args), args.summary, args.statistics, args.out_dir)


def cmd_report(args: argparse.Namespace) -> None:
    from pipeline.report import write_report

    write_report(_settings(args), args.summary, args.statistics, args.figures, args.out,
                 args.complexity, args.cascades)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Any, help_text: str, schema_section: str | None = None
            ) -> argparse.ArgumentParser:
        """A stage sub-command; its settings are checked against ``schema_section``."""
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler, schema_section=schema_section)
        group = sub.add_argument_group("settings (one of)")
        group.add_argument("--settings", help="stage settings as a JSON object")
        group.add_argument("--config", help="a YAML config file: the default, or an overlay "
                                            "merged over it as snakemake --configfile does")
        group.add_argument("--section", help="dotted key of the section in --config")
        group.add_argument("--data-root", help="with --config: the folder that {data_root} "
                                               "in dataset paths stands for")
        sub.add_argument("--log", help="also write the log to this file")
        return sub

    sub = add("build-dataset", cmd_build_dataset, "build a dataset's test and training files",
              "datasets.*")
    sub.add_argument("--out", required=True, help="output folder")

    sub = add("make-variant", cmd_make_variant, "alter every test image (same boxes)",
              "variants.*")
    sub.add_argument("--manifest", required=True, help="ground-truth manifest JSON")
    sub.add_argument("--name", required=True, help="variant name, for logs and metadata")
    sub.add_argument("--out", required=True, help="output folder")

    sub = add("train-cnn", cmd_train_cnn, "train the CNN face classifier", "models.*")
    sub.add_argument("--train", required=True, help="train.npz with faces and nonfaces")
    sub.add_argument("--backgrounds", required=True, help="manifest of face-free scenes")
    sub.add_argument("--out", required=True, help="checkpoint file to write")
    sub.add_argument("--threads", type=int, default=2)

    sub = add("train-haar", cmd_train_haar, "train a Viola-Jones cascade, write OpenCV XML",
              "cascades.*")
    sub.add_argument("--train", required=True, help="train.npz with faces and nonfaces")
    sub.add_argument("--backgrounds", required=True, help="manifest of face-free scenes")
    sub.add_argument("--out", required=True, help="cascade XML to write")
    sub.add_argument("--history", required=True, help="per-stage training record (JSON)")
    sub.add_argument("--threads", type=int, default=2)

    sub = add("detect", cmd_detect, "run one detector over a manifest's images",
              "detectors.*")
    sub.add_argument("--manifest", required=True)
    sub.add_argument("--name", required=True, help="detector name")
    sub.add_argument("--model", nargs="*", default=[],
                     help="model checkpoints, for detectors that need them (cnn_cascade: the "
                          "proposal model, the verifier, then the output model if it has one)")
    sub.add_argument("--out", required=True, help="detections JSON to write")
    sub.add_argument("--timing", required=True, help="per-image seconds JSON to write")
    sub.add_argument("--shard", type=int, default=0, help="which shard of the images (0-based)")
    sub.add_argument("--shards", type=int, default=1, help="number of shards")
    sub.add_argument("--threads", type=int, default=1)

    sub = commands.add_parser("merge-detections", help="join detection shards into one file")
    sub.set_defaults(handler=cmd_merge_detections)
    sub.add_argument("--manifest", required=True, help="the manifest the shards came from")
    sub.add_argument("--detections", nargs="+", required=True)
    sub.add_argument("--timings", nargs="+", required=True)
    sub.add_argument("--detector", required=True)
    sub.add_argument("--dataset", required=True)
    sub.add_argument("--variant", required=True)
    sub.add_argument("--out", required=True)
    sub.add_argument("--timing-out", required=True)
    sub.add_argument("--log")

    sub = add("evaluate", cmd_evaluate, "match detections to ground truth, write metrics",
              "evaluation")
    sub.add_argument("--truth", required=True)
    sub.add_argument("--detections", required=True)
    sub.add_argument("--detector", required=True)
    sub.add_argument("--dataset", required=True)
    sub.add_argument("--variant", required=True)
    sub.add_argument("--calibration", help="box calibration JSON to apply to the detections")
    sub.add_argument("--search-min-size", type=float,
                     help="the smallest face (pixels) every compared detector searches; "
                          "smaller faces are counted and reported")
    sub.add_argument("--resample-unit", default="image",
                     help="what the bootstrap resamples: image (default), or an image "
                          "attribute such as subject (the dataset's resample_unit)")
    sub.add_argument("--out", required=True)

    sub = commands.add_parser("calibrate", help="fit a detector's box calibration")
    sub.set_defaults(handler=cmd_calibrate)
    sub.add_argument("--truth", required=True, help="ground truth of a training/dev set")
    sub.add_argument("--detections", required=True, help="the detector's boxes on it")
    sub.add_argument("--detector", required=True)
    sub.add_argument("--dataset", required=True, help="name of the fitting set")
    sub.add_argument("--out", required=True)
    sub.add_argument("--log")

    sub = commands.add_parser("complexity", help="per-layer table of the CNN architectures")
    sub.set_defaults(handler=cmd_complexity)
    sub.add_argument("--architectures", nargs="*", help="default: all registered")
    sub.add_argument("--out", required=True)
    sub.add_argument("--log")

    sub = commands.add_parser("summarise", help="collect metrics files into one table")
    sub.set_defaults(handler=cmd_summarise)
    sub.add_argument("--metrics", nargs="+", required=True)
    sub.add_argument("--timings", nargs="+", required=True, help="merged timing files")
    sub.add_argument("--out-csv", required=True)
    sub.add_argument("--out-json", required=True)
    sub.add_argument("--log")

    sub = add("statistics", cmd_statistics, "bootstrap intervals and paired detector tests")
    sub.add_argument("--metrics", nargs="+", required=True)
    sub.add_argument("--out", required=True)

    sub = add("figures", cmd_figures, "draw the comparison figures")
    sub.add_argument("--summary", required=True, help="summary.json")
    sub.add_argument("--statistics", required=True, help="statistics.json")
    sub.add_argument("--out-dir", required=True)

    sub = add("report", cmd_report, "write the self-contained HTML report")
    sub.add_argument("--summary", required=True, help="summary.json")
    sub.add_argument("--statistics", required=True, help="statistics.json")
    sub.add_argument("--complexity", help="complexity.json (per-layer network table)")
    sub.add_argument("--cascades", nargs="*", default=[],
                     help="training records of trained cascades (<name>.stages.json)")
    sub.add_argument("--figures", nargs="+", required=True)
    sub.add_argument("--out", required=True)
    return parser


def _exit_on_terminate(signum: int, _frame: Any) -> None:
    """SIGTERM (a scheduler or Snakemake stopping the job) raises ``SystemExit``, so that
    half-written outputs are removed on the way out (:func:`pipeline.io.atomic_open`,
    :func:`pipeline.io.atomic_folder`), as after Ctrl-C; by default it ends the process at once
    and leaves hidden temporary files behind."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _exit_on_terminate)
    args = build_parser().parse_args(argv)
    setup_logging(args.log)
    LOG.info("%s: %s", args.command, " ".join(sys.argv[1:] if argv is None else argv))
    args.handler(args)


if __name__ == "__main__":
    main()

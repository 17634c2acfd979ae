"""The command line of the detection stage (rules/detection.smk): detect, merge-detections.

Run as ``python -m pipeline <command>`` or ``python -m pipeline.detection <command>`` (what the
rules call); ``--help`` on each command lists its arguments.
"""

from __future__ import annotations

import argparse

from pipeline.commands import (
    add_command,
    add_draw,
    add_stage,
    entry_point,
    set_threads,
    stage_settings,
)


def cmd_detect(args: argparse.Namespace) -> None:
    from pipeline.detection.detectors import detect_to_file
    from pipeline.tuning.operating_point import chosen_settings

    set_threads(args.threads)
    detect_to_file(
        chosen_settings(stage_settings(args), args.tuning),
        args.manifest,
        args.out,
        args.timing,
        args.name,
        args.model,
        args.shard,
        args.shards,
    )


def cmd_merge_detections(args: argparse.Namespace) -> None:
    from pipeline.detection.detectors import merge_shards

    labels = {"detector": args.detector, "seed": args.seed, "dataset": args.dataset,
              "variant": args.variant}
    merge_shards(args.manifest, args.detections, args.timings, args.out, args.timing_out, labels)


def register(commands: argparse._SubParsersAction) -> None:
    """Add this stage's commands to ``commands``."""
    sub = add_stage(
        commands, "detect", cmd_detect, "run one detector over a manifest's images", "detectors.*"
    )
    sub.add_argument("--manifest", required=True)
    sub.add_argument("--name", required=True, help="detector name")
    sub.add_argument(
        "--model",
        nargs="*",
        default=[],
        help="model checkpoints, for detectors that need them (cnn_cascade: the "
        "proposal model, the verifier, then the output model if it has one)",
    )
    sub.add_argument("--out", required=True, help="detections JSON to write")
    sub.add_argument("--timing", required=True, help="per-image seconds JSON to write")
    sub.add_argument("--shard", type=int, default=0, help="which shard of the images (0-based)")
    sub.add_argument("--shards", type=int, default=1, help="number of shards")
    sub.add_argument("--threads", type=int, default=1)
    sub.add_argument("--tuning", help="the operating point chosen on tune sets (tuning record "
                     "JSON), merged over the settings")
    sub = add_command(
        commands, "merge-detections", cmd_merge_detections, "join detection shards into one file"
    )
    sub.add_argument("--manifest", required=True, help="the manifest the shards came from")
    sub.add_argument("--detections", nargs="+", required=True)
    sub.add_argument("--timings", nargs="+", required=True)
    sub.add_argument("--detector", required=True)
    add_draw(sub)
    sub.add_argument("--dataset", required=True)
    sub.add_argument("--variant", required=True)
    sub.add_argument("--out", required=True)
    sub.add_argument("--timing-out", required=True)


main = entry_point("python -m pipeline.detection", register)

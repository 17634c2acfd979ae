"""The command line of the data stage (rules/data.smk): build-dataset, make-variant.

Run as ``python -m pipeline <command>`` or ``python -m pipeline.data <command>`` (what the
rules call); ``--help`` on each command lists its arguments.
"""

from __future__ import annotations

import argparse

from pipeline.commands import add_stage, entry_point, stage_settings


def cmd_build_dataset(args: argparse.Namespace) -> None:
    from pipeline.data.datasets import build_dataset

    build_dataset(stage_settings(args), args.out)


def cmd_make_variant(args: argparse.Namespace) -> None:
    from pipeline.boxes import Manifest
    from pipeline.data.variants import make_variant

    make_variant(Manifest.load(args.manifest), stage_settings(args), args.out, args.name)


def register(commands: argparse._SubParsersAction) -> None:
    """Add this stage's commands to ``commands``."""
    sub = add_stage(
        commands,
        "build-dataset",
        cmd_build_dataset,
        "build a dataset's test and training files",
        "datasets.*",
    )
    sub.add_argument("--out", required=True, help="output folder")
    sub = add_stage(
        commands,
        "make-variant",
        cmd_make_variant,
        "alter every test image (same boxes)",
        "variants.*",
    )
    sub.add_argument("--manifest", required=True, help="ground-truth manifest JSON")
    sub.add_argument("--name", required=True, help="variant name, for logs and metadata")
    sub.add_argument("--out", required=True, help="output folder")


main = entry_point("python -m pipeline.data", register)

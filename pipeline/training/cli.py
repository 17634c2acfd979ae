"""The command line of the training stage (rules/training.smk): train-cnn, train-haar.

Run as ``python -m pipeline <command>`` or ``python -m pipeline.training <command>`` (what the
rules call); ``--help`` on each command lists its arguments.
"""

from __future__ import annotations

import argparse
from typing import Any

from pipeline.commands import add_stage, entry_point, set_threads, stage_settings


def seeded_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The model's settings with the training seed of this draw (``--seed``)."""
    return {**stage_settings(args), "seed": args.seed}


def cmd_train_cnn(args: argparse.Namespace) -> None:
    from pipeline.training.train_cnn import train_cnn

    set_threads(args.threads)
    train_cnn(seeded_settings(args), args.train, args.backgrounds, args.out)


def cmd_train_haar(args: argparse.Namespace) -> None:
    from pipeline.io import write_json
    from pipeline.models.cnn import resolve_device
    from pipeline.training.train_cascade import train_cascade

    set_threads(args.threads)
    settings = seeded_settings(args)
    device = str(resolve_device(settings["device"]))
    history = train_cascade(settings, args.train, args.backgrounds, args.out, device)
    write_json(
        args.history,
        {
            "settings": settings,
            "device": device,
            "stages": history,
            "train_seconds": sum(row["seconds"] for row in history),
        },
    )


def add_seed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0,
                        help="training seed of this draw (one of the config's seeds:)")


def register(commands: argparse._SubParsersAction) -> None:
    """Add this stage's commands to ``commands``."""
    sub = add_stage(
        commands, "train-cnn", cmd_train_cnn, "train the CNN face classifier", "models.*"
    )
    sub.add_argument("--train", required=True, help="train.npz with faces and nonfaces")
    sub.add_argument("--backgrounds", required=True, help="manifest of face-free scenes")
    sub.add_argument("--out", required=True, help="checkpoint file to write")
    add_seed(sub)
    sub.add_argument("--threads", type=int, default=2)
    sub = add_stage(
        commands,
        "train-haar",
        cmd_train_haar,
        "train a Viola-Jones cascade, write OpenCV XML",
        "cascades.*",
    )
    sub.add_argument("--train", required=True, help="train.npz with faces and nonfaces")
    sub.add_argument("--backgrounds", required=True, help="manifest of face-free scenes")
    sub.add_argument("--out", required=True, help="cascade XML to write")
    sub.add_argument("--history", required=True, help="per-stage training record (JSON)")
    add_seed(sub)
    sub.add_argument("--threads", type=int, default=2)


main = entry_point("python -m pipeline.training", register)

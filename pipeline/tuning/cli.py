"""The command line of the tuning stage (rules/tuning.smk): tune-operating-point.

Run as ``python -m pipeline <command>`` or ``python -m pipeline.tuning <command>`` (what the
rules call); ``--help`` lists its arguments.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipeline.commands import add_draw, add_stage, entry_point, set_threads, stage_settings


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error})") from None


def _named_path(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SET=MANIFEST")
    return name, path


def cmd_tune_operating_point(args: argparse.Namespace) -> None:
    from pipeline.io import write_json
    from pipeline.tuning.operating_point import tune_operating_point

    set_threads(args.threads)
    record = tune_operating_point(stage_settings(args), args.grid, dict(args.truth), args.model,
                                  args.evaluation, args.name, args.search_min_size)
    write_json(args.out, {**record, "seed": args.seed})


def register(commands: argparse._SubParsersAction) -> None:
    """Add this stage's commands to ``commands``."""
    sub = add_stage(commands, "tune-operating-point", cmd_tune_operating_point,
                    "choose a detector's operating point on tune sets (every candidate scored)",
                    "detectors.*")
    sub.add_argument("--name", required=True, help="detector name")
    add_draw(sub)
    sub.add_argument("--grid", type=_json, required=True,
                     help='candidate values per setting, JSON: {"min_neighbors": [0, 1, 2]}')
    sub.add_argument("--truth", type=_named_path, nargs="+", required=True,
                     metavar="SET=MANIFEST", help="each tune set's baseline-variant manifest")
    sub.add_argument("--model", nargs="*", default=[], help="the draw's trained model files")
    sub.add_argument("--evaluation", type=_json, required=True,
                     help="the evaluation section, JSON (how the candidates are scored)")
    sub.add_argument("--search-min-size", type=float,
                     help="the smallest face every compared detector searches (pixels)")
    sub.add_argument("--out", required=True, help="tuning record JSON to write")
    sub.add_argument("--threads", type=int, default=1)


main = entry_point("python -m pipeline.tuning", register)

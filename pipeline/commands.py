"""What every stage command shares: settings from ``--settings`` JSON or a config section,
thread limits, the common arguments, and the entry point (logging, SIGTERM).

Each stage subpackage's ``cli`` module registers its commands with :func:`add_stage` /
:func:`add_command`; :mod:`pipeline.cli` gathers them all under ``python -m pipeline``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from pipeline.io import setup_logging

LOG = logging.getLogger("pipeline.cli")

Register = Callable[[argparse._SubParsersAction], None]


def stage_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The stage settings from ``--settings`` JSON or ``--config`` + ``--section``, checked
    against the stage's part of the schema (``args.schema_section``, where it has one).

    ``--config`` reads a file as Snakemake does: an overlay such as ``config/research.yaml``
    is merged over the default, and ``{data_root}`` is replaced by ``--data-root``. A stage
    whose settings gather several sections (``args.compose``, the function the Snakefile
    builds them with) takes ``--config`` alone.
    """
    from pipeline.config import ConfigError, load_config, validate_section

    try:
        if args.settings is not None:
            try:
                settings = json.loads(args.settings)
            except json.JSONDecodeError as error:
                raise SystemExit(f"--settings: not valid JSON ({error})") from error
            source = "--settings"
        elif args.config is not None and getattr(args, "compose", None) is not None:
            if args.section is not None:
                raise SystemExit(f"--section: the {args.command} settings gather several "
                                 "sections of the config; give --config alone")
            settings = args.compose(load_config(args.config, args.data_root))
            source = f"{args.config}: the {args.command} settings"
        elif args.config is None or args.section is None:
            raise SystemExit("give --settings JSON, or --config FILE with --section KEY.PATH")
        else:
            settings = load_config(args.config, args.data_root)
            for key in args.section.split("."):
                if not isinstance(settings, dict) or key not in settings:
                    raise SystemExit(
                        f"{args.config}: no section '{args.section}' (missing '{key}')"
                    )
                settings = settings[key]
            source = f"{args.config}: {args.section}"
        if args.schema_section:
            validate_section(settings, args.schema_section, source)
    except ConfigError as error:
        raise SystemExit(str(error)) from None
    return settings


def training_threads(setting: int | str, cores: int | None) -> int:
    """Threads of one training job: ``setting``, or for ``auto`` half of the ``cores`` that
    Snakemake was given (at most this machine's CPUs; at least 1), so that two training jobs
    share the machine side by side.

    CNN weights are bit-identical only for the same thread count, so ``auto`` ties them to
    ``--cores``; a configuration that must reproduce weights across machines names a number.
    """
    if setting == "auto":  # capped at this machine's CPUs (-j unlimited gives a huge count)
        return max(1, min(int(cores or 1), os.cpu_count() or 1) // 2)
    return int(setting)


def set_threads(threads: int) -> None:
    import cv2
    import torch

    cv2.setNumThreads(threads)
    torch.set_num_threads(threads)


def add_command(
    commands: argparse._SubParsersAction, name: str, handler: Any, help_text: str
) -> argparse.ArgumentParser:
    """A sub-command that takes no stage settings (only ``--log`` in common)."""
    sub = commands.add_parser(name, help=help_text, description=help_text)
    sub.set_defaults(handler=handler, schema_section=None)
    sub.add_argument("--log", help="also write the log to this file")
    return sub


def add_stage(
    commands: argparse._SubParsersAction,
    name: str,
    handler: Any,
    help_text: str,
    schema_section: str | None = None,
    compose: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> argparse.ArgumentParser:
    """A stage sub-command with settings; they are checked against ``schema_section``.
    ``compose`` builds them from a whole config where they gather several sections."""
    sub = add_command(commands, name, handler, help_text)
    sub.set_defaults(schema_section=schema_section, compose=compose)
    group = sub.add_argument_group("settings (one of)")
    group.add_argument("--settings", help="stage settings as a JSON object")
    group.add_argument(
        "--config",
        help="a YAML config file: the default, or an overlay "
        "merged over it as snakemake --configfile does",
    )
    group.add_argument("--section", help="dotted key of the section in --config"
                       + ("" if compose is None else " (not for this command: it gathers "
                                                      "several sections)"))
    group.add_argument(
        "--data-root", help="with --config: the folder that {data_root} in dataset paths stands for"
    )
    return sub


def add_draw(parser: argparse.ArgumentParser) -> None:
    """``--draw``: the training draw a run belongs to (``seed<N>``, or ``fixed`` for a detector
    that trains nothing; :func:`pipeline.paths.draw`), parsed into ``args.seed`` (int or None)."""
    from pipeline.paths import UNTRAINED, seed_of

    def parse(label: str) -> int | None:
        try:
            return seed_of(label)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parser.add_argument("--draw", dest="seed", type=parse, default=None,
                        help=f"training draw: seed<N>, or {UNTRAINED} (default) for a detector "
                        "that trains nothing")


def build_parser(prog: str, description: str, *registers: Register) -> argparse.ArgumentParser:
    """A parser whose sub-commands are those the ``registers`` add."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for register in registers:
        register(commands)
    return parser


def _exit_on_terminate(signum: int, _frame: Any) -> None:
    """SIGTERM (a scheduler or Snakemake stopping the job) raises ``SystemExit``, so that
    half-written outputs are removed on the way out (:func:`pipeline.io.atomic_open`,
    :func:`pipeline.io.atomic_folder`), as after Ctrl-C; by default it ends the process at once
    and leaves hidden temporary files behind."""
    raise SystemExit(128 + signum)


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> None:
    """Parse ``argv``, set up logging and SIGTERM handling, run the chosen command."""
    signal.signal(signal.SIGTERM, _exit_on_terminate)
    args = parser.parse_args(argv)
    setup_logging(args.log)
    LOG.info("%s: %s", args.command, " ".join(sys.argv[1:] if argv is None else argv))
    args.handler(args)


def entry_point(prog: str, register: Register) -> Callable[[list[str] | None], None]:
    """The ``main`` of one stage subpackage (``python -m pipeline.<stage>``)."""

    def main(argv: list[str] | None = None) -> None:
        run(build_parser(prog, f"The commands of {prog}.", register), argv)

    return main

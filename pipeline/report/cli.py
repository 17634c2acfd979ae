"""The command line of the report stage (rules/report.smk): figures, complexity, report.

Run as ``python -m pipeline <command>`` or ``python -m pipeline.report <command>`` (what the
rules call); ``--help`` on each command lists its arguments.
"""

from __future__ import annotations

import argparse

from pipeline.commands import add_command, add_stage, entry_point, stage_settings


def cmd_figures(args: argparse.Namespace) -> None:
    from pipeline.report.figures import make_figures

    make_figures(stage_settings(args), args.summary, args.statistics, args.out_dir)


def cmd_complexity(args: argparse.Namespace) -> None:
    from pipeline.io import write_json
    from pipeline.report.complexity import complexity

    write_json(args.out, complexity(args.architectures or None))


def cmd_report(args: argparse.Namespace) -> None:
    from pipeline.report.render import write_report

    write_report(
        stage_settings(args),
        args.summary,
        args.statistics,
        args.figures,
        args.out,
        args.complexity,
        args.cascades,
        args.tuning,
    )


def register(commands: argparse._SubParsersAction) -> None:
    """Add this stage's commands to ``commands``."""
    sub = add_stage(commands, "figures", cmd_figures, "draw the comparison figures")
    sub.add_argument("--summary", required=True, help="summary.json")
    sub.add_argument("--statistics", required=True, help="statistics.json")
    sub.add_argument("--out-dir", required=True)
    sub = add_command(
        commands, "complexity", cmd_complexity, "per-layer table of the CNN architectures"
    )
    sub.add_argument("--architectures", nargs="*", help="default: all registered")
    sub.add_argument("--out", required=True)
    sub = add_stage(commands, "report", cmd_report, "write the self-contained HTML report")
    sub.add_argument("--summary", required=True, help="summary.json")
    sub.add_argument("--statistics", required=True, help="statistics.json")
    sub.add_argument("--complexity", help="complexity.json (per-layer network table)")
    sub.add_argument(
        "--cascades",
        nargs="*",
        default=[],
        help="training records of trained cascades (<name>.stages.json)",
    )
    sub.add_argument("--tuning", nargs="*", default=[],
                     help="operating points chosen on tune sets (results/tuning/*/*.json)")
    sub.add_argument("--figures", nargs="+", required=True)
    sub.add_argument("--out", required=True)


main = entry_point("python -m pipeline.report", register)

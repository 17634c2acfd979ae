"""Command-line entry points, one sub-command per workflow stage.

Each stage takes its settings either as a JSON object (``--settings '{...}'``, what the
Snakefile passes) or as a section of a YAML config file (``--config config/default.yaml
--section detectors.haar``), so every stage runs and tests without Snakemake::

    python -m pipeline build-dataset --config config/default.yaml --section datasets.embedded \\
        --out results/data/embedded
"""

from __future__ import annotations

import argparse

from pipeline import commands
from pipeline.data.cli import register as data_commands
from pipeline.detection.cli import register as detection_commands
from pipeline.evaluation.cli import register as evaluation_commands
from pipeline.report.cli import register as report_commands
from pipeline.training.cli import register as training_commands
from pipeline.tuning.cli import register as tuning_commands

# In the order of the method (rules/*.smk); each subpackage owns its commands.
STAGES = {
    "data": data_commands,
    "training": training_commands,
    "tuning": tuning_commands,
    "detection": detection_commands,
    "evaluation": evaluation_commands,
    "report": report_commands,
}


def build_parser() -> argparse.ArgumentParser:
    return commands.build_parser("python -m pipeline", __doc__, *STAGES.values())


def main(argv: list[str] | None = None) -> None:
    commands.run(build_parser(), argv)


if __name__ == "__main__":
    main()

r"""AP on the tune sets against a trained cascade's Haar feature budget and its stage count
(prints measured numbers; not a test).

For each ``--budgets`` value (``max_features``: a random sample of the candidate grid; 0: the
whole grid) the ``cascades:`` entry ``--cascade`` of ``--configfile`` is trained with ``--seed``
on a built training set, in this process, as ``python -m pipeline.training train-haar`` trains
it, and kept in ``--out`` with its per-stage record; a cascade already there, trained with the
same settings on the same files, is reused, so a curve can grow over several calls.

Each cascade is then cut to its first ``--stages`` stages. A cascade cut to k stages is the
one that training with ``max_stages: k`` gives: stages are added in turn, from one random
stream, and ``max_stages`` only decides when to stop. Every cut runs as detector
``--detector`` over the tune sets' baseline images, its operating point chosen there from the
configuration's ``tuning:`` grid as the tuning stage chooses it
(:func:`pipeline.tuning.operating_point.tune_operating_point`; a detector without a grid runs
at its own settings, with a warning). Only tune sets are read: the
budget is a choice made from results, and no verdict is computed on the sets that made it.

Every cascade trains on the workflow's built training set (``results/data/<train_dataset>/``
under ``--workdir``); the cascade the workflow trained itself for ``--seed`` (the configured
budget) is read when its recorded settings are the same. Run in the folder of a research run
after it has built the training set and the tune sets' images, for example:

    python benchmarks/feature_budget.py --configfile config/research.yaml \
        --data-root ../shared/data --budgets 1000 3000 10000 --stages 5 10 15 20 \
        --out /tmp/budget
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import paths
from pipeline.commands import set_threads
from pipeline.config import load_config
from pipeline.data.variants import BASELINE_VARIANT
from pipeline.io import read_json, write_json
from pipeline.models.cascade import Cascade

LOG = logging.getLogger(__name__)


def tune_truths(config: dict[str, Any], detector: str, workdir: Path) -> dict[str, Path]:
    """Each tune set's baseline-variant manifest under the workflow folder ``workdir``: the
    detector's ``tuning.<detector>.datasets``, else every evaluated set with role tune."""
    from pipeline.tuning.operating_point import tune_sets

    names = tune_sets(config, detector)
    if not names:
        raise ValueError(f"no evaluated dataset has role tune to measure {detector} on")
    truths = {name: workdir / paths.variant_manifest(name, BASELINE_VARIANT) for name in names}
    missing = [str(path) for path in truths.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError("tune set images not built (run the workflow first): "
                                + ", ".join(missing))
    return truths


def candidate_count(settings: dict[str, Any]) -> int:
    """How many features boosting chooses from: ``max_features`` of the grid (0: all), as the
    trainer draws them (:func:`pipeline.training.train_cascade.candidate_features`)."""
    from pipeline.training.train_cascade import candidate_features

    return len(candidate_features(settings, np.random.default_rng(0)))


def workflow_cascade(settings: dict[str, Any], cascade: str, workdir: Path
                     ) -> tuple[Path, list[dict[str, Any]]] | None:
    """The workflow's own training of ``cascade`` for ``settings["seed"]`` under ``workdir``
    and its per-stage record, when it trained exactly ``settings`` (a full entry)."""
    from pipeline.defaults import with_defaults

    folder = paths.models_folder(settings["seed"])
    xml = workdir / paths.trained_cascade(cascade, folder)
    record_path = workdir / paths.cascade_history(cascade, folder)
    if not (xml.is_file() and record_path.is_file()):
        return None
    record = read_json(record_path)
    if with_defaults(record["settings"], "cascades.*") != settings:
        return None
    LOG.info("the workflow's %s (the same settings and seed)", xml)
    return xml, record["stages"]


def trained_budget(settings: dict[str, Any], cascade: str, train: Path, backgrounds: Path,
                   out: Path) -> tuple[Path, list[dict[str, Any]]]:
    """The cascade ``settings`` (a full ``cascades:`` entry) train on the device they name,
    kept in ``out`` as ``<cascade>_budget<max_features>_seed<seed>.xml`` with its per-stage
    record; reused when that record was written for the same settings and the same bytes of
    the training files."""
    from pipeline.models.cnn import resolve_device
    from pipeline.training import train_cascade as trainer
    from pipeline.training.resume import resume_key

    stem = f"{cascade}_budget{settings['max_features']}_seed{settings['seed']}"
    xml, record_path = out / f"{stem}.xml", out / f"{stem}.stages.json"
    key = resume_key(settings, train, backgrounds)
    if xml.is_file() and record_path.is_file():
        record = read_json(record_path)
        if record.get("key") == key:
            LOG.info("reusing %s (same settings and training files)", xml)
            return xml, record["history"]
        LOG.info("%s was trained with other settings or files: training again", xml)
    device = str(resolve_device(settings["device"]))
    history = trainer.train_cascade(settings, train, backgrounds, xml, device)
    write_json(record_path, {"key": key, "device": device, "history": history})
    return xml, history


def cut_cascade(xml: Path, stages: int, out: Path) -> Path:
    """The cascade at ``xml`` cut to its first ``stages`` stages, written to ``out``."""
    cascade = Cascade.read_xml(xml)
    if not 0 < stages <= len(cascade.stages):
        raise ValueError(f"{xml}: cannot cut {len(cascade.stages)} stages to {stages}")
    Cascade(cascade.window, cascade.features, cascade.stages[:stages]).compact().write_xml(out)
    return out


def budget_curve(config: dict[str, Any], cascade: str, detector: str, budgets: list[int],
                 stage_counts: list[int], seed: int, out: Path, workdir: Path,
                 train_only: bool = False) -> list[dict[str, Any]]:
    """One row per trained budget and stage count: candidate features, stages, weak
    classifiers, training seconds up to that stage and where they were measured (``here``, or
    ``workflow`` for the workflow's own cascade, timed beside its other jobs), the tuned
    operating point and its AP per tune set and mean (the tuning stage's score). A stage count
    beyond what a training reached gives that training's full cascade once.

    Every cascade trains on the workflow's built training set under ``workdir``; one the
    workflow has trained itself with the same settings and seed is read, not trained again.
    ``train_only``: train (or find) the cascades, score nothing, return no rows (the tune sets
    need not be built yet)."""
    from pipeline.defaults import with_defaults
    from pipeline.detection.detectors import search_min_size
    from pipeline.tuning.operating_point import tune_operating_point

    detector_settings = config["detectors"][detector]
    if detector_settings.get("trained_cascade") != cascade:
        raise ValueError(f"detector {detector} does not run cascade {cascade}")
    grid = config.get("tuning", {}).get(detector, {}).get("grid", {})
    if not grid:
        LOG.warning("no tuning.%s grid: every cut runs at the detector's own settings",
                    detector)
    truths = {} if train_only else tune_truths(config, detector, workdir)
    dataset = config["cascades"][cascade]["train_dataset"]
    train = workdir / paths.training_faces(dataset)
    backgrounds = workdir / paths.training_scenes(dataset)
    for path in (train, backgrounds):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: training set not built (run the workflow first)")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for budget in budgets:
        settings = with_defaults({**config["cascades"][cascade], "max_features": budget,
                                  "seed": seed}, "cascades.*")
        reused = workflow_cascade(settings, cascade, workdir)
        xml, history = reused or trained_budget(settings, cascade, train, backgrounds, out)
        if train_only:
            continue
        for stages in sorted({min(count, len(history)) for count in stage_counts}):
            cut = cut_cascade(xml, stages, out / f"{xml.stem}_stages{stages}.xml")
            record = tune_operating_point(detector_settings, grid, truths, [str(cut)],
                                          config["evaluation"], f"{detector} budget {budget}",
                                          search_min_size(config["detectors"]))
            rows.append({"budget": budget, "features": candidate_count(settings),
                         "stages": stages,
                         "weak": sum(row["weak_classifiers"] for row in history[:stages]),
                         "train_seconds": sum(row["seconds"] for row in history[:stages]),
                         "timed": "workflow" if reused else "here",
                         "choice": record["choice"], "score": record["score"],
                         "average_precision": next(
                             row["average_precision"] for row in record["candidates"]
                             if row["settings"] == record["choice"])})
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    """The curve as a table: one line per budget and stage count."""
    print(f"{'budget':>7} {'features':>8} {'stages':>6} {'weak':>5} {'train s':>8} "
          f"{'timed':>8} {'tuned AP':>8}  operating point")
    for row in rows:
        score = "-" if row["score"] is None else f"{row['score']:.4f}"
        print(f"{row['budget']:>7} {row['features']:>8} {row['stages']:>6} {row['weak']:>5} "
              f"{row['train_seconds']:>8.1f} {row['timed']:>8} {score:>8}  {row['choice']}")


def count_argument(least: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``least``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is below {least}")
        return value

    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", default="config/default.yaml")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--cascade", default="haar_trained", help="a name under cascades:")
    parser.add_argument("--detector", default="haar_trained",
                        help="a detectors: entry that runs the cascade (its tuning grid)")
    parser.add_argument("--budgets", type=count_argument(0), nargs="+",
                        default=[1000, 3000, 10000],
                        help="max_features values to train (0: every feature of the grid)")
    parser.add_argument("--stages", type=count_argument(1), nargs="+", default=[5, 10, 15, 20],
                        help="stage counts to cut each cascade to")
    parser.add_argument("--max-stages", type=int, help="override the entry's max_stages")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("."),
                        help="the workflow's folder: its results/ holds the built training "
                             "set and tune sets")
    parser.add_argument("--out", type=Path, required=True, help="folder for the cascades")
    parser.add_argument("--train-only", action="store_true",
                        help="train the cascades and stop (score them in a later call)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = load_config(args.configfile, args.data_root)
    if args.max_stages is not None:
        config["cascades"][args.cascade]["max_stages"] = args.max_stages
    set_threads(args.threads)
    print_rows(budget_curve(config, args.cascade, args.detector, args.budgets, args.stages,
                            args.seed, args.out, args.workdir, args.train_only))


if __name__ == "__main__":
    main()

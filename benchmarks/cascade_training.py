"""Time one Viola-Jones cascade training, stage by stage (prints measured seconds).

Trains the ``cascades:`` entry ``--cascade`` of ``--configfile`` (merged over the default
config, as Snakemake does) on a built training set, in this process, with ``--threads``
threads, and prints per stage: mining (scanning the face-free scenes for windows the cascade
so far accepts; stage 0 draws random windows), boosting (sorting the feature values and
choosing the stumps), the rest (feature values, bookkeeping) and the stage's total, then the
totals. Mining and boosting are timed by wrapping ``mine_negatives`` and ``train_stage`` of
:mod:`pipeline.training.train_cascade`; nothing else changes, so the cascade written is the one
``python -m pipeline.training train-haar`` trains with the same settings and seed.

Build the training set first, then train, for example:

    python -m pipeline.data build-dataset --config config/research.yaml \\
        --section datasets.webfaces --data-root ../shared/data --out /tmp/webfaces
    python benchmarks/cascade_training.py --configfile config/research.yaml \\
        --data-root ../shared/data --cascade haar_trained --max-stages 6 \\
        --train /tmp/webfaces/train.npz --backgrounds /tmp/webfaces/train_backgrounds.json
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.commands import set_threads
from pipeline.config import load_config


def timed(function: Callable[..., Any], seconds: list[float]) -> Callable[..., Any]:
    """``function`` that appends the seconds of each call to ``seconds``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", default="config/default.yaml")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--cascade", default="haar_trained", help="a name under cascades:")
    parser.add_argument("--max-stages", type=int, help="override the entry's max_stages")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train", required=True, help="train.npz of the built dataset")
    parser.add_argument("--backgrounds", required=True, help="train_backgrounds.json")
    parser.add_argument("--out", help="cascade XML to write (default: a temporary file)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from pipeline.training import train_cascade as trainer

    settings = dict(load_config(args.configfile, args.data_root)["cascades"][args.cascade])
    settings["seed"] = args.seed
    settings["device"] = "cpu"
    if args.max_stages is not None:
        settings["max_stages"] = args.max_stages
    set_threads(args.threads)
    mining: list[float] = []
    boosting: list[float] = []
    trainer.mine_negatives = timed(trainer.mine_negatives, mining)
    trainer.train_stage = timed(trainer.train_stage, boosting)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(args.out or Path(folder) / "cascade.xml")
        start = time.perf_counter()
        history = trainer.train_cascade(settings, args.train, args.backgrounds, out)
        wall = time.perf_counter() - start
    ran = history[len(history) - len(boosting):]  # a resumed run trains only the last stages
    if ran and ran[0]["stage"] == 0:
        mining = [0.0, *mining]  # stage 0 takes random windows: no mining
    print(json.dumps({key: settings[key] for key in sorted(settings)}, default=str))
    print(f"{'stage':>5} {'weak':>5} {'negatives':>9} {'scenes':>6} {'mining s':>9} "
          f"{'boosting s':>10} {'other s':>8} {'total s':>8}")
    for row, mine, boost in zip(ran, mining, boosting, strict=False):
        other = row["seconds"] - mine - boost
        print(f"{row['stage']:>5} {row['weak_classifiers']:>5} {row['negatives']:>9} "
              f"{row['scanned_scenes'] or '-':>6} {mine:>9.1f} {boost:>10.1f} {other:>8.1f} "
              f"{row['seconds']:>8.1f}")
    staged = sum(row["seconds"] for row in ran)
    print(f"total: {len(history)} stages, {sum(r['weak_classifiers'] for r in history)} weak "
          f"classifiers; mining {sum(mining):.1f} s, boosting {sum(boosting):.1f} s, stages "
          f"{staged:.1f} s, wall {wall:.1f} s (with loading the data and the positives)")


if __name__ == "__main__":
    main()

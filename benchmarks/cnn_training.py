"""Profile one CNN training and print its throughput: seconds per part and patches/s.

Trains the ``models:`` entry ``--model`` of ``--configfile`` (merged over the default config,
as Snakemake does) on a built training set, in this process, on ``--device`` (``cuda`` on a GPU
machine: AMP, cuDNN autotuning and each round's patches moved to the GPU once; ``cpu`` with
``--threads`` threads), and prints per round: preparing the positives (augmentation, blending,
illumination), mining hard negatives, the epochs, and the training patches/s of the epochs
(optimiser steps over the round's training patches, validation included in the time), then
the totals. The parts are timed by wrapping ``round_faces``, ``mine_hard_negatives`` and
``run_epoch`` of :mod:`pipeline.training.train_cnn`; nothing else changes, so the model written
is the one ``python -m pipeline.training train-cnn`` trains with the same settings, seed, device
and threads.

Without ``--train`` the default run's embedded training set is built in a temporary folder:

    python benchmarks/cnn_training.py                                  # default cnn, CPU
    python benchmarks/cnn_training.py --device cuda --epochs 2         # on a GPU machine
    python benchmarks/cnn_training.py --configfile config/research.yaml \\
        --data-root ../shared/data --train /tmp/webfaces/train.npz \\
        --backgrounds /tmp/webfaces/train_backgrounds.json
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from cascade_training import timed  # run as a script: benchmarks/ is on the path

from pipeline.commands import set_threads
from pipeline.config import load_config


def counted(function: Any, epochs: list[tuple[int, int]]) -> Any:
    """``run_epoch`` that appends (round, training patches) of each epoch to ``epochs`` (early
    stopping can end a round before its last epoch)."""

    def wrapper(model: Any, current: Any, *args: Any, **kwargs: Any) -> Any:
        epochs.append((current.index, len(current.order) - current.n_val))
        return function(model, current, *args, **kwargs)

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", default="config/default.yaml")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--model", default="cnn", help="a name under models:")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, help="override the entry's epochs")
    parser.add_argument("--rounds", type=int, help="override hard_negative_rounds")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--train", help="train.npz of a built dataset (default: embedded)")
    parser.add_argument("--backgrounds", help="its train_backgrounds.json")
    args = parser.parse_args()
    if (args.train is None) != (args.backgrounds is None):
        parser.error("--train and --backgrounds go together (a built dataset's two files)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from pipeline.training import train_cnn as trainer

    config = load_config(args.configfile, args.data_root)
    settings: dict[str, Any] = dict(config["models"][args.model], seed=args.seed,
                                    device=args.device)
    for key, value in (("epochs", args.epochs), ("hard_negative_rounds", args.rounds)):
        if value is not None:
            settings[key] = value
    set_threads(args.threads)
    preparing: list[float] = []
    mining: list[float] = []
    epochs: list[float] = []
    rounds: list[tuple[int, int]] = []
    trainer.round_faces = timed(trainer.round_faces, preparing)
    trainer.mine_hard_negatives = timed(trainer.mine_hard_negatives, mining)
    trainer.run_epoch = counted(timed(trainer.run_epoch, epochs), rounds)
    with tempfile.TemporaryDirectory() as folder:
        train, backgrounds = args.train, args.backgrounds
        if train is None:
            from pipeline.data.datasets import build_dataset

            build_dataset(config["datasets"]["embedded"], Path(folder) / "embedded")
            train = Path(folder) / "embedded" / "train.npz"
            backgrounds = Path(folder) / "embedded" / "train_backgrounds.json"
        start = time.perf_counter()
        trainer.train_cnn(settings, train, backgrounds, Path(folder) / "model.pt")
        wall = time.perf_counter() - start
    print(json.dumps({key: settings[key] for key in sorted(settings)}, default=str))
    print(f"{'round':>5} {'epochs':>6} {'patches':>8} {'prepare s':>9} {'mining s':>8} "
          f"{'epochs s':>8} {'patches/s':>10}")
    for index, prepare in enumerate(preparing):
        mine = mining[index - 1] if index > 0 and index - 1 < len(mining) else 0.0
        spent = [s for s, (r, _) in zip(epochs, rounds, strict=True) if r == index]
        seen = [n for r, n in rounds if r == index]
        rate = sum(seen) / sum(spent) if spent and sum(spent) > 0 else float("nan")
        print(f"{index:>5} {len(spent):>6} {seen[0] if seen else 0:>8} {prepare:>9.1f} "
              f"{mine:>8.1f} {sum(spent):>8.1f} {rate:>10.0f}")
    patches = sum(n for _, n in rounds)
    rate = patches / sum(epochs) if epochs else float("nan")
    print(f"total: device {args.device}, {args.threads} thread(s); preparing "
          f"{sum(preparing):.1f} s, mining {sum(mining):.1f} s, epochs {sum(epochs):.1f} s "
          f"({rate:.0f} training patches/s), wall {wall:.1f} s (with loading the data)")


if __name__ == "__main__":
    main()

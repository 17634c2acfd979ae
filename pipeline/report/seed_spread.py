"""The per-seed spread figure: each detector's AP per training seed, beside the seed mean and
its interval (which resamples the seeds and the test images)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.report.figures_common import COLOURS, grid, number, save


def plot_seed_spread(settings: dict[str, Any], statistics: dict[str, Any], out: Path) -> None:
    """Per test set (one panel each), per main variant: every detector's AP on each training
    seed (dots; an untrained detector's one run as a hollow ring) and the mean over seeds with
    its bootstrap interval (bar)."""
    datasets, variants = settings["datasets"], settings["main_variants"]
    runs = {(r["detector"], r["dataset"], r["variant"]): r for r in statistics["runs"]
            if r.get("average_precision")}
    detectors = settings["detectors"]
    figure, axes = grid(1, len(datasets),
                        width=min(16.0, max(4.0, 0.8 * len(variants) * len(detectors))))
    width = 0.8 / max(len(detectors), 1)
    for i, dataset in enumerate(datasets):
        axis = axes[0, i]
        for k, detector in enumerate(detectors):
            colour = COLOURS[k % len(COLOURS)]
            for j, variant in enumerate(variants):
                run = runs.get((detector, dataset, variant))
                if run is None:
                    continue
                x = j + (k - (len(detectors) - 1) / 2) * width
                seeds = [s for s in run.get("seeds", []) if s["average_precision"] is not None]
                trained = any(s["seed"] is not None for s in seeds)
                ap = run["average_precision"]
                axis.errorbar([x], [number(ap["estimate"])],
                              yerr=[[number(ap["estimate"]) - number(ap["low"])],
                                    [number(ap["high"]) - number(ap["estimate"])]],
                              fmt="_", ms=12, color=colour, capsize=3,
                              label=detector if j == 0 else None)
                spread = np.linspace(-0.3, 0.3, len(seeds)) * width if len(seeds) > 1 else [0]
                axis.scatter(x + np.asarray(spread), [s["average_precision"] for s in seeds],
                             s=14, zorder=3, color=colour if trained else "none",
                             edgecolors=colour)
        n_seeds = statistics.get("resampling", {}).get(dataset, {}).get("n_seeds", 1)
        axis.set_xticks(np.arange(len(variants)), variants)
        axis.set(ylabel="average precision", ylim=(0, 1.05),
                 title=f"{dataset}: AP per training seed ({n_seeds} seed"
                 f"{'' if n_seeds == 1 else 's'})")
        axis.grid(alpha=0.3, axis="y")
        axis.legend(fontsize=8)
    save(figure, out)

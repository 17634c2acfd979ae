"""The claim's verdict per cell (matched arm x condition): three questions read from intervals.

1. Does Haar break? Its share of AP kept is below ``1 - margin``.
2. Does the CNN hold up? Its share kept is at least ``1 - margin``.
3. Is the CNN better? CNN minus Haar share kept is above zero.

Each question is answered *yes* or *no* when the interval lies wholly on one side of its
threshold, and stays open otherwise. All intervals of a cell are at one level, corrected for the
number of cells tested (Bonferroni: each of the ``m`` judged cells at ``alpha / m``), so the
direction and the significance of every answer come from the same interval. A cell whose
baseline AP interval (the denominator of a share) reaches below ``floor`` is not judged: its
share kept is left to noise.

Words: **supported** (1, 2 and 3 yes); **partly supported** (1 and 3 yes, 2 not: the CNN loses
less but is not shown to hold up); **contradicted** (Haar holds up, or Haar keeps more, or the
CNN breaks without keeping more); **not resolved** (anything else); **not judged** (floor).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.evaluation.bootstrap import interval
from pipeline.evaluation.contracts import Interval

CORRECTION = "bonferroni"
# Below this many resamples beyond an interval end, the end is a coarse order statistic.
MIN_TAIL_RESAMPLES = 5


@dataclass(frozen=True)
class ShareSamples:
    """One detector's share kept under one condition: bootstrap values (samples,) and point
    estimate, with the AP in its denominator (values and estimate)."""

    share: np.ndarray
    share_estimate: float | None
    baseline_ap: np.ndarray
    baseline_ap_estimate: float | None


def judged_arms(config: dict[str, Any]) -> dict[str, dict[str, str]]:
    """What the verdict needs of each arm, its two detectors (the statistics stage's input:
    a changed note or domain does not rerun it)."""
    return {name: {"cnn": arm["cnn"], "haar": arm["haar"]}
            for name, arm in config["report"].get("arms", {}).items()}


def _bounds(interval: Interval) -> tuple[float, float] | None:
    low, high = interval.low, interval.high
    if low is None or high is None or not np.isfinite([low, high]).all():
        return None
    return low, high


def verdict_of(cnn: Interval, haar: Interval, cnn_minus_haar: Interval, margin: float
               ) -> tuple[str, dict[str, str]]:
    """The verdict of one cell from its three intervals (at the corrected level), and the
    answers to the three questions: ``yes``, ``no`` or ``open`` (the interval reaches across
    the threshold, or is undefined)."""
    held = 1 - margin

    def ask(bounded: Interval, yes: Callable[[float, float], bool],
            no: Callable[[float, float], bool]) -> str:
        bounds = _bounds(bounded)
        return "open" if bounds is None else "yes" if yes(*bounds) else "no" if no(*bounds) \
            else "open"

    questions = {
        "haar_breaks": ask(haar, lambda lo, hi: hi < held, lambda lo, hi: lo >= held),
        "cnn_holds": ask(cnn, lambda lo, hi: lo >= held, lambda lo, hi: hi < held),
        "cnn_better": ask(cnn_minus_haar, lambda lo, hi: lo > 0, lambda lo, hi: hi < 0),
    }
    breaks, holds, better = (questions[q] for q in ("haar_breaks", "cnn_holds", "cnn_better"))
    if breaks == "yes" and better == "yes":
        return ("supported" if holds == "yes" else "partly supported"), questions
    if breaks == "no" or better == "no" or (holds == "no" and better != "yes"):
        return "contradicted", questions
    return "not resolved", questions


def percentile_interval(values: np.ndarray, estimate: float | None, confidence: float
                        ) -> Interval:
    """:func:`pipeline.evaluation.bootstrap.interval` as an :class:`Interval`."""
    return Interval.parse(interval(values, estimate, confidence))


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def judge(arms: dict[str, dict[str, Any]], conditions: Iterable[tuple[Any, ...]],
          samples: dict[tuple[str, tuple[Any, ...]], ShareSamples], settings: dict[str, Any]
          ) -> dict[str, Any]:
    """Every cell's verdict. ``conditions`` are (dataset, variant, group, reference_dataset)
    in report order; ``samples`` hold each detector's share kept per condition, all drawn from
    the condition's shared resamples (so CNN minus Haar is paired); ``settings`` has
    ``confidence`` and ``verdict`` {margin, floor}."""
    alpha = 1 - settings["confidence"]
    margin, floor = settings["verdict"]["margin"], settings["verdict"]["floor"]
    candidates = []
    for condition in conditions:
        for name, arm in arms.items():
            cnn, haar = samples.get((arm["cnn"], condition)), samples.get((arm["haar"], condition))
            if cnn is not None and haar is not None:
                candidates.append((name, arm, condition, cnn, haar))
    weak = {}
    for name, arm, condition, cnn, haar in candidates:
        lows = {arm[kind]: percentile_interval(s.baseline_ap, s.baseline_ap_estimate,
                                               settings["confidence"])
                for kind, s in (("cnn", cnn), ("haar", haar))}
        weak[name, condition] = {d: i for d, i in lows.items()
                                 if _bounds(i) is None or i.low < floor}
    tested = [c for c in candidates if not weak[c[0], c[2]]]
    level = alpha / max(len(tested), 1)
    confidence = 1 - level
    resamples = min((len(c[3].share) for c in candidates), default=0)
    cells = []
    for name, _arm, condition, cnn, haar in candidates:
        dataset, variant, group, reference = condition
        share = {kind: percentile_interval(s.share, s.share_estimate, confidence)
                 for kind, s in (("cnn", cnn), ("haar", haar))}
        difference = percentile_interval(cnn.share - haar.share,
                                         _difference(cnn.share_estimate, haar.share_estimate),
                                         confidence)
        if weak[name, condition]:
            verdict, questions = "not judged", {}
            why = "baseline AP interval reaches below the floor {:g}: {}".format(
                floor, ", ".join(f"{d} {i.low if i.low is not None else float('nan'):.2f}"
                                 for d, i in weak[name, condition].items()))
        else:
            verdict, questions = verdict_of(share["cnn"], share["haar"], difference, margin)
            why = ""
        cells.append({"arm": name, "dataset": dataset, "variant": variant, "group": group,
                      "reference_dataset": reference, "cnn": vars(share["cnn"]),
                      "haar": vars(share["haar"]), "cnn_minus_haar": vars(difference),
                      "questions": questions, "verdict": verdict, "why": why})
    return {"cells_tested": len(tested), "alpha": alpha, "correction": CORRECTION,
            "level": level, "margin": margin, "floor": floor,
            "tail_resamples": resamples * level / 2, "cells": cells}

"""The bootstrap: resamples of training seeds and test images (or of units such as subjects),
AP and detection rates on each resample, percentile intervals and paired tests.

Seeds and images are crossed (every trained model is tested on every image), so both are
resampled, independently, with replacement: the pigeonhole bootstrap of Owen (2007, "The
pigeonhole bootstrap", Ann. Appl. Stat. 1(2)), which for crossed designs keeps both sources of
variance (resampling images alone would treat one training run as the method). A resample draws
``n_seeds`` seeds (:func:`seed_resamples`) and ``n_images`` images (:func:`resample_counts`);
a detector's AP on it is the mean, over the drawn seeds, of each seed's model's AP on the drawn
images (:func:`bootstrap_draws`). A detector that trains nothing has one run, which stands for
every seed.

One set of resamples is shared by every detector and variant of a dataset, and the seed draws by
every dataset, so differences between detectors, and shares kept between variants, are paired:
each resample compares the same images and the same model draws. Per resample, AP and detection
rate are recomputed with the curve arithmetic of :mod:`pipeline.evaluation.metrics` (an image
drawn k times counts k times). Intervals are percentile intervals; the two-sided p-value of a
difference is ``min(1, 2 * min(P*(d <= 0), P*(d >= 0)))`` under the bootstrap distribution
``P*``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from pipeline.evaluation.metrics import (
    ImageMatches,
    envelope_area,
    precision_of,
    rate_within,
    recall_of,
)

# Resample rows per block, bounded so that blocks stay below ~20 million cells.
BLOCK_CELLS = 20_000_000
# The training seeds are resampled from the stream [seed, SEED_STREAM] (the images from seed).
SEED_STREAM = 6151


def resample_counts(n_images: int, samples: int, seed: int | np.random.SeedSequence
                    ) -> np.ndarray:
    """How often each image is drawn in each resample: int array (samples, n_images)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_images, size=(samples, n_images))
    counts = np.zeros((samples, n_images), dtype=np.int32)
    np.add.at(counts, (np.arange(samples)[:, None], draws), 1)
    return counts


def unit_resample_counts(units: list[str], samples: int, seed: int | np.random.SeedSequence
                         ) -> np.ndarray:
    """How often each image is drawn in each resample when whole units (e.g. subjects) are
    drawn: every image counts as often as its unit (samples, n_images). With one unit per
    image this is :func:`resample_counts` exactly."""
    names = {name: index for index, name in enumerate(dict.fromkeys(units))}
    counts = resample_counts(len(names), samples, seed)
    return counts[:, [names[unit] for unit in units]]


def seed_resamples(n_seeds: int, samples: int, seed: int) -> np.ndarray:
    """Which training seeds (indices) each resample draws, ``n_seeds`` with replacement: int
    array (samples, n_seeds), from the stream ``[seed, SEED_STREAM]``; all zeros for one seed."""
    if n_seeds == 1:
        return np.zeros((samples, 1), dtype=np.int64)
    return np.random.default_rng([seed, SEED_STREAM]).integers(0, n_seeds, (samples, n_seeds))


def over_seeds(values: list[np.ndarray], picks: np.ndarray) -> np.ndarray:
    """Per resample, the mean over its drawn seeds (``picks``, from :func:`seed_resamples`) of
    the per-seed values ``values[s]`` (samples,); one array (an untrained detector) is
    returned as it is."""
    if len(values) == 1:
        return values[0]
    if len(values) != picks.shape[1]:
        raise ValueError(f"{len(values)} runs for {picks.shape[1]} training seeds")
    stacked = np.stack(values)  # (n_seeds, samples)
    return stacked[picks, np.arange(picks.shape[0])[:, None]].mean(axis=1)


def image_units(metrics: dict[str, Any]) -> list[str]:
    """The resampling unit of each image of a metrics dict (its file when unit is image)."""
    return [m.get("unit", m["file"]) for m in metrics["per_image"]]


@dataclass
class BootstrapCurves:
    """Per-resample AP (samples,) and detection rate at each FP count (samples,) arrays."""

    average_precision: np.ndarray
    detection_rate: dict[int, np.ndarray]


def bootstrap_run(matches: list[ImageMatches], counts: np.ndarray,
                  fp_points: list[int]) -> BootstrapCurves:
    """AP and detection rates of one run on every resample given by ``counts``."""
    samples = counts.shape[0]
    image_of = np.concatenate([np.full(len(m.scores), i) for i, m in enumerate(matches)]
                              ) if matches else np.zeros(0, int)
    scores = np.concatenate([m.scores for m in matches]) if matches else np.zeros(0)
    hits = np.concatenate([m.hits for m in matches]) if matches else np.zeros(0, bool)
    order = np.argsort(-scores, kind="stable")
    image_of, scores, hits = image_of[order], scores[order], hits[order]
    last_of_tie = np.r_[scores[1:] != scores[:-1], True] if len(scores) else np.zeros(0, bool)
    n_truth = counts @ np.array([m.n_truth for m in matches], dtype=np.float64)
    ap = np.zeros(samples)
    rates = {n: np.zeros(samples) for n in fp_points}
    block = max(1, BLOCK_CELLS // max(len(scores), 1))
    for start in range(0, samples, block):
        rows = slice(start, min(start + block, samples))
        weights = counts[rows][:, image_of].astype(np.float64)
        tp = np.cumsum(weights * hits, axis=1)[:, last_of_tie]
        fp = np.cumsum(weights * ~hits, axis=1)[:, last_of_tie]
        truth = n_truth[rows][:, None]
        recall = recall_of(tp, truth)
        ap[rows] = np.where(truth[:, 0] > 0, envelope_area(recall, precision_of(tp, fp)),
                            np.nan)
        for n in fp_points:
            rates[n][rows] = rate_within(recall, fp, n)
    return BootstrapCurves(ap, rates)


def bootstrap_draws(matches: list[list[ImageMatches]], counts: np.ndarray, picks: np.ndarray,
                    fp_points: list[int]) -> BootstrapCurves:
    """AP and detection rates of one detector on one variant, over resamples of its training
    seeds (``picks``) and images (``counts``): ``matches[s]`` are seed ``s``'s per-image
    matches (one list for a detector that trains nothing)."""
    curves = [bootstrap_run(m, counts, fp_points) for m in matches]
    return BootstrapCurves(
        over_seeds([c.average_precision for c in curves], picks),
        {n: over_seeds([c.detection_rate[n] for c in curves], picks) for n in fp_points})


def interval(values: np.ndarray, estimate: float, confidence: float) -> dict[str, float]:
    """Point estimate with the percentile interval of its bootstrap values (NaNs dropped)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"estimate": estimate, "low": float("nan"), "high": float("nan")}
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return {"estimate": estimate, "low": float(low), "high": float(high)}


def paired_test(a: np.ndarray, b: np.ndarray, estimate: float, confidence: float
                ) -> dict[str, Any]:
    """Interval and two-sided bootstrap p-value of ``a - b`` over paired resamples."""
    difference = a - b
    difference = difference[np.isfinite(difference)]
    result = interval(difference, estimate, confidence)
    if difference.size == 0:
        return {**result, "p_value": float("nan"), "significant": False}
    p_value = min(1.0, 2 * min(np.mean(difference <= 0), np.mean(difference >= 0)))
    return {**result, "p_value": float(p_value), "significant": bool(p_value < 1 - confidence)}


def detector_pairs(keys: list[tuple[str, str, str]], available: Any
                   ) -> Iterator[tuple[tuple[str, str, str], tuple[str, str, str]]]:
    """Run keys (detector, dataset, variant) of one dataset, paired: every two detectors on
    the same variant, both in ``available``; by variant, then detector names."""
    for variant in sorted({k[2] for k in keys}):
        for a, b in combinations(sorted({k[0] for k in keys}), 2):
            ka, kb = (a, keys[0][1], variant), (b, keys[0][1], variant)
            if ka in available and kb in available:
                yield ka, kb


def false_positives_per_image(metrics: dict[str, Any], counts: np.ndarray) -> np.ndarray:
    """False positives per image of one run on every resample (samples,)."""
    per_image = np.array([len(m["hits"]) - sum(m["hits"]) for m in metrics["per_image"]],
                         dtype=np.float64)
    return counts @ per_image / max(counts.shape[1], 1)

"""Bootstrap uncertainty over test images, paired detector comparisons, relative degradation.

One set of resamples of the test images (``samples`` x ``n_images`` image indices drawn with
replacement, seeded) is shared by every detector and variant of a dataset, so differences
between detectors and ratios between variants are paired: each resample compares the same
images. Per resample, AP and detection rate are recomputed with the curve arithmetic of
:mod:`pipeline.evaluation.metrics` on the resampled image set (an image drawn k times counts k
times).

Intervals are percentile intervals; the two-sided p-value of a difference is
``min(1, 2 * min(P*(d <= 0), P*(d >= 0)))`` under the bootstrap distribution ``P*``.

A test set may also be a condition of another (``cross_set_shares``: real cartoon frames
against the photo test set): its share kept divides its AP by the other set's baseline-variant
AP. The two sets hold different images, so they are resampled independently (the other set
with its own stream), and the detectors stay paired within each set.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from pipeline.data.variants import BASELINE_VARIANT
from pipeline.evaluation.metrics import (
    ImageMatches,
    envelope_area,
    group_order,
    matches_from_metrics,
    precision_of,
    rate_within,
    recall_of,
    relative_ap,
)

LOG = logging.getLogger(__name__)

# The reference sets of cross-set shares are resampled from [seed, CROSS_SET_STREAM, crc32].
CROSS_SET_STREAM = 7919

# Resample rows per block, bounded so that blocks stay below ~20 million cells.
BLOCK_CELLS = 20_000_000


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


def _share_kept(by_key: dict[tuple[str, str, str], dict[str, Any]],
                key: tuple[str, str, str]) -> float:
    """Share of AP kept by run ``key``, against the same detector's baseline-variant run."""
    return relative_ap(by_key[key]["average_precision"],
                       by_key[(key[0], key[1], BASELINE_VARIANT)]["average_precision"])


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


def _negatives_only(by_key: dict[tuple[str, str, str], dict[str, Any]],
                    keys: list[tuple[str, str, str]], counts: np.ndarray, confidence: float
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Runs and paired tests of a face-free test set: false positives per image only (AP and
    detection rate are undefined there)."""
    boot = {k: false_positives_per_image(by_key[k], counts) for k in keys}
    runs = [{"detector": k[0], "dataset": k[1], "variant": k[2], "negatives_only": True,
             "average_precision": None, "detection_rate": None,
             "false_positives_per_image": interval(
                 boot[k], by_key[k]["false_positives_per_image"], confidence)} for k in keys]
    tests = [{"dataset": ka[1], "variant": ka[2], "a": ka[0], "b": kb[0], "negatives_only": True,
              "false_positives_per_image": paired_test(
                  boot[ka], boot[kb], by_key[ka]["false_positives_per_image"]
                  - by_key[kb]["false_positives_per_image"], confidence)}
             for ka, kb in detector_pairs(keys, boot)]
    return runs, tests


def analyse(runs: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    """Intervals for every run, share of AP kept (relative to the baseline variant), and
    paired detector tests.

    ``runs`` are metrics dicts from :func:`pipeline.evaluation.metrics.evaluate` with ``detector``,
    ``dataset`` and ``variant`` keys; ``settings`` has ``bootstrap_samples``, ``confidence``,
    ``seed`` and ``fp_for_summary``.
    """
    from pipeline.defaults import with_defaults

    settings = with_defaults(settings, "statistics")
    confidence, fp = settings["confidence"], settings["fp_for_summary"]
    by_key = {(r["detector"], r["dataset"], r["variant"]): r for r in runs}
    out_runs, comparisons, resampled, baseline_ap = [], [], {}, {}
    grouped: dict[str, list[dict[str, Any]]] = {"runs": [], "comparisons": []}
    for dataset in sorted({r["dataset"] for r in runs}):
        keys = sorted(k for k in by_key if k[1] == dataset)
        files = [m["file"] for m in by_key[keys[0]]["per_image"]]
        for key in keys:
            if [m["file"] for m in by_key[key]["per_image"]] != files:
                raise ValueError(f"{key}: test images differ from {keys[0]}; cannot pair them")
        unit = by_key[keys[0]].get("resample_unit", "image")
        units = image_units(by_key[keys[0]])
        if any(image_units(by_key[k]) != units for k in keys):
            raise ValueError(f"{dataset}: the runs' resampling units ({unit}) differ")
        counts = unit_resample_counts(units, settings["bootstrap_samples"], settings["seed"])
        resampled[dataset] = {"unit": unit, "n_units": len(set(units)), "n_images": len(files)}
        LOG.info("%s: %d runs bootstrapped over %d %s units (%d images), %d resamples", dataset,
                 len(keys), len(set(units)), unit, len(files), settings["bootstrap_samples"])
        if any(by_key[k].get("negatives_only") for k in keys):
            runs_out, tests = _negatives_only(by_key, keys, counts, confidence)
            out_runs += runs_out
            comparisons += tests
            continue
        boot = {k: bootstrap_run(matches_from_metrics(by_key[k]), counts, [fp]) for k in keys}
        baseline_ap.update({k: boot[k].average_precision for k in keys
                            if k[2] == BASELINE_VARIANT})
        for key in keys:
            run, values = by_key[key], boot[key]
            entry = {
                "detector": key[0], "dataset": dataset, "variant": key[2],
                "average_precision": interval(values.average_precision,
                                              run["average_precision"], confidence),
                "detection_rate": interval(values.detection_rate[fp],
                                           run["detection_rate_at_fp"][str(fp)], confidence),
            }
            base_key = (key[0], dataset, BASELINE_VARIANT)
            if base_key in boot and key != base_key:
                entry["relative_ap"] = interval(
                    relative_ap(values.average_precision, boot[base_key].average_precision),
                    _share_kept(by_key, key), confidence)
            out_runs.append(entry)
        for ka, kb in detector_pairs(keys, boot):
            (a, _, variant), b = ka, kb[0]
            comparison = {
                "dataset": dataset, "variant": variant, "a": a, "b": b,
                "average_precision": paired_test(
                    boot[ka].average_precision, boot[kb].average_precision,
                    by_key[ka]["average_precision"] - by_key[kb]["average_precision"],
                    confidence),
                "detection_rate": paired_test(
                    boot[ka].detection_rate[fp], boot[kb].detection_rate[fp],
                    by_key[ka]["detection_rate_at_fp"][str(fp)]
                    - by_key[kb]["detection_rate_at_fp"][str(fp)], confidence),
            }
            base_a, base_b = (a, dataset, BASELINE_VARIANT), (b, dataset, BASELINE_VARIANT)
            if variant != BASELINE_VARIANT and base_a in boot and base_b in boot:
                comparison["relative_ap"] = paired_test(
                    relative_ap(boot[ka].average_precision, boot[base_a].average_precision),
                    relative_ap(boot[kb].average_precision, boot[base_b].average_precision),
                    _share_kept(by_key, ka) - _share_kept(by_key, kb), confidence)
            comparisons.append(comparison)
        group_runs, group_tests = analyse_groups(by_key, keys, counts, settings)
        grouped["runs"] += group_runs
        grouped["comparisons"] += group_tests
    cross = analyse_cross_sets(by_key, baseline_ap, settings)
    return {"settings": settings, "resampling": resampled, "runs": out_runs,
            "comparisons": comparisons, "groups": grouped, "cross_sets": cross}


def analyse_cross_sets(by_key: dict[tuple[str, str, str], dict[str, Any]],
                       baseline_ap: dict[tuple[str, str, str], np.ndarray],
                       settings: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Share kept of each test set named in ``settings["cross_set_shares"]`` (set: reference
    set): AP on the set's baseline variant over AP on the reference set's, per detector run on
    both, with intervals, and paired detector tests of it. ``baseline_ap`` holds each
    baseline-variant run's bootstrap AP on its own set's resamples; the reference set is
    resampled again from the stream ``[seed, CROSS_SET_STREAM, crc32("<set>/<reference>")]``,
    independent
    of the set's own resamples and the same whichever other pairs are configured."""
    confidence, fp = settings["confidence"], settings["fp_for_summary"]
    runs, tests = [], []
    for dataset, reference in sorted(settings["cross_set_shares"].items()):
        detectors = sorted(d for d, s, v in baseline_ap if s == dataset
                           and (d, reference, BASELINE_VARIANT) in by_key)
        if not detectors:
            LOG.warning("cross-set share %s over %s: no detector ran on both baseline variants; "
                        "skipped", dataset, reference)
            continue
        units = image_units(by_key[detectors[0], reference, BASELINE_VARIANT])
        stream = [settings["seed"], CROSS_SET_STREAM, zlib.crc32(f"{dataset}/{reference}".encode())]
        counts = unit_resample_counts(units, settings["bootstrap_samples"],
                                      np.random.SeedSequence(stream))
        share, estimate = {}, {}
        for detector in detectors:
            here, there = by_key[detector, dataset, BASELINE_VARIANT], by_key[
                detector, reference, BASELINE_VARIANT]
            reference_boot = bootstrap_run(matches_from_metrics(there), counts, [fp])
            share[detector] = relative_ap(baseline_ap[detector, dataset, BASELINE_VARIANT],
                                          reference_boot.average_precision)
            estimate[detector] = relative_ap(here["average_precision"],
                                             there["average_precision"])
            runs.append({"detector": detector, "dataset": dataset, "variant": BASELINE_VARIANT,
                         "reference_dataset": reference,
                         "relative_ap": interval(share[detector], estimate[detector],
                                                 confidence)})
        for a, b in combinations(detectors, 2):
            tests.append({"dataset": dataset, "variant": BASELINE_VARIANT,
                          "reference_dataset": reference, "a": a, "b": b,
                          "relative_ap": paired_test(share[a], share[b],
                                                     estimate[a] - estimate[b], confidence)})
    return {"runs": runs, "comparisons": tests}


def analyse_groups(by_key: dict[tuple[str, str, str], dict[str, Any]],
                   keys: list[tuple[str, str, str]], counts: np.ndarray,
                   settings: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per image group (e.g. Yale B light-angle bins) of one dataset: each run's AP and
    detection rate with intervals, its share kept of the baseline group's AP (the first group
    in order: the near-frontal bin), and paired detector tests of both; ([], []) when the
    images carry no group. The resamples are the dataset's own (``counts``)."""
    labels = [m.get("group") for m in by_key[keys[0]]["per_image"]]
    if any(label is None for label in labels):
        return [], []
    confidence, fp = settings["confidence"], settings["fp_for_summary"]
    order = sorted(set(labels), key=group_order)
    baseline = order[0]
    members = {g: np.flatnonzero([label == g for label in labels]) for g in order}
    boot, estimate = {}, {}
    for key in keys:
        matches = matches_from_metrics(by_key[key])
        for g in order:
            boot[key, g] = bootstrap_run([matches[i] for i in members[g]],
                                         counts[:, members[g]], [fp])
            estimate[key, g] = by_key[key]["groups"][g]
    # Share of the baseline group's AP kept: per resample, and its point estimate.
    share = {(key, g): relative_ap(boot[key, g].average_precision,
                                   boot[key, baseline].average_precision)
             for key in keys for g in order[1:]}
    share_estimate = {(key, g): relative_ap(estimate[key, g]["average_precision"],
                                            estimate[key, baseline]["average_precision"])
                      for key in keys for g in order[1:]}
    runs = []
    for key in keys:
        for g in order:
            values, point = boot[key, g], estimate[key, g]
            entry = {"detector": key[0], "dataset": key[1], "variant": key[2], "group": g,
                     "baseline_group": baseline, "n_images": len(members[g]),
                     "average_precision": interval(values.average_precision,
                                                   point["average_precision"], confidence),
                     "detection_rate": interval(values.detection_rate[fp],
                                                point["detection_rate_at_fp"][str(fp)],
                                                confidence)}
            if g != baseline:
                entry["relative_ap"] = interval(share[key, g], share_estimate[key, g],
                                                confidence)
            runs.append(entry)
    tests = []
    for ka, kb in detector_pairs(keys, by_key):
        for g in order:
            a_ap, b_ap = estimate[ka, g]["average_precision"], estimate[kb, g]["average_precision"]
            test = {"dataset": ka[1], "variant": ka[2], "group": g, "baseline_group": baseline,
                    "a": ka[0], "b": kb[0],
                    "average_precision": paired_test(boot[ka, g].average_precision,
                                                     boot[kb, g].average_precision,
                                                     a_ap - b_ap, confidence)}
            if g != baseline:
                test["relative_ap"] = paired_test(
                    share[ka, g], share[kb, g],
                    share_estimate[ka, g] - share_estimate[kb, g], confidence)
            tests.append(test)
    return runs, tests

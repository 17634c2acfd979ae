"""Conditions beyond the variants: image groups of a test set (Yale B light-angle bins) and
cross-set shares (a test set as a condition of another), with intervals and paired tests.

A test set may be a condition of another (``cross_set_shares``: real cartoon frames against
the photo test set): its share kept divides its AP by the other set's baseline-variant AP. The
two sets hold different images, so they are resampled independently (the other set with its
own stream), and the detectors stay paired within each set; the share is formed only when both
sets are scored under the same protocol.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import replace
from itertools import combinations
from typing import Any

import numpy as np
from scipy.stats import rankdata

from pipeline.data.variants import BASELINE_VARIANT
from pipeline.evaluation.bootstrap import (
    bootstrap_draws,
    bootstrap_run,
    detector_pairs,
    image_units,
    interval,
    paired_test,
    unit_resample_counts,
)
from pipeline.evaluation.metrics import (
    ImageMatches,
    group_order,
    matches_from_metrics,
    relative_ap,
)
from pipeline.evaluation.verdict_rule import ShareSamples

LOG = logging.getLogger(__name__)

# Unit-level permutation tests of share kept: exact up to 2**MAX_EXACT_UNITS sign patterns
# (Yale B test subjects: 10), else PERMUTATIONS patterns from [seed, PERMUTATION_STREAM].
MAX_EXACT_UNITS = 12
PERMUTATIONS = 4096
PERMUTATION_STREAM = 104729

# The reference sets of cross-set shares are resampled from [seed, CROSS_SET_STREAM, crc32].
CROSS_SET_STREAM = 7919


def analyse_cross_sets(by_key: dict[tuple[str, str, str], dict[str, Any]],
                       seeds: dict[tuple[str, str, str], list[dict[str, Any]]],
                       baseline_ap: dict[tuple[str, str, str], np.ndarray],
                       picks: np.ndarray, settings: dict[str, Any],
                       samples: dict[tuple[str, tuple[Any, ...]], ShareSamples] | None = None
                       ) -> dict[str, list[dict[str, Any]]]:
    """Share kept of each test set named in ``settings["cross_set_shares"]`` (set: reference
    set): AP on the set's baseline variant over AP on the reference set's, per detector run on
    both, with intervals, and paired detector tests of it. ``by_key`` holds each run's
    seed-mean metrics and ``seeds`` its per-seed ones; ``baseline_ap`` holds each
    baseline-variant run's bootstrap AP on its own set's resamples, with the training seeds
    drawn by ``picks`` (the same seed draws are used on the reference set); the reference set is
    resampled again from the stream ``[seed, CROSS_SET_STREAM, crc32("<set>/<reference>")]``,
    independent
    of the set's own resamples and the same whichever other pairs are configured."""
    confidence, fp = settings["confidence"], settings["fp_for_summary"]
    runs, tests, excluded = [], [], []
    for dataset, reference in sorted(settings["cross_set_shares"].items()):
        detectors = sorted(d for d, s, v in baseline_ap if s == dataset
                           and (d, reference, BASELINE_VARIANT) in by_key)
        if not detectors:
            LOG.warning("cross-set share %s over %s: no detector ran on both baseline variants; "
                        "skipped", dataset, reference)
            continue
        protocols = {protocol(by_key[d, s, BASELINE_VARIANT]) for d in detectors
                     for s in (dataset, reference)}
        if len(protocols) > 1:
            why = ("the two sets are scored under different protocols: "
                   + " vs ".join(sorted(protocols)) + "; a share kept divides two APs scored "
                   "alike")
            LOG.warning("cross-set share %s over %s left out: %s", dataset, reference, why)
            excluded.append({"dataset": dataset, "reference_dataset": reference, "why": why})
            continue
        units = image_units(by_key[detectors[0], reference, BASELINE_VARIANT])
        stream = [settings["seed"], CROSS_SET_STREAM, zlib.crc32(f"{dataset}/{reference}".encode())]
        counts = unit_resample_counts(units, settings["bootstrap_samples"],
                                      np.random.SeedSequence(stream))
        share, estimate = {}, {}
        for detector in detectors:
            here, there = by_key[detector, dataset, BASELINE_VARIANT], by_key[
                detector, reference, BASELINE_VARIANT]
            reference_boot = bootstrap_draws(
                [matches_from_metrics(r) for r in seeds[detector, reference, BASELINE_VARIANT]],
                counts, picks, [fp])
            share[detector] = relative_ap(baseline_ap[detector, dataset, BASELINE_VARIANT],
                                          reference_boot.average_precision)
            estimate[detector] = relative_ap(here["average_precision"],
                                             there["average_precision"])
            if samples is not None:
                samples[detector, (dataset, BASELINE_VARIANT, None, reference)] = ShareSamples(
                    share[detector], estimate[detector], reference_boot.average_precision,
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
    return {"runs": runs, "comparisons": tests, "excluded": excluded}


def protocol(metrics: dict[str, Any]) -> str:
    """How a run's detections were scored, in words: the matching criterion that judged its
    faces (landmarks only where some faces had them) and the smallest face scored."""
    criterion = metrics.get("criterion", {})
    if criterion.get("kind") == "landmarks" and criterion.get("faces_judged_by_landmarks"):
        words = f"landmark criterion (size within {criterion['size_factor']:g}x)"
    else:
        words = f"IoU >= {criterion.get('iou_threshold', 'n/a')}"
    if metrics.get("min_face_size"):
        words += f", faces from {metrics['min_face_size']:g} px"
    return words


def analyse_groups(by_key: dict[tuple[str, str, str], dict[str, Any]],
                   keys: list[tuple[str, str, str]], counts: np.ndarray,
                   settings: dict[str, Any],
                   samples: dict[tuple[str, tuple[Any, ...]], ShareSamples],
                   matches_of: dict[tuple[str, str, str], list[list[ImageMatches]]],
                   picks: np.ndarray) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per image group (e.g. Yale B light-angle bins) of one dataset: each run's AP and
    detection rate with intervals, its share kept of the baseline group's AP (the first group
    in order: the near-frontal bin), and paired detector tests of both; ([], []) when the
    images carry no group. The resamples are the dataset's own (``counts``) and the training
    seeds' (``picks``); ``matches_of`` holds each run's per-image matches per seed. Where a set is
    resampled by units (subjects), each matched arm's share-kept difference also gets a
    unit-level permutation test (:func:`permutation_share_test`) beside the bootstrap."""
    labels = [m.get("group") for m in by_key[keys[0]]["per_image"]]
    if any(label is None for label in labels):
        return [], []
    confidence, fp = settings["confidence"], settings["fp_for_summary"]
    unit, units = by_key[keys[0]].get("resample_unit", "image"), image_units(by_key[keys[0]])
    arm_pairs = {frozenset((arm["cnn"], arm["haar"])) for arm in settings.get("arms", {}).values()}
    order = sorted(set(labels), key=group_order)
    baseline = order[0]
    members = {g: np.flatnonzero([label == g for label in labels]) for g in order}
    boot, estimate = {}, {}
    for key in keys:
        for g in order:
            boot[key, g] = bootstrap_draws([[m[i] for i in members[g]] for m in matches_of[key]],
                                           counts[:, members[g]], picks, [fp])
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
                if key[2] in settings.get("main_variants", [key[2]]):
                    samples[key[0], (key[1], key[2], g, None)] = ShareSamples(
                        share[key, g], share_estimate[key, g],
                        boot[key, baseline].average_precision,
                        estimate[key, baseline]["average_precision"])
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
                observed = share_estimate[ka, g] - share_estimate[kb, g]
                test["relative_ap"] = paired_test(share[ka, g], share[kb, g], observed,
                                                  confidence)
                if frozenset((ka[0], kb[0])) in arm_pairs and unit != "image":
                    test["relative_ap_permutation"] = permutation_share_test(
                        matches_of[ka], matches_of[kb],
                        units, members[g], members[baseline], observed, settings["seed"])
            tests.append(test)
    return runs, tests


def permutation_share_test(a: list[list[ImageMatches]], b: list[list[ImageMatches]],
                           units: list[str], group: np.ndarray, baseline: np.ndarray,
                           observed: float | None, seed: int) -> dict[str, Any]:
    """Unit-level permutation test of detector ``a`` minus ``b`` share kept (AP on the
    ``group`` images / AP on the ``baseline`` images; index arrays into the per-image
    matches). ``a[s]`` and ``b[s]`` are training seed ``s``'s per-image matches (one list for a
    detector that trains nothing, paired with every seed of the other); each AP is the mean
    over the seeds, as the point estimate's. Under the null the two detectors are exchangeable
    within a unit (a Yale B subject), so each pattern swaps all of a unit's images between them,
    in every seed's pair alike; with few units every pattern is enumerated (exact). A swapped
    set ranks detections of both detectors together, so each detector's scores are first
    replaced by their quantile among its own detections (:func:`score_quantiles`): the test does
    not depend on the detectors' score scales, and each detector's own APs are unchanged.
    Two-sided p: the share of patterns (with a defined difference) whose difference is at least
    the observed one in size."""
    pairs = max(len(a), len(b))
    if {len(a), len(b)} - {1, pairs}:
        raise ValueError(f"{len(a)} and {len(b)} seeds cannot be paired")
    a, b = ([score_quantiles(m) for m in side] for side in (a, b))  # once per seed
    a, b = ([side[i % len(side)] for i in range(pairs)] for side in (a, b))
    names = sorted(set(units))
    unit_of = np.array([names.index(u) for u in units])
    patterns, exact = flip_patterns(len(names), seed)
    shares = []
    for side in (False, True):  # a's share kept under each pattern, then b's
        aps = []
        for members in (group, baseline):
            take_b = patterns[:, unit_of[members]]  # (P, n): this side gets b's image
            if side:
                take_b = ~take_b
            counts = np.hstack([~take_b, take_b]).astype(np.int64)
            aps.append(np.mean([
                bootstrap_run([a_s[i] for i in members] + [b_s[i] for i in members], counts,
                              []).average_precision
                for a_s, b_s in zip(a, b, strict=True)], axis=0))
        shares.append(relative_ap(aps[0], aps[1]))
    difference = shares[0] - shares[1]
    finite = difference[np.isfinite(difference)]
    defined = observed is not None and np.isfinite(observed) and finite.size > 0
    p_value = float(np.mean(np.abs(finite) >= abs(observed) - 1e-12)) if defined else None
    return {"p_value": p_value, "permutations": int(len(patterns)), "exact": exact,
            "units": len(names), "seed_pairs": pairs}


def score_quantiles(matches: list[ImageMatches]) -> list[ImageMatches]:
    """The matches with each score replaced by its quantile among all of them, in (0, 1]
    (ties share their mean rank): a monotone map, so AP is unchanged."""
    scores = np.concatenate([m.scores for m in matches]) if matches else np.zeros(0)
    quantiles = rankdata(scores) / max(len(scores), 1)
    bounds = np.cumsum([0] + [len(m.scores) for m in matches])
    return [replace(m, scores=quantiles[start:end])
            for m, start, end in zip(matches, bounds[:-1], bounds[1:], strict=True)]


def flip_patterns(n_units: int, seed: int) -> tuple[np.ndarray, bool]:
    """Which units swap detectors, one row per pattern: all 2**n_units patterns (exact),
    or for more than MAX_EXACT_UNITS units the identity and PERMUTATIONS - 1 random ones
    drawn from the stream ``[seed, PERMUTATION_STREAM]``."""
    if n_units <= MAX_EXACT_UNITS:
        rows = np.arange(2 ** n_units)[:, None] >> np.arange(n_units)[None, :] & 1
        return rows.astype(bool), True
    rng = np.random.default_rng([seed, PERMUTATION_STREAM])
    rows = rng.random((PERMUTATIONS - 1, n_units)) < 0.5
    return np.vstack([np.zeros((1, n_units), bool), rows]), False

"""Bootstrap uncertainty over training seeds and test images, paired detector comparisons,
relative degradation.

One set of resamples of the test images (``samples`` x ``n_images`` image indices drawn with
replacement, seeded) is shared by every detector and variant of a dataset, and one set of
resamples of the training seeds by every dataset, so differences between detectors and ratios
between variants are paired: each resample compares the same images and model draws. Per
resample, AP and detection rate are recomputed with the curve arithmetic of
:mod:`pipeline.evaluation.metrics` on the resampled image set (an image drawn k times counts k
times), for each drawn seed's model, and averaged over the drawn seeds. Point estimates are
means over the seeds (:mod:`pipeline.evaluation.seeds`).

Intervals are percentile intervals; the two-sided p-value of a difference is
``min(1, 2 * min(P*(d <= 0), P*(d >= 0)))`` under the bootstrap distribution ``P*``.

Image groups and cross-set shares: :mod:`pipeline.evaluation.conditions`; the resampling
itself: :mod:`pipeline.evaluation.bootstrap`; the verdict: :mod:`pipeline.evaluation.verdict_rule`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pipeline.data.variants import BASELINE_VARIANT
from pipeline.evaluation.bootstrap import (
    bootstrap_draws,
    detector_pairs,
    false_positives_per_image,
    image_units,
    interval,
    over_seeds,
    paired_test,
    seed_resamples,
    unit_resample_counts,
)
from pipeline.evaluation.conditions import analyse_cross_sets, analyse_groups
from pipeline.evaluation.metrics import (
    ImageMatches,
    matches_from_metrics,
    relative_ap,
)
from pipeline.evaluation.seeds import by_run, per_seed, seed_mean, seed_of
from pipeline.evaluation.verdict_rule import ShareSamples, judge

LOG = logging.getLogger(__name__)


def _share_kept(by_key: dict[tuple[str, str, str], dict[str, Any]],
                key: tuple[str, str, str]) -> float:
    """Share of AP kept by run ``key``, against the same detector's baseline-variant run."""
    return relative_ap(by_key[key]["average_precision"],
                       by_key[(key[0], key[1], BASELINE_VARIANT)]["average_precision"])


def _negatives_only(by_key: dict[tuple[str, str, str], dict[str, Any]],
                    seeds: dict[tuple[str, str, str], list[dict[str, Any]]],
                    keys: list[tuple[str, str, str]], counts: np.ndarray, picks: np.ndarray,
                    confidence: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Runs and paired tests of a face-free test set: false positives per image only (AP and
    detection rate are undefined there)."""
    boot = {k: over_seeds([false_positives_per_image(r, counts) for r in seeds[k]], picks)
            for k in keys}
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


def statistics_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The statistics stage's settings, gathered from a validated config: the ``statistics``
    section, the report's summary FP point, the judged arms, the main variants and the
    datasets' roles (what the Snakefile passes, and ``--config`` alone gives the command)."""
    from pipeline.data.roles import dataset_roles
    from pipeline.evaluation.verdict_rule import judged_arms

    return {**config["statistics"], "fp_for_summary": config["report"]["fp_for_summary"],
            "arms": judged_arms(config), "main_variants": list(config["variants"]),
            "roles": dataset_roles(config)}


def analyse(runs: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    """Intervals for every run, share of AP kept (relative to the baseline variant), and
    paired detector tests.

    ``runs`` are metrics dicts from :func:`pipeline.evaluation.metrics.evaluate` with ``detector``,
    ``seed`` (training seed, None for a detector that trains nothing), ``dataset`` and
    ``variant`` keys; ``settings`` has ``bootstrap_samples``, ``confidence``, ``seed`` and
    ``fp_for_summary``.
    """
    from pipeline.defaults import with_defaults

    settings = with_defaults(settings, "statistics")
    confidence, fp = settings["confidence"], settings["fp_for_summary"]
    seeds = by_run(runs)
    by_key = {key: seed_mean(group) for key, group in seeds.items()}
    # the trained detectors' seeds; (None,) only when no detector trains (with one seed every
    # group has one run, and an untrained detector's must not stand for the trained ones')
    training_seeds = max((tuple(seed_of(r) for r in g) for g in seeds.values()),
                         key=lambda draws: (len(draws), draws != (None,)))
    picks = seed_resamples(len(training_seeds), settings["bootstrap_samples"], settings["seed"])
    LOG.info("training seeds %s resampled beside the test images", list(training_seeds))
    out_runs, comparisons, resampled, baseline_ap = [], [], {}, {}
    samples: dict[tuple[str, tuple[Any, ...]], ShareSamples] = {}  # for the verdict
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
        resampled[dataset] = {"unit": unit, "n_units": len(set(units)), "n_images": len(files),
                              "n_seeds": len(training_seeds)}
        LOG.info("%s: %d runs bootstrapped over %d %s units (%d images), %d resamples", dataset,
                 len(keys), len(set(units)), unit, len(files), settings["bootstrap_samples"])
        if any(by_key[k].get("negatives_only") for k in keys):
            runs_out, tests = _negatives_only(by_key, seeds, keys, counts, picks, confidence)
            out_runs += runs_out
            comparisons += tests
            continue
        matches: dict[tuple[str, str, str], list[list[ImageMatches]]] = {
            k: [matches_from_metrics(r) for r in seeds[k]] for k in keys}
        boot = {k: bootstrap_draws(matches[k], counts, picks, [fp]) for k in keys}
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
                "seeds": per_seed(seeds[key]),
            }
            base_key = (key[0], dataset, BASELINE_VARIANT)
            if base_key in boot and key != base_key:
                share = ShareSamples(
                    relative_ap(values.average_precision, boot[base_key].average_precision),
                    _share_kept(by_key, key), boot[base_key].average_precision,
                    by_key[base_key]["average_precision"])
                entry["relative_ap"] = interval(share.share, share.share_estimate, confidence)
                if key[2] in settings.get("main_variants", [key[2]]):
                    samples[key[0], (dataset, key[2], None, None)] = share
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
        group_runs, group_tests = analyse_groups(by_key, keys, counts, settings, samples,
                                                 matches, picks)
        grouped["runs"] += group_runs
        grouped["comparisons"] += group_tests
    cross = analyse_cross_sets(by_key, seeds, baseline_ap, picks, settings, samples)
    result = {"settings": settings, "training_seeds": list(training_seeds),
              "resampling": resampled, "runs": out_runs,
              "comparisons": comparisons, "groups": grouped, "cross_sets": cross}
    if settings.get("arms"):
        # variants, then image groups, then cross-set shares (each in the order analysed)
        conditions = sorted(dict.fromkeys(condition for _, condition in samples),
                            key=lambda c: 1 if c[2] is not None else 2 if c[3] else 0)
        # only test sets are judged (a tune set, or a share over one, chose something)
        roles = settings.get("roles", {})
        conditions = [c for c in conditions if all(roles.get(d, "test") == "test"
                                                   for d in (c[0], c[3]) if d is not None)]
        result["verdict"] = judge(settings["arms"], conditions, samples, settings)
        LOG.info("verdict: %d cells tested at level %.4g (%s)",
                 result["verdict"]["cells_tested"], result["verdict"]["level"],
                 result["verdict"]["correction"])
    return result

"""The self-contained HTML results report: figures embedded, tables, findings, provenance."""

from __future__ import annotations

import base64
import html
import importlib.metadata
import json
import logging
import math
import platform
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.variants import BASELINE_VARIANT
from pipeline.detection.detectors import role, trained_models
from pipeline.io import atomic_open, read_json

LOG = logging.getLogger(__name__)

PACKAGES = ["numpy", "opencv-python-headless", "torch", "scikit-learn", "scikit-image",
            "snakemake", "matplotlib"]

CAPTIONS_DIR = Path(__file__).parent / "captions"


def caption(figure: str | Path) -> str:
    """The caption of a figure (shared with ``snakemake --report``): captions/<stem>.rst."""
    path = CAPTIONS_DIR / f"{Path(figure).stem}.rst"
    return path.read_text().strip() if path.exists() else Path(figure).stem


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


UNDEFINED = "undefined"


def _fmt(value: Any, digits: int = 3) -> str:
    """A number for the report; ``undefined`` for null or NaN (e.g. AP without faces)."""
    if value is None or (isinstance(value, float) and value != value):
        return UNDEFINED
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _ci(entry: dict[str, float | None] | None, digits: int = 3, percent: bool = False) -> str:
    """``0.912 [0.871, 0.950]`` from an interval dict."""
    if not entry or entry["estimate"] is None:
        return UNDEFINED
    scale, unit = (100, "%") if percent else (1, "")
    d = 0 if percent else digits

    def number(value: float | None) -> str:
        return _fmt(None if value is None else value * scale, d) + unit

    return f"{number(entry['estimate'])} [{number(entry['low'])}, {number(entry['high'])}]"


def _p(value: float, samples: int) -> str:
    """A bootstrap p-value; 0 means smaller than the resolution 1 / samples."""
    return f"p < {1 / samples:.3g}" if value == 0 else f"p = {_fmt(value)}"


def _verdict(test: dict[str, Any], a: str, b: str, what: str, level: str,
             samples: int) -> str:
    """One sentence on a paired test of ``a - b``."""
    numbers = (f"difference {_fmt(test['estimate'])} "
               f"[{_fmt(test['low'])}, {_fmt(test['high'])}], {_p(test['p_value'], samples)}")
    if test["significant"]:
        winner = a if test["estimate"] > 0 else b
        return f"{winner} has the higher {what} ({numbers}; significant at the {level}% level)"
    return f"no significant difference in {what} ({numbers}; not significant at {level}%)"


def reference_detectors(config: dict[str, Any]) -> set[str]:
    """Names of the configured detectors of reference kinds (other libraries' pretrained
    models): reported apart from the matched Haar-vs-CNN arms, never in the findings."""
    return {name for name, d in config["detectors"].items() if role(d) == "reference"}


def findings(settings: dict[str, Any], statistics: dict[str, Any]) -> list[str]:
    """Generated sentences: per dataset and variant, which of the matched (non-reference)
    detectors is better and how sure."""
    confidence = statistics["settings"]["confidence"]
    samples = statistics["settings"]["bootstrap_samples"]
    level = f"{100 * (1 - confidence):g}"
    fp = statistics["settings"]["fp_for_summary"]
    intervals = {(r["detector"], r["dataset"], r["variant"]): r for r in statistics["runs"]}
    roles = {name: role(d) for name, d in settings["config"]["detectors"].items()}
    sentences = []
    order = {v: i for i, v in enumerate(settings["main_variants"])}
    references = reference_detectors(settings["config"])
    comparisons = [c for c in statistics["comparisons"] if c["variant"] in order
                   and c["a"] not in references and c["b"] not in references]
    for c in sorted(comparisons, key=lambda c: (c["dataset"], order[c["variant"]])):
        a, b, key = c["a"], c["b"], (c["dataset"], c["variant"])
        if c.get("negatives_only"):
            sentences.append(
                f"{c['dataset']}, {c['variant']} (face-free test set: AP is undefined): false "
                f"positives per image {a} "
                f"{_ci(intervals[(a, *key)]['false_positives_per_image'])} vs {b} "
                f"{_ci(intervals[(b, *key)]['false_positives_per_image'])}: "
                + _verdict(c["false_positives_per_image"], a, b,
                           "number of false positives per image", level, samples) + ".")
            continue
        text = (f"{c['dataset']}, {c['variant']}: AP {a} "
                f"{_ci(intervals[(a, *key)]['average_precision'])} vs {b} "
                f"{_ci(intervals[(b, *key)]['average_precision'])}: "
                + _verdict(c["average_precision"], a, b, "AP", level, samples)
                + f". Detection rate at {fp} false positives: "
                + _verdict(c["detection_rate"], a, b, "detection rate", level, samples) + ".")
        if "relative_ap" in c:
            text += (f" Share of {BASELINE_VARIANT} AP kept: {a} "
                     f"{_ci(intervals[(a, *key)].get('relative_ap'), percent=True)}, {b} "
                     f"{_ci(intervals[(b, *key)].get('relative_ap'), percent=True)}.")
            if {roles.get(a), roles.get(b)} == {"cascade", "cnn"}:
                text += " " + _claim_check(c, a if roles[a] == "cnn" else b, level, samples)
        sentences.append(text)
    sentences.append(
        f"Intervals are {round(100 * confidence)}% percentile bootstrap intervals over test "
        f"images ({statistics['settings']['bootstrap_samples']} resamples, shared by all "
        "detectors and variants, so comparisons are paired); p-values are two-sided.")
    return sentences


# Below this many training faces a verdict demonstrates the pipeline; it is not evidence.
EVIDENCE_FACES = 1000


def claim_verdict(test: dict[str, Any] | None, cnn_is_a: bool) -> tuple[str, float | None]:
    """The claim's verdict from a paired test of share kept (a minus b), and CNN minus Haar."""
    if test is None or test["estimate"] is None or not math.isfinite(test["estimate"]):
        return "undefined", None
    cnn_minus_haar = test["estimate"] if cnn_is_a else -test["estimate"]
    if not test["significant"]:
        return "not resolved", cnn_minus_haar
    return ("supported" if cnn_minus_haar > 0 else "contradicted"), cnn_minus_haar


Condition = tuple[str, str, str | None, str | None]  # dataset, variant, group, reference set


def bundled_cascades(config: dict[str, Any]) -> list[str]:
    """Haar detectors that run a cascade not trained here (OpenCV's bundled): the verdict
    table's reference column."""
    return [name for name, d in config["detectors"].items()
            if role(d) == "cascade" and not trained_models(d)]


def _condition(entry: dict[str, Any], group_key: str | None, reference_key: str | None
               ) -> Condition:
    return (entry["dataset"], entry["variant"], entry.get(group_key) if group_key else None,
            entry.get(reference_key) if reference_key else None)


def _condition_statistics(statistics: dict[str, Any]
                          ) -> tuple[dict[tuple[str, Condition], Any],
                                     dict[tuple[str, str, Condition], Any], list[Condition]]:
    """Share kept per (detector, condition), its paired tests per (a, b, condition), and the
    conditions in order: variants, then image groups, then cross-set shares."""
    shares: dict[tuple[str, Condition], Any] = {}
    tests: dict[tuple[str, str, Condition], Any] = {}
    conditions: list[Condition] = []
    for part, group_key, reference_key in ((statistics, None, None),
                                           (statistics.get("groups", {}), "group", None),
                                           (statistics.get("cross_sets", {}), None,
                                            "reference_dataset")):
        for run in part.get("runs", []):
            if "relative_ap" in run:
                key = _condition(run, group_key, reference_key)
                shares[run["detector"], key] = run["relative_ap"]
                conditions.append(key)
        for test in part.get("comparisons", []):
            if "relative_ap" in test:
                key = _condition(test, group_key, reference_key)
                tests[test["a"], test["b"], key] = test["relative_ap"]
    return shares, tests, list(dict.fromkeys(conditions))


def _difference(tests: dict[tuple[str, str, Condition], Any], x: str, y: str,
                condition: Condition) -> dict[str, Any] | None:
    """The paired test (of share kept, or of whatever ``tests`` hold) of x minus y; tests are
    stored with a, b sorted."""
    a, b = sorted((x, y))
    test = tests.get((a, b, condition))
    if test is None or test["estimate"] is None:
        return test
    if a == x:
        return test
    return {**test, "estimate": -test["estimate"], "low": _negate(test["high"]),
            "high": _negate(test["low"])}


# A share kept divides by the baseline AP; below this the share is left to noise, so the
# cell is not judged (the matched cascade's AP on near-frontal Yale B faces is about 0.05).
MIN_BASELINE_AP = 0.2


def _baseline_ap(statistics: dict[str, Any]) -> Callable[[str, Condition], float | None]:
    """Each detector's AP in the denominator of its share kept under a condition: the baseline
    group's, else the baseline variant's of the other set (cross-set) or of its own set."""
    variant_ap = {(r["detector"], r["dataset"]): r["average_precision"]["estimate"]
                  for r in statistics["runs"] if r["variant"] == BASELINE_VARIANT
                  and r.get("average_precision")}
    group_ap = {(r["detector"], r["dataset"], r["variant"]): r["average_precision"]["estimate"]
                for r in statistics.get("groups", {}).get("runs", [])
                if r["group"] == r["baseline_group"]}

    def lookup(detector: str, condition: Condition) -> float | None:
        dataset, variant, group, reference = condition
        if group is not None:
            return group_ap.get((detector, dataset, variant))
        return variant_ap.get((detector, reference or dataset))
    return lookup


def verdict_rows(settings: dict[str, Any], statistics: dict[str, Any]
                 ) -> list[dict[str, Any]]:
    """One row per test set x condition (each main variant but the baseline, each group but
    the baseline group, each cross-set share), with one cell per arm: CNN and Haar share kept
    (intervals), CNN minus Haar with its interval and p-value, and the verdict; the bundled
    cascades' share kept (``reference``); and per arm that ``augments`` another, each
    detector's gain in share kept over the other arm's (``gains``)."""
    config = settings["config"]
    arms = config["report"]["arms"]
    shares, tests, conditions = _condition_statistics(statistics)
    baseline_ap = _baseline_ap(statistics)
    rows = []
    for condition in conditions:
        dataset, variant, group, reference = condition
        if group is None and reference is None and variant not in settings["main_variants"]:
            continue
        cells, gains = {}, {}
        for name, arm in arms.items():
            haar, cnn = arm["haar"], arm["cnn"]
            if (cnn, condition) not in shares or (haar, condition) not in shares:
                continue
            test = _difference(tests, cnn, haar, condition)
            verdict, difference = claim_verdict(test, True)
            weak = {d: ap for d in (cnn, haar) if (ap := baseline_ap(d, condition)) is not None
                    and ap < MIN_BASELINE_AP}
            cells[name] = {"cnn": shares[cnn, condition], "haar": shares[haar, condition],
                           "cnn_minus_haar": None if test is None else {
                               k: test[k] for k in ("estimate", "low", "high")},
                           "p_value": None if test is None else test["p_value"],
                           "verdict": "not judged" if weak else verdict,
                           "why": "baseline AP " + ", ".join(
                               f"{d} {ap:.2f}" for d, ap in weak.items())
                           + f" < {MIN_BASELINE_AP:g}" if weak else ""}
            base = arms.get(arm.get("augments"))
            if base is not None:
                gains[name] = {kind: _difference(tests, arm[kind], base[kind], condition)
                               for kind in ("cnn", "haar")}
        if cells:
            rows.append({"dataset": dataset, "variant": variant, "group": group,
                         "reference_dataset": reference, "cells": cells, "gains": gains,
                         "reference": {d: shares[d, condition]
                                       for d in bundled_cascades(config)
                                       if (d, condition) in shares}})
    return rows


def domain_rows(settings: dict[str, Any], statistics: dict[str, Any]) -> list[dict[str, Any]]:
    """Per arm with a ``domain`` test set: both detectors' AP on its baseline variant and the
    paired test of CNN minus Haar AP (read from ``statistics.json``), with its verdict."""
    runs = {(r["detector"], r["dataset"], r["variant"]): r for r in statistics["runs"]}
    tests = {(c["a"], c["b"], _condition(c, None, None)): c["average_precision"]
             for c in statistics["comparisons"] if "average_precision" in c}  # face-free: none
    rows = []
    for name, arm in settings["config"]["report"].get("arms", {}).items():
        domain = arm.get("domain")
        if domain is None:
            continue
        cnn, haar = arm["cnn"], arm["haar"]
        test = _difference(tests, cnn, haar, (domain, BASELINE_VARIANT, None, None))
        verdict, _ = claim_verdict(test, True)
        difference = None if test is None else {k: test[k] for k in ("estimate", "low", "high")}
        rows.append({"arm": name, "dataset": domain,
                     "cnn": runs.get((cnn, domain, BASELINE_VARIANT), {}).get(
                         "average_precision"),
                     "haar": runs.get((haar, domain, BASELINE_VARIANT), {}).get(
                         "average_precision"),
                     "cnn_minus_haar": difference,
                     "p_value": None if test is None else test["p_value"],
                     "verdict": verdict})
    return rows


def _domain_section(settings: dict[str, Any], statistics: dict[str, Any],
                    samples: int, level: str) -> list[str]:
    """The table of :func:`domain_rows` (nothing when no arm names a domain)."""
    rows = domain_rows(settings, statistics)
    if not rows:
        return []
    lines = ["<h3>In each arm's own domain</h3>",
             "<p>Both detectors learned from the same images of this domain: does the CNN's "
             "AP on its held-apart test set exceed the cascade's? This is the arm's control: a "
             "difference here is not explained by what the training images showed. AP with its "
             f"interval, CNN minus Haar with its paired bootstrap p-value, {level}% level.</p>",
             "<table>" + _row(["arm", "test set", "CNN AP", "Haar AP", "CNN - Haar",
                               "verdict"], "th")]
    for row in rows:
        p = "" if row["p_value"] is None else f", {_p(row['p_value'], samples)}"
        lines.append(_row([row["arm"], f"{row['dataset']} ({BASELINE_VARIANT})",
                           _ci(row["cnn"]), _ci(row["haar"]),
                           _ci(row["cnn_minus_haar"]) + p, row["verdict"]]))
    return lines + ["</table>"]


def _negate(value: float | None) -> float | None:
    return None if value is None else -value


def _condition_label(row: dict[str, Any]) -> str:
    if row["group"] is not None:
        return f"light {row['group']}"
    if row["reference_dataset"] is not None:
        return f"the whole set, against {row['reference_dataset']} {BASELINE_VARIANT}"
    return row["variant"]


def _tally(counts: Counter[str]) -> str:
    """Verdict counts in words, e.g. '2 not resolved, 1 supported'."""
    return ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))


def _gain_section(arms: dict[str, Any], rows: list[dict[str, Any]], samples: int,
                  level: str) -> list[str]:
    """Per augmented arm: each detector's gain in share kept over the arm it augments, per
    condition, and the gap between the feature types that remains with the augmentation."""
    lines = []
    for name, arm in arms.items():
        base = arm.get("augments")
        judged = [r for r in rows if name in r["gains"]]
        if base is None or not judged:
            continue
        lines.append(f"<h3>Gain from augmentation: arm {html.escape(name)} over arm "
                     f"{html.escape(base)}</h3><p>Share kept with the augmented training "
                     f"images minus share kept without them (paired bootstrap, {level}% "
                     "level), and the CNN - Haar gap that remains in the augmented arm.</p>"
                     "<table>" + _row(["test set", "condition", f"CNN gain ({arm['cnn']} - "
                                       f"{arms[base]['cnn']})", f"Haar gain ({arm['haar']} - "
                                       f"{arms[base]['haar']})", "remaining CNN - Haar gap"],
                                      "th"))
        raised, lowered = Counter[str](), Counter[str]()
        gaps = Counter[str]()
        for row in judged:
            texts = []
            for kind in ("cnn", "haar"):
                gain = row["gains"][name][kind]
                if gain is None or gain["estimate"] is None:
                    texts.append("undefined")
                    continue
                if gain["significant"]:
                    (raised if gain["estimate"] > 0 else lowered)[kind] += 1
                texts.append(f"{_ci(gain)}, {_p(gain['p_value'], samples)}")
            cell = row["cells"][name]
            gaps[cell["verdict"]] += 1
            texts.append(f"{_ci(cell['cnn_minus_haar'])}: {cell['verdict']}")
            lines.append(_row([row["dataset"], _condition_label(row)] + texts))
        lines.append("</table>")
        sentence = (f"Over {len(judged)} conditions, the augmentation of arm {name} raised the "
                    f"CNN share kept significantly in {raised['cnn']} and lowered it in "
                    f"{lowered['cnn']}; it raised the Haar share kept in {raised['haar']} and "
                    f"lowered it in {lowered['haar']}. The gap between the feature types that "
                    f"remains with it: {_tally(gaps)}.")
        lines.append(f"<p>{html.escape(sentence)}</p>")
    return lines


def _verdict_section(settings: dict[str, Any], statistics: dict[str, Any],
                     summary: dict[str, Any], training_faces: dict[str, int]) -> str:
    """The verdict table, its paragraph, the scale of the evidence and the augmentation gains."""
    arms = settings["config"]["report"].get("arms", {})
    rows = verdict_rows(settings, statistics)
    samples = statistics["settings"]["bootstrap_samples"]
    level = f"{100 * (1 - statistics['settings']['confidence']):g}"
    lines = ["<h2>Verdict</h2>"]
    if not arms or not rows:
        return "\n".join(lines + [
            "<p>No verdict: the configuration names no matched arm (report.arms: a trained "
            "cascade and a CNN learned from the same images) with a condition to judge.</p>"]
            + _domain_section(settings, statistics, samples, level))
    references = list(dict.fromkeys(d for row in rows for d in row["reference"]))
    lines.append("<p>Does the CNN keep more of its AP than the Haar cascade trained on the same "
                 f"images? Share kept: AP under the condition / AP on the {BASELINE_VARIANT} "
                 "images (for a light-angle group: / AP in the baseline group; for a whole "
                 f"set: / AP on the other set's {BASELINE_VARIANT} images, each set scored by "
                 "its own protocol, so that share also holds the sets' other differences); "
                 "CNN minus Haar with its interval and paired bootstrap p-value; verdict at "
                 f"the {level}% level. Reference column: the share kept by the cascade OpenCV "
                 "ships, trained elsewhere on other faces (no verdict is drawn from it).</p>"
                 "<table>"
                 + _row(["test set", "condition"] + [f"arm {name}" for name in arms]
                        + [f"reference: {d} share kept" for d in references], "th"))
    counts = {name: Counter[str]() for name in arms}
    for row in rows:
        texts = []
        for name in arms:
            cell = row["cells"].get(name)
            if cell is None:
                texts.append("")
                continue
            counts[name][cell["verdict"]] += 1
            p = "" if cell["p_value"] is None else f", {_p(cell['p_value'], samples)}"
            why = f" ({cell['why']})" if cell["why"] else ""
            texts.append(f"CNN {_ci(cell['cnn'], percent=True)}; Haar "
                         f"{_ci(cell['haar'], percent=True)}; CNN - Haar "
                         f"{_ci(cell['cnn_minus_haar'])}{p}: {cell['verdict']}{why}")
        texts += [_ci(row["reference"][d], percent=True) if d in row["reference"] else ""
                  for d in references]
        lines.append(_row([row["dataset"], _condition_label(row)] + texts))
    lines.append("</table>")
    tally = "; ".join(f"arm {name}: {_tally(counts[name])}" for name in arms
                      if counts[name])
    scale = []
    for dataset in sorted({r["dataset"] for r in rows}):
        run = next((r for r in summary["runs"] if r["dataset"] == dataset
                    and r["variant"] == BASELINE_VARIANT), None)
        if run is not None:
            scale.append(f"{dataset} {run['n_images']} images, {run['n_faces']} faces")
    small = [name for name, n in training_faces.items() if n < EVIDENCE_FACES]
    paragraph = (f"Over {len(rows)} conditions and {len(arms)} matched arm(s): {tally}. "
                 f"Test sets: {'; '.join(scale)}. Training faces per arm: "
                 + ", ".join(f"{name} {training_faces.get(name, 'unknown')}" for name in arms)
                 + ".")
    if small:
        paragraph += (f" Arm(s) {', '.join(small)} learned from fewer than {EVIDENCE_FACES:,} "
                      "faces: their verdicts demonstrate the pipeline and are not evidence "
                      "about the claim.")
    lines.append(f"<p>{html.escape(paragraph)}</p>")
    notes = [f"<li>arm {html.escape(name)}: {html.escape(arm['note'])}</li>"
             for name, arm in arms.items() if arm.get("note")]
    if notes:
        lines.append("<ul>" + "".join(notes) + "</ul>")
    return "\n".join(lines + _domain_section(settings, statistics, samples, level)
                     + _gain_section(arms, rows, samples, level))


def _folded_findings(sentences: list[str], summary: dict[str, Any]) -> str:
    """The pairwise sentences, one folded block per test set (its sentences start with its
    name); the closing note on the intervals stays open."""
    datasets = sorted({r["dataset"] for r in summary["runs"]}, key=len, reverse=True)
    blocks: dict[str, list[str]] = {}
    rest = []
    for sentence in sentences:
        name = next((d for d in datasets if sentence.startswith(f"{d}, ")), None)
        if name is None:
            rest.append(sentence)
        else:
            blocks.setdefault(name, []).append(sentence)
    parts = [f"<details><summary>{html.escape(name)}: {len(items)} comparisons</summary><ul>"
             + "".join(f"<li>{html.escape(s)}</li>" for s in items) + "</ul></details>"
             for name, items in sorted(blocks.items())]
    return "\n".join(parts + [f"<p>{html.escape(s)}</p>" for s in rest])


def _claim_check(comparison: dict[str, Any], cnn: str, level: str, samples: int,
                 baseline: str = f"{BASELINE_VARIANT} images") -> str:
    """Whether the CNN kept more of its AP than the Haar cascade on this variant (or group),
    relative to its AP on the ``baseline``."""
    test = comparison["relative_ap"]
    verdict, cnn_minus_haar = claim_verdict(test, comparison["a"] == cnn)
    if verdict == "undefined":
        return ("Claim check (the CNN holds up better than Haar): undefined here, since a "
                f"detector's AP on the {baseline} is 0.")
    outcome = {"not resolved": "not resolved by these data: the difference is not significant",
               "supported": "supported: the CNN keeps significantly more of its AP",
               "contradicted": "contradicted: the Haar cascade keeps significantly more of "
                               "its AP"}[verdict]
    return (f"Claim check (the CNN holds up better than Haar): {outcome} "
            f"(CNN minus Haar share kept {_fmt(cnn_minus_haar)}, "
            f"{_p(test['p_value'], samples)}, {level}% level).")


def _row(cells: list[Any], tag: str = "td") -> str:
    """One HTML table row, cell text escaped."""
    return "<tr>" + "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in cells) + "</tr>"


def _table(rows: list[dict[str, Any]], fp_points: list[int]) -> str:
    head = ["detector", "dataset", "variant", "images", "faces", "detections", "AP",
            f"AP / AP {BASELINE_VARIANT}"] + [f"DR @ {n} FP" for n in fp_points] + ["FP / image",
                                                                       "ms / image"]
    lines = ["<table>", _row(head, "th")]
    for r in rows:
        cells = [r["detector"], r["dataset"], r["variant"], r["n_images"], r["n_faces"],
                 r["n_detections"], _fmt(r["average_precision"]), _fmt(r.get("relative_ap"))]
        cells += [_fmt(r["detection_rate_at_fp"].get(str(n))) for n in fp_points]
        cells.append(_fmt(r.get("false_positives_per_image"), 2))
        cells.append(_fmt(r.get("ms_per_image_mean"), 1))
        lines.append(_row(cells))
    lines.append("</table>")
    return "\n".join(lines)


def _scored_faces(runs: list[dict[str, Any]]) -> list[str]:
    """Per dataset: faces too small to score (excluded), and faces smaller than the smallest
    face every compared detector searches (misses by construction unless excluded)."""
    lines, seen = [], set()
    for run in runs:
        if run["dataset"] in seen or run["variant"] != BASELINE_VARIANT:
            continue
        seen.add(run["dataset"])
        name = html.escape(run["dataset"])
        if run.get("negatives_only"):
            lines.append(f"<li>{name}: a face-free test set (negatives only): detectors are "
                         "compared by false positives per image; AP and detection rates are "
                         "undefined.</li>")
            continue
        excluded, below = run.get("n_faces_excluded", 0), run.get("n_faces_below_search_size", 0)
        total = run["n_faces"] + excluded
        text = f"{name}: {run['n_faces']} of {total} faces scored"
        if excluded:
            text += (f"; {excluded} smaller than evaluation.min_face_size "
                     f"{run['min_face_size']:g} px (sqrt of box area) excluded, counted "
                     "neither as misses nor, when detected, as false positives")
        if below:
            text += (f"; {below} faces are smaller than {run['search_min_size']:g} px, the "
                     "smallest face every compared detector searches"
                     + ("" if excluded else ", and count as misses for the detectors that "
                        "cannot find them"))
        elif run.get("search_min_size"):
            text += (f"; none is smaller than {run['search_min_size']:g} px (sqrt of box area), "
                     "the smallest face every compared detector searches")
        lines.append(f"<li>{text}.</li>")
    return lines


def _protocol(runs: list[dict[str, Any]]) -> str:
    """Which faces were scored, and which matching criterion and box calibration each
    dataset and detector used."""
    lines = ["<h2>Evaluation protocol</h2>",
             "<p>Every detector, reference detectors included, is matched to the ground truth "
             "by the same rule. Detectors draw boxes by different conventions (the reference "
             "detectors' libraries each their own); where a dataset names a calibration set, "
             "each detector's boxes are mapped by its own calibration fitted there, exactly "
             "alike for all.</p><ul>", *_scored_faces(runs)]
    seen = set()
    for run in runs:
        key = (run["detector"], run["dataset"])
        if key in seen:
            continue
        seen.add(key)
        criterion = run.get("criterion", {})
        if criterion.get("kind") == "landmarks":
            rule = (f"landmark criterion (eyes and mouth centre inside, size within "
                    f"{criterion['size_factor']:g}x) for {criterion['faces_judged_by_landmarks']}"
                    f" faces with landmarks, IoU >= {criterion['iou_threshold']:g} otherwise")
        else:
            rule = f"IoU >= {criterion.get('iou_threshold', 'n/a')}"
        calibration = run.get("box_calibration")
        boxes = ("boxes as the detector draws them" if not calibration else
                 f"boxes calibrated on {calibration['fitted_on']} ({calibration['n_pairs']} "
                 f"paired faces: centre shift {calibration['dx']:+.3f} w, "
                 f"{calibration['dy']:+.3f} h; size x{calibration['sw']:.3f}, "
                 f"x{calibration['sh']:.3f})")
        lines.append(f"<li>{html.escape(run['detector'])} on {html.escape(run['dataset'])}: "
                     f"{html.escape(rule)}; {html.escape(boxes)}.</li>")
    return "\n".join(lines + ["</ul>"])


def _reference_section(runs: list[dict[str, Any]], config: dict[str, Any],
                       fp_points: list[int]) -> str:
    """Reference detectors' rows, apart from the matched arms the findings are drawn from."""
    if not runs:
        return ""
    kinds = ", ".join(f"{html.escape(name)} ({html.escape(config['detectors'][name]['kind'])})"
                      for name in dict.fromkeys(r["detector"] for r in runs))
    return ("<h2>Reference detectors</h2><p>Pretrained detectors from other libraries, "
            f"trained on other and far more data: {kinds}. They show where hand-crafted "
            "HOG features and deployed CNNs stand on the same images; no finding or claim "
            "check is drawn from them.</p>" + _table(runs, fp_points))


def _group_section(settings: dict[str, Any], statistics: dict[str, Any]) -> str:
    """Grouped test sets (e.g. Yale B light-angle bins): per group, each detector's AP and
    its share of the baseline group's AP kept, with intervals; what each detector has already
    lost in the baseline group; and the claim check (CNN vs Haar share kept) per group."""
    runs = statistics.get("groups", {}).get("runs", [])
    if not runs:
        return ""
    samples = statistics["settings"]["bootstrap_samples"]
    level = f"{100 * (1 - statistics['settings']['confidence']):g}"
    roles = {name: role(d) for name, d in settings["config"]["detectors"].items()}
    references = reference_detectors(settings["config"])
    lines = ["<h2>Real shadows: results by image group</h2>"]
    for dataset in sorted({r["dataset"] for r in runs}):
        rows = [r for r in runs if r["dataset"] == dataset]
        baseline = rows[0]["baseline_group"]
        unit = statistics.get("resampling", {}).get(dataset, {})
        detectors = list(dict.fromkeys(r["detector"] for r in rows))
        groups = list(dict.fromkeys(r["group"] for r in rows))
        cell = {(r["detector"], r["group"]): r for r in rows}
        lines.append(
            f"<h3>{html.escape(dataset)}</h3><p>Baseline group: {html.escape(baseline)}; "
            "share kept = AP in a group / AP in the baseline group. Intervals resample "
            f"{html.escape(str(unit.get('unit', 'image')))} units "
            f"({unit.get('n_units', '?')} units, {unit.get('n_images', '?')} images).</p>"
            "<table>" + _row(["group", "images"] + [f"{d}: AP" for d in detectors]
                             + [f"{d}: share kept" for d in detectors], "th"))
        for group in groups:
            entries = [cell[d, group] for d in detectors]
            lines.append(_row([group, entries[0]["n_images"]]
                              + [_ci(e["average_precision"]) for e in entries]
                              + [_ci(e.get("relative_ap"), percent=True) if group != baseline
                                 else "(baseline)" for e in entries]))
        lines.append("</table><ul>")
        for detector in detectors:
            ap = cell[detector, baseline]["average_precision"]["estimate"]
            if ap is not None:
                lines.append(f"<li>{html.escape(detector)} already loses {_fmt(1 - ap)} of AP "
                             f"in the baseline group ({html.escape(baseline)}, AP "
                             f"{_fmt(ap)}), before the light moves: that loss is the canvas, "
                             "the crop or the detector, not the shadow, and the shares kept "
                             "are measured from it.</li>")
        for test in statistics["groups"]["comparisons"]:
            a, b = test["a"], test["b"]
            if (test["dataset"] != dataset or "relative_ap" not in test
                    or {roles.get(a), roles.get(b)} != {"cascade", "cnn"}
                    or a in references or b in references):
                continue
            lines.append(f"<li>{html.escape(test['group'])}, {html.escape(a)} vs "
                         f"{html.escape(b)}: " + html.escape(_claim_check(
                             test, a if roles[a] == "cnn" else b, level, samples,
                             f"{baseline} group")) + "</li>")
        lines.append("</ul>")
    return "\n".join(lines)


def _complexity_section(complexity: dict[str, Any] | None) -> str:
    """Totals per architecture and, folded, the per-layer tables."""
    if not complexity:
        return ""
    lines = ["<h2>Network complexity (one window, inference)</h2>",
             "<table><tr><th>architecture</th><th>window</th><th>parameters</th>"
             "<th>multiply-adds</th><th>activation memory</th></tr>"]
    for name, table in complexity["architectures"].items():
        lines.append(f"<tr><td>{name}</td><td>{table['window']}x{table['window']}</td>"
                     f"<td>{table['inference_parameters']:,}</td>"
                     f"<td>{table['total_multiply_adds']:,}</td>"
                     f"<td>{table['total_activation_bytes'] / 1024:.1f} KiB</td></tr>")
    lines.append("</table>")
    for name, table in complexity["architectures"].items():
        lines.append(f"<details><summary>{name}: layer by layer</summary><table><tr>"
                     "<th>layer</th><th>type</th><th>output (C x H x W)</th><th>parameters</th>"
                     "<th>multiply-adds</th><th>activations (bytes)</th></tr>")
        for row in table["layers"]:
            shape = " x ".join(map(str, row["output"]))
            lines.append(f"<tr><td>{row['layer']}</td><td>{row['type']}</td><td>{shape}</td>"
                         f"<td>{row['parameters']:,}</td><td>{row['multiply_adds']:,}</td>"
                         f"<td>{row['activation_bytes']:,}</td></tr>")
        lines.append("</table></details>")
    return "\n".join(lines)


def _cascade_section(histories: dict[str, dict[str, Any]]) -> str:
    """Per trained cascade: training set-up, time and one row per stage."""
    if not histories:
        return ""
    lines = ["<h2>Viola-Jones cascades trained here</h2>"]
    for name, record in histories.items():
        stages, setup = record["stages"], record["settings"]
        weak = sum(row["weak_classifiers"] for row in stages)
        lines.append(
            f"<p><b>{html.escape(name)}</b>: trained on {html.escape(setup['train_dataset'])} "
            f"({setup['window']}x{setup['window']} window, {setup['max_features'] or 'all'} "
            f"candidate features, device {html.escape(record['device'])}) in "
            f"{record['train_seconds']:.0f} s: {len(stages)} stages, {weak} weak classifiers. "
            f"Stage targets: detection rate {setup['stage_detection_rate']}, false positive "
            f"rate {setup['stage_false_positive_rate']}; overall false positive target "
            f"{setup['target_false_positive_rate']:g}. Rates are on each stage's own training "
            "windows (negatives: scene windows the earlier stages accept).</p>")
        head = ["stage", "weak classifiers", "DR", "FPR", "overall DR", "overall FPR",
                "positives", "negatives", "seconds"]
        lines += ["<table>", _row(head, "th")]
        for row in stages:
            lines.append(_row([row["stage"], row["weak_classifiers"],
                               _fmt(row["detection_rate"], 4),
                               _fmt(row["false_positive_rate"], 4),
                               _fmt(row["overall_detection_rate"], 4),
                               f"{row['overall_false_positive_rate']:.2e}",
                               row["positives"], row["negatives"], f"{row['seconds']:.1f}"]))
        lines.append("</table>")
    return "\n".join(lines)


STYLE = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;line-height:1.45}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px}
th{background:#eee}img{max-width:100%}figure{margin:1.5em 0}figcaption{color:#444}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}"""


def write_report(settings: dict[str, Any], summary_path: str | Path,
                 statistics_path: str | Path, figures: list[str], out: str | Path,
                 complexity_path: str | Path | None = None,
                 cascade_histories: list[str] | None = None) -> None:
    """Write the HTML report; ``cascade_histories`` are train-haar records
    (``<name>.stages.json``)."""
    summary = read_json(summary_path)
    histories = {Path(p).name.removesuffix(".stages.json"): read_json(p)
                 for p in cascade_histories or []}
    complexity = read_json(complexity_path) if complexity_path else None
    statistics = read_json(statistics_path)
    training_faces = {}
    for arm, path in settings.get("arm_training", {}).items():
        with np.load(path) as data:
            training_faces[arm] = len(data["faces"])
    config = settings["config"]
    references = reference_detectors(config)
    matched = [r for r in summary["runs"] if r["detector"] not in references]
    main = [r for r in matched if r["variant"] in settings["main_variants"]]
    sweep = [r for r in matched if r["variant"] not in settings["main_variants"]]
    reference_runs = [r for r in summary["runs"] if r["detector"] in references]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>Viola-Jones vs CNN: results</title>", f"<style>{STYLE}</style></head><body>",
        "<h1>Viola-Jones vs CNN face detection under shadow and cartoon variants</h1>",
        "<p>Claim under test: Haar features are fixed light/dark rectangle contrasts, so a "
        "Viola-Jones cascade should break when part of a face is shadowed or when the face is "
        "flat-shaded like a cartoon, while a CNN, which learns its own filters, should hold "
        "up. Both detectors run on the same test images in each variant, with the same "
        "ground-truth boxes; IoU threshold "
        f"{config['evaluation']['iou_threshold']}.</p>",
        _verdict_section(settings, statistics, summary, training_faces),
        "<h2>Findings: every pairwise comparison</h2>",
        _folded_findings(findings(settings, statistics), summary),
        "<h2>Main variants</h2>", _table(main, summary["fp_points"]),
        "<h2>Shadow strength sweep</h2>" + _table(sweep, summary["fp_points"])
        if settings["sweep"]["strengths"] else "",
        _reference_section(reference_runs, config, summary["fp_points"]),
        _group_section(settings, statistics),
        _protocol(summary["runs"]),
        _cascade_section(histories),
        _complexity_section(complexity),
        "<h2>Figures</h2>",
    ]
    grouped = bool(statistics.get("groups", {}).get("runs"))
    for figure in figures:
        path = Path(figure)
        if (path.name == "ap_vs_light_angle.png" and not grouped
                or path.name == "ap_vs_shadow_strength.png" and not settings["sweep"]["strengths"]):
            continue  # drawn for every run; it holds data only with a grouped set or a sweep
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f"<figure><img alt='{path.stem}' src='data:image/png;base64,{data}'>"
                     f"<figcaption><b>{path.stem}</b>: {html.escape(caption(path))}"
                     "</figcaption></figure>")
    parts += [
        "<h2>Provenance</h2><h3>Package versions</h3><pre>",
        html.escape(json.dumps(package_versions(), indent=1)),
        "</pre><h3>Configuration</h3><pre>", html.escape(json.dumps(config, indent=1)),
        "</pre></body></html>",
    ]
    with atomic_open(out, "w") as handle:
        handle.write("\n".join(parts))
    LOG.info("report written to %s", out)

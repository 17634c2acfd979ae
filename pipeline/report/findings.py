"""Generated sentences on every pairwise comparison of matched detectors, with the CNN-vs-Haar
share-kept comparison per variant and image group, from the statistics contract."""

from __future__ import annotations

from typing import Any

from pipeline.data.variants import BASELINE_VARIANT
from pipeline.detection.detectors import role
from pipeline.evaluation.contracts import Comparison, PairedTest, Statistics
from pipeline.report.numbers import ci, fmt, p_value
from pipeline.report.verdicts import difference_verdict, reference_detectors


def paired_sentence(test: PairedTest, a: str, b: str, what: str, statistics: Statistics) -> str:
    """One sentence on a paired test of ``a - b``."""
    numbers = (f"difference {fmt(test.estimate)} [{fmt(test.low)}, {fmt(test.high)}], "
               f"{p_value(test.p_value, statistics.samples)}")
    level = statistics.level
    if test.significant:
        winner = a if test.estimate > 0 else b
        return f"{winner} has the higher {what} ({numbers}; significant at the {level}% level)"
    return f"no significant difference in {what} ({numbers}; not significant at {level}%)"


def share_comparison(comparison: Comparison, cnn: str, statistics: Statistics,
                     baseline: str = f"{BASELINE_VARIANT} images") -> str:
    """Which of the CNN and the Haar cascade kept more of its AP (relative to its AP on the
    ``baseline``), at the uncorrected level; the verdict table asks this with the claim's two
    other questions, corrected for the number of cells."""
    test = comparison.relative_ap
    outcome, cnn_minus_haar = difference_verdict(test, comparison.a == cnn)
    if outcome == "undefined":
        return (f"Share kept, CNN vs Haar: undefined here, since a detector's AP on the "
                f"{baseline} is 0.")
    words = {"not resolved": "no significant difference",
             "CNN higher": "the CNN keeps significantly more of its AP",
             "Haar higher": "the Haar cascade keeps significantly more of its AP"}[outcome]
    return (f"Share kept, CNN vs Haar: {words} (CNN minus Haar {fmt(cnn_minus_haar)}, "
            f"{p_value(test.p_value, statistics.samples)}, {statistics.level}% level, "
            "uncorrected; the verdict table corrects for the number of cells).")


def cnn_of_pair(config: dict[str, Any], a: str, b: str) -> str | None:
    """The CNN of a cascade-vs-CNN pair of detectors; None for any other pair."""
    roles = {name: role(d) for name, d in config["detectors"].items()}
    if {roles.get(a), roles.get(b)} != {"cascade", "cnn"}:
        return None
    return a if roles[a] == "cnn" else b


def findings(config: dict[str, Any], main_variants: list[str], statistics: Statistics
             ) -> list[str]:
    """Per dataset and main variant, which of the matched (non-reference) detectors is better
    and how sure; the last sentence says what the intervals are."""
    intervals = {(r.detector, r.dataset, r.variant): r for r in statistics.runs}
    order = {v: i for i, v in enumerate(main_variants)}
    references = reference_detectors(config)
    comparisons = [c for c in statistics.comparisons if c.variant in order
                   and c.a not in references and c.b not in references]
    fp = statistics.settings["fp_for_summary"]
    sentences = []
    for c in sorted(comparisons, key=lambda c: (c.dataset, order[c.variant])):
        a, b = intervals[c.a, c.dataset, c.variant], intervals[c.b, c.dataset, c.variant]
        if c.negatives_only:
            sentences.append(
                f"{c.dataset}, {c.variant} (face-free test set: AP is undefined): false "
                f"positives per image {c.a} {ci(a.false_positives_per_image)} vs {c.b} "
                f"{ci(b.false_positives_per_image)}: "
                + paired_sentence(c.false_positives_per_image, c.a, c.b,
                                  "number of false positives per image", statistics) + ".")
            continue
        text = (f"{c.dataset}, {c.variant}: AP {c.a} {ci(a.average_precision)} vs {c.b} "
                f"{ci(b.average_precision)}: "
                + paired_sentence(c.average_precision, c.a, c.b, "AP", statistics)
                + f". Detection rate at {fp} false positives: "
                + paired_sentence(c.detection_rate, c.a, c.b, "detection rate", statistics)
                + ".")
        if c.relative_ap is not None:
            text += (f" Share of {BASELINE_VARIANT} AP kept: {c.a} "
                     f"{ci(a.relative_ap, percent=True)}, {c.b} "
                     f"{ci(b.relative_ap, percent=True)}.")
            cnn = cnn_of_pair(config, c.a, c.b)
            if cnn is not None:
                text += " " + share_comparison(c, cnn, statistics)
        sentences.append(text)
    sentences.append(
        f"Intervals are {round(100 * statistics.confidence)}% percentile bootstrap intervals "
        f"over test images ({statistics.samples} resamples, shared by all detectors and "
        "variants, so comparisons are paired); p-values are two-sided.")
    return sentences


def folded_findings(sentences: list[str], datasets: list[str]
                    ) -> tuple[dict[str, list[str]], list[str]]:
    """The sentences per test set (each starts with its set's name), and the rest."""
    by_length = sorted(datasets, key=len, reverse=True)
    blocks: dict[str, list[str]] = {}
    rest = []
    for sentence in sentences:
        name = next((d for d in by_length if sentence.startswith(f"{d}, ")), None)
        if name is None:
            rest.append(sentence)
        else:
            blocks.setdefault(name, []).append(sentence)
    return dict(sorted(blocks.items())), rest

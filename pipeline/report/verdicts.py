"""The verdict table and its companions as pure functions of the statistics contract (no HTML).

Per matched arm (a trained cascade and a CNN learned from the same images) and condition (each
main variant but the baseline, each image group but the baseline group, each cross-set share),
the verdict is the statistics stage's (:mod:`pipeline.evaluation.verdict_rule`: does Haar
break, does the CNN hold up, is the CNN better); here it is arranged in rows, with the bundled
cascade's share kept, each augmented arm's gains, and each arm's own-domain control.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pipeline.data.variants import BASELINE_VARIANT
from pipeline.detection.detectors import role, trained_models
from pipeline.evaluation.contracts import Interval, PairedTest, Statistics, StatisticsPart

# Below this many training faces a verdict demonstrates the pipeline; it is not evidence.
EVIDENCE_FACES = 1000



@dataclass(frozen=True)
class Condition:
    """Where a share kept is measured: a variant of a test set, an image group of it, or the
    whole set against another set's baseline (``reference_dataset``)."""

    dataset: str
    variant: str
    group: str | None = None
    reference_dataset: str | None = None

    @property
    def label(self) -> str:
        """The condition in words, e.g. ``shadow`` or ``light 45-70 deg``."""
        if self.group is not None:
            variant = "" if self.variant == BASELINE_VARIANT else f" ({self.variant})"
            return f"light {self.group}{variant}"
        if self.reference_dataset is not None:
            return f"the whole set, against {self.reference_dataset} {BASELINE_VARIANT}"
        return self.variant


@dataclass(frozen=True)
class VerdictCell:
    """One arm under one condition: both share-kept intervals and CNN minus Haar at the
    corrected level, the three questions' answers, the verdict, and why a cell is not judged
    (empty otherwise)."""

    cnn: Interval | None
    haar: Interval | None
    cnn_minus_haar: Interval | None
    verdict: str
    why: str = ""
    questions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VerdictRow:
    """One condition of the verdict table: a cell per judged arm, each augmented arm's gains,
    and the bundled cascades' share kept (uncorrected)."""

    condition: Condition
    cells: dict[str, VerdictCell]
    # per augmented arm: {"cnn" | "haar": the gain in share kept over the arm it augments}
    gains: dict[str, dict[str, PairedTest | None]] = field(default_factory=dict)
    reference: dict[str, Interval] = field(default_factory=dict)  # bundled cascades


@dataclass(frozen=True)
class DomainRow:
    """An arm on its own domain's held-apart test set: AP of both and CNN minus Haar."""

    arm: str
    dataset: str
    cnn: Interval | None
    haar: Interval | None
    cnn_minus_haar: PairedTest | None
    verdict: str


def difference_verdict(test: PairedTest | None, cnn_is_a: bool) -> tuple[str, float | None]:
    """Which detector is higher by a paired test of ``a - b`` (``CNN higher``, ``Haar higher``
    or ``not resolved``; ``undefined`` without an estimate), and CNN minus Haar."""
    if test is None or test.estimate is None or not math.isfinite(test.estimate):
        return "undefined", None
    cnn_minus_haar = test.estimate if cnn_is_a else -test.estimate
    if not test.significant:
        return "not resolved", cnn_minus_haar
    return ("CNN higher" if cnn_minus_haar > 0 else "Haar higher"), cnn_minus_haar


def reference_detectors(config: dict[str, Any]) -> set[str]:
    """Detectors of reference kinds (other libraries' pretrained models): reported apart from
    the matched arms, never in the findings."""
    return {name for name, d in config["detectors"].items() if role(d) == "reference"}


def bundled_cascades(config: dict[str, Any]) -> list[str]:
    """Cascade detectors not trained here (OpenCV's bundled): the verdict table's reference
    column."""
    return [name for name, d in config["detectors"].items()
            if role(d) == "cascade" and not trained_models(d)]


def _condition(entry: Any) -> Condition:
    return Condition(entry.dataset, entry.variant, entry.group, entry.reference_dataset)


def _parts(statistics: Statistics) -> tuple[StatisticsPart, ...]:
    """Variants, then image groups, then cross-set shares: the order of the verdict rows."""
    return statistics.main, statistics.groups, statistics.cross_sets


def shares_and_tests(statistics: Statistics
                     ) -> tuple[dict[tuple[str, Condition], Interval],
                                dict[tuple[str, str, Condition], PairedTest]]:
    """Share kept per (detector, condition) and its paired tests per (a, b, condition), at the
    uncorrected level (the reference column and the gains)."""
    shares: dict[tuple[str, Condition], Interval] = {}
    tests: dict[tuple[str, str, Condition], PairedTest] = {}
    for part in _parts(statistics):
        for run in part.runs:
            if run.relative_ap is not None:
                shares[run.detector, _condition(run)] = run.relative_ap
        for test in part.comparisons:
            if test.relative_ap is not None:
                tests[test.a, test.b, _condition(test)] = test.relative_ap
    return shares, tests


def difference(tests: dict[tuple[str, str, Condition], PairedTest], x: str, y: str,
               condition: Condition) -> PairedTest | None:
    """The paired test of x minus y; tests are stored with a, b sorted."""
    a, b = sorted((x, y))
    test = tests.get((a, b, condition))
    if test is None or test.estimate is None or a == x:
        return test
    return test.negated()


def verdict_rows(config: dict[str, Any], statistics: Statistics) -> list[VerdictRow]:
    """One row per condition with a judged arm, in the statistics' order (see
    :class:`VerdictRow`); none without matched arms."""
    if statistics.verdict is None:
        return []
    arms = config["report"]["arms"]
    shares, tests = shares_and_tests(statistics)
    rows: dict[Condition, VerdictRow] = {}
    for judged in statistics.verdict.cells:
        condition = Condition(judged.dataset, judged.variant, judged.group,
                              judged.reference_dataset)
        if condition not in rows:
            reference = {d: shares[d, condition] for d in bundled_cascades(config)
                         if (d, condition) in shares}
            rows[condition] = VerdictRow(condition, {}, {}, reference)
        row = rows[condition]
        row.cells[judged.arm] = VerdictCell(judged.cnn, judged.haar, judged.cnn_minus_haar,
                                            judged.verdict, judged.why, judged.questions)
        arm = arms.get(judged.arm, {})
        base = arms.get(arm.get("augments"))
        if base is not None:
            row.gains[judged.arm] = {kind: difference(tests, arm[kind], base[kind], condition)
                                     for kind in ("cnn", "haar")}
    return list(rows.values())


def domain_rows(config: dict[str, Any], statistics: Statistics) -> list[DomainRow]:
    """Per arm with a ``domain`` test set: both detectors' AP on its baseline variant and the
    paired test of CNN minus Haar AP, with its verdict."""
    runs = {(r.detector, r.dataset, r.variant): r for r in statistics.runs}
    tests = {(c.a, c.b, _condition(c)): c.average_precision for c in statistics.comparisons
             if c.average_precision is not None}  # face-free sets have none
    rows = []
    for name, arm in config["report"].get("arms", {}).items():
        domain = arm.get("domain")
        if domain is None:
            continue
        cnn, haar = arm["cnn"], arm["haar"]
        test = difference(tests, cnn, haar, Condition(domain, BASELINE_VARIANT))
        verdict, _ = difference_verdict(test, True)

        def ap(detector: str, dataset: str = domain) -> Interval | None:
            run = runs.get((detector, dataset, BASELINE_VARIANT))
            return None if run is None else run.average_precision
        rows.append(DomainRow(name, domain, ap(cnn), ap(haar), test, verdict))
    return rows


def tally(verdicts: list[str]) -> str:
    """Verdict counts in words, e.g. '2 not resolved, 1 supported'."""
    counts = Counter(verdicts)
    return ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))


def arm_tallies(arms: dict[str, Any], rows: list[VerdictRow]) -> dict[str, str]:
    """Per arm with judged cells: its verdict counts in words."""
    return {name: tally([r.cells[name].verdict for r in rows if name in r.cells])
            for name in arms if any(name in r.cells for r in rows)}


def small_arms(training_faces: dict[str, int]) -> list[str]:
    """Arms that learned from fewer than :data:`EVIDENCE_FACES` faces: their verdicts
    demonstrate the pipeline and are not evidence about the claim."""
    return [name for name, n in training_faces.items() if n < EVIDENCE_FACES]


def training_variance(seeds: list[int | None]) -> str:
    """Whether the intervals include training variance, in one sentence."""
    trained = [s for s in seeds if s is not None]
    if not trained:
        return "No detector here trains a model, so there is no training variance to resample."
    if len(trained) > 1:
        return (f"Intervals resample {len(trained)} training seeds and the test images, so "
                "they include training variance.")
    return ("One training seed per model: the intervals hold test-image variance only, not "
            "training variance (seeds: in the configuration).")


def one_line_answer(arms: dict[str, Any], rows: list[VerdictRow],
                    training_faces: dict[str, int], statistics: Statistics) -> str:
    """The answer in one sentence: per arm, its verdict counts; how many cells were tested at
    which level; and the scale caveat."""
    if not rows or statistics.verdict is None:
        return ("No verdict: the configuration names no matched arm with a condition to "
                "judge.")
    tallies = arm_tallies(arms, rows)
    rule = statistics.verdict
    text = "; ".join(f"arm {name}: {counts}" for name, counts in tallies.items())
    tested = (f"{rule.cells_tested} cells tested, each at level {rule.level:.2g}, "
              f"{rule.correction}" if rule.cells_tested else "no cell could be judged")
    text = (f"Does Viola-Jones break where the CNN holds up? Over {len(rows)} conditions: "
            f"{text} ({tested}).")
    text += " " + training_variance(statistics.training_seeds)
    small = [name for name in small_arms(training_faces) if name in tallies]
    if small:
        text += (f" Arm(s) {', '.join(small)} learned from fewer than {EVIDENCE_FACES:,} faces: "
                 "a demonstration of the pipeline, not evidence about the claim.")
    return text

"""Typed contracts of the evaluation stage's outputs, each file with a format version.

``metrics/<detector>/<draw>/<dataset>/<variant>.json`` (:class:`Metrics`), ``summary.json``
(:class:`Summary`) and ``statistics.json`` (:class:`Statistics`) are written with a
``format`` and ``format_version``; the report and the figures read them through
:func:`read_summary` and :func:`read_statistics`, which refuse a file of another kind or
version, or one missing a field, with an error naming the file. Numbers are shares in [0, 1]
(AP, detection rate, share kept) or counts; ``None`` stands for undefined (e.g. AP of a set
without faces).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.io import read_json

# Raise a version when a field changes meaning or is removed; readers refuse other versions.
# 2: the training seed of the run; 3: box_calibration chosen for AP, with its AP before/after
METRICS_VERSION = 3
SUMMARY_VERSION = 2  # 2: a row is the mean over training seeds, each seed's AP in ``seeds``
# 2: the verdict part, and the arms and roles it judged; 3: seeds resampled with the images
STATISTICS_VERSION = 3


class ContractError(ValueError):
    """A stage output that does not hold to its contract."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval."""

    estimate: float | None
    low: float | None
    high: float | None

    @classmethod
    def parse(cls, data: dict[str, Any] | None) -> Interval | None:
        return None if data is None else cls(data["estimate"], data["low"], data["high"])

    def negated(self) -> Interval:
        def neg(v: float | None) -> float | None:
            return None if v is None else -v
        return Interval(neg(self.estimate), neg(self.high), neg(self.low))


@dataclass(frozen=True)
class PairedTest(Interval):
    """A paired bootstrap test of ``a - b``: the difference, its interval, two-sided p."""

    p_value: float | None = None
    significant: bool = False

    @classmethod
    def parse(cls, data: dict[str, Any] | None) -> PairedTest | None:
        if data is None:
            return None
        return cls(data["estimate"], data["low"], data["high"], data["p_value"],
                   bool(data["significant"]))

    def negated(self) -> PairedTest:
        flipped = Interval.negated(self)
        return PairedTest(flipped.estimate, flipped.low, flipped.high, self.p_value,
                          self.significant)


@dataclass(frozen=True)
class RunStatistics:
    """One detector on one test set and variant (and image group, or cross-set share)."""

    detector: str
    dataset: str
    variant: str
    average_precision: Interval | None = None
    detection_rate: Interval | None = None
    relative_ap: Interval | None = None  # share of the baseline's AP kept
    false_positives_per_image: Interval | None = None
    negatives_only: bool = False
    group: str | None = None
    baseline_group: str | None = None
    n_images: int | None = None
    reference_dataset: str | None = None  # cross-set share: AP here / AP on this set
    # each training seed's point estimates ({seed, average_precision}); one entry with seed
    # None for a detector that trains nothing
    seeds: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Comparison:
    """Paired tests of detector ``a`` minus detector ``b`` under one condition."""

    dataset: str
    variant: str
    a: str
    b: str
    average_precision: PairedTest | None = None
    detection_rate: PairedTest | None = None
    relative_ap: PairedTest | None = None
    false_positives_per_image: PairedTest | None = None
    negatives_only: bool = False
    group: str | None = None
    baseline_group: str | None = None
    reference_dataset: str | None = None
    # grouped sets resampled by units, matched arms only: {p_value, permutations, exact, units}
    relative_ap_permutation: dict[str, Any] | None = None


INTERVAL_FIELDS = ("average_precision", "detection_rate", "relative_ap",
                   "false_positives_per_image")


def _parse_record(cls: type, data: dict[str, Any], test: type) -> Any:
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in data.items() if k in names}
    for name in INTERVAL_FIELDS:
        values[name] = test.parse(data.get(name))
    return cls(**values)


@dataclass(frozen=True)
class StatisticsPart:
    """Runs and paired tests of one kind of condition: variants, image groups or cross-set
    shares."""

    runs: list[RunStatistics] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    # conditions left out, each {dataset, reference_dataset, why} (cross-set shares whose two
    # APs were scored under different protocols)
    excluded: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, data: dict[str, Any] | None) -> StatisticsPart:
        data = data or {}
        return cls([_parse_record(RunStatistics, r, Interval) for r in data.get("runs", [])],
                   [_parse_record(Comparison, c, PairedTest)
                    for c in data.get("comparisons", [])],
                   list(data.get("excluded", [])))


@dataclass(frozen=True)
class Resampling:
    """What the bootstrap of one test set resamples: ``unit`` (image, subject, ...)."""

    unit: str
    n_units: int
    n_images: int
    n_seeds: int = 1  # training seeds resampled beside the units


@dataclass(frozen=True)
class JudgedCell:
    """The claim's verdict for one arm under one condition (:mod:`verdict_rule`): both shares
    kept and CNN minus Haar, at the corrected level; the three questions' answers."""

    arm: str
    dataset: str
    variant: str
    group: str | None
    reference_dataset: str | None
    cnn: Interval
    haar: Interval
    cnn_minus_haar: Interval
    questions: dict[str, str]
    verdict: str
    why: str

    @classmethod
    def parse(cls, data: dict[str, Any]) -> JudgedCell:
        values = {f.name: data[f.name] for f in fields(cls)}
        for name in ("cnn", "haar", "cnn_minus_haar"):
            values[name] = Interval.parse(data[name])
        return cls(**values)


@dataclass(frozen=True)
class Verdict:
    """The verdict rule's outcome: ``cells_tested`` judged cells, each at ``level`` =
    ``alpha`` / ``cells_tested`` (``correction``), with its ``margin`` and ``floor``;
    ``tail_resamples``: bootstrap resamples beyond each interval end at that level."""

    cells_tested: int
    alpha: float
    correction: str
    level: float
    margin: float
    floor: float
    tail_resamples: float
    cells: list[JudgedCell]

    @classmethod
    def parse(cls, data: dict[str, Any] | None) -> Verdict | None:
        if data is None:
            return None
        values = {f.name: data[f.name] for f in fields(cls)}
        values["cells"] = [JudgedCell.parse(c) for c in data["cells"]]
        return cls(**values)


@dataclass(frozen=True)
class Statistics:
    """statistics.json: intervals per run, paired tests, image groups and cross-set shares.

    ``settings`` is the statistics section it ran with (``bootstrap_samples``, ``confidence``,
    ``seed``, ``fp_for_summary``, ...)."""

    settings: dict[str, Any]
    resampling: dict[str, Resampling]
    main: StatisticsPart
    groups: StatisticsPart
    cross_sets: StatisticsPart
    verdict: Verdict | None = None  # present when the configuration names matched arms
    # the training seeds resampled beside the test images ([None]: no detector trains)
    training_seeds: list[int | None] = field(default_factory=lambda: [None])

    @property
    def runs(self) -> list[RunStatistics]:
        return self.main.runs

    @property
    def comparisons(self) -> list[Comparison]:
        return self.main.comparisons

    @property
    def samples(self) -> int:
        return int(self.settings["bootstrap_samples"])

    @property
    def confidence(self) -> float:
        return float(self.settings["confidence"])

    @property
    def level(self) -> str:
        """The significance level in percent, e.g. ``"5"``."""
        return f"{100 * (1 - self.confidence):g}"

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Statistics:
        return cls(settings=data["settings"],
                   resampling={k: Resampling(**v) for k, v in data.get("resampling", {}).items()},
                   main=StatisticsPart.parse(data),
                   groups=StatisticsPart.parse(data.get("groups")),
                   cross_sets=StatisticsPart.parse(data.get("cross_sets")),
                   verdict=Verdict.parse(data.get("verdict")),
                   training_seeds=list(data.get("training_seeds", [None])))


@dataclass(frozen=True)
class Summary:
    """summary.json: one row per detector x dataset x variant (metrics without per-image data,
    with timing): AP, detection rates and counts are means over the training seeds, and
    ``seeds`` holds each seed's AP; curves are the first seed's (``curve_seed``).
    ``fp_points`` are the false-positive counts of the detection-rate columns.
    Rows stay dicts (their columns are the CSV's); :data:`SUMMARY_COLUMNS` must be present."""

    fp_points: list[int]
    runs: list[dict[str, Any]]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Summary:
        for i, row in enumerate(data["runs"]):
            missing = [c for c in SUMMARY_COLUMNS if c not in row]
            if missing:
                raise KeyError(f"runs[{i}]: {', '.join(missing)}")
        return cls(list(data["fp_points"]), data["runs"])


SUMMARY_COLUMNS = ("detector", "dataset", "variant", "n_images", "n_faces", "n_detections",
                   "average_precision", "detection_rate_at_fp", "seeds")


@dataclass(frozen=True)
class Metrics:
    """One evaluate output: ``per_image`` matches (what the bootstrap resamples) and curves."""

    detector: str
    seed: int | None  # the training seed of the detector's models (None: trains nothing)
    dataset: str
    variant: str
    average_precision: float | None
    n_faces: int
    n_detections: int
    per_image: list[dict[str, Any]]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Metrics:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


KINDS = {"metrics": (METRICS_VERSION, Metrics), "summary": (SUMMARY_VERSION, Summary),
         "statistics": (STATISTICS_VERSION, Statistics)}


def stamped(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its format version first, checked against its contract before it is
    written (so no stage writes what the next cannot read)."""
    version, contract = KINDS[kind]
    try:
        contract.parse(data)
    except (KeyError, TypeError) as error:
        raise ContractError(f"{kind} output breaks its contract: {error}") from error
    return {"format": kind, "format_version": version,
            **{k: v for k, v in data.items() if k not in ("format", "format_version")}}


def read_checked(kind: str, path: str | Path) -> dict[str, Any]:
    """The JSON of ``path`` after checking its format version and contract (for stages that
    compute on the raw records, e.g. the bootstrap on metrics' per-image matches)."""
    version, contract = KINDS[kind]
    data = read_json(path)
    what = data.get("format") if isinstance(data, dict) else None
    if what != kind:
        raise ContractError(f"{path}: not a {kind} file (its format: {what})")
    found = data.get("format_version")
    if found != version:
        raise ContractError(f"{path}: {kind} format version {found}, this code reads version "
                            f"{version}; rerun the stage that writes it")
    try:
        contract.parse(data)
    except (KeyError, TypeError) as error:
        raise ContractError(f"{path}: not a {kind} file ({error})") from error
    return data


def read(kind: str, path: str | Path) -> Any:
    """The contract of ``kind`` read from ``path``; a clear error for another version."""
    return KINDS[kind][1].parse(read_checked(kind, path))


def read_statistics(path: str | Path) -> Statistics:
    """statistics.json as its contract (:class:`Statistics`)."""
    return read("statistics", path)


def read_summary(path: str | Path) -> Summary:
    """summary.json as its contract (:class:`Summary`)."""
    return read("summary", path)

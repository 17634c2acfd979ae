import copy
import zlib

import numpy as np
import pytest

from pipeline.boxes import Box, ImageRecord, Manifest
from pipeline.evaluation.bootstrap import bootstrap_run, paired_test, resample_counts
from pipeline.evaluation.conditions import CROSS_SET_STREAM
from pipeline.evaluation.metrics import evaluate, matches_from_metrics
from pipeline.evaluation.statistics import analyse
from tests.test_metrics import manifest, random_case

SETTINGS = {"bootstrap_samples": 200, "confidence": 0.95, "seed": 3, "fp_for_summary": 2}


def resampled(m: Manifest, picks: np.ndarray) -> Manifest:
    """The manifest with images ``picks`` (repeats renamed so that they stay distinct)."""
    return Manifest(m.kind, m.root, [ImageRecord(f"{k}_{m.images[i].file}", 100, 100,
                                                 m.images[i].boxes)
                                     for k, i in enumerate(picks)])


@pytest.mark.parametrize("seed", range(10))
def test_bootstrap_equals_evaluating_the_resampled_images(seed):
    rng = np.random.default_rng(seed)
    truth, detections = random_case(rng)
    metrics = evaluate(truth, detections, 0.5, [0, 2])
    picks = rng.integers(0, len(truth.images), size=(5, len(truth.images)))
    counts = np.stack([np.bincount(p, minlength=len(truth.images)) for p in picks])
    boot = bootstrap_run(matches_from_metrics(metrics), counts, [0, 2])
    for row, p in enumerate(picks):
        assert_resample_is(boot, row, evaluate(resampled(truth, p), resampled(detections, p),
                                               0.5, [0, 2]))


def assert_resample_is(boot, row: int, expected: dict) -> None:
    """Bootstrap resample ``row`` has the AP and detection rates (0 and 2 FP) of ``expected``,
    the metrics of evaluating that resample's images explicitly."""
    if np.isnan(expected["average_precision"]):
        assert np.isnan(boot.average_precision[row])
        return
    assert boot.average_precision[row] == pytest.approx(expected["average_precision"])
    for n in (0, 2):
        assert boot.detection_rate[n][row] == pytest.approx(
            expected["detection_rate_at_fp"][str(n)])


def test_resample_counts_draw_n_images_each():
    counts = resample_counts(7, 100, seed=1)
    assert counts.shape == (100, 7) and np.all(counts.sum(axis=1) == 7)
    assert np.array_equal(counts, resample_counts(7, 100, seed=1))
    assert 0.55 < (counts > 0).mean() < 0.75  # 1 - (6/7)^7 = 0.66 of images drawn per resample


def run(detector, variant, truth, detections):
    metrics = evaluate(truth, detections, 0.5, [SETTINGS["fp_for_summary"]])
    return {"detector": detector, "dataset": "d", "variant": variant, **metrics}


@pytest.fixture(scope="module")
def scenario():
    """'perfect' finds every face; 'weak' finds about half, with false positives."""
    rng = np.random.default_rng(0)
    truth = [[Box(*rng.uniform(0, 60, 2), 30, 30)] for _ in range(40)]
    weak = [[Box(b.x, b.y, b.w, b.h, rng.random()) for b in boxes if rng.random() < 0.5]
            + [Box(70, 70, 20, 20, rng.random())] for boxes in truth]
    perfect = [[Box(b.x, b.y, b.w, b.h, 1.0) for b in boxes] for boxes in truth]
    t = manifest("ground_truth", truth)
    return [run("perfect", v, t, manifest("detections", perfect)) for v in ("original", "x")] + [
        run("weak", "original", t, manifest("detections", perfect)),
        run("weak", "x", t, manifest("detections", weak))]


def test_intervals_and_paired_tests(scenario):
    result = analyse(scenario, SETTINGS)
    runs = {(r["detector"], r["variant"]): r for r in result["runs"]}
    assert runs["perfect", "x"]["average_precision"] == {"estimate": 1.0, "low": 1.0, "high": 1.0}
    weak = runs["weak", "x"]["average_precision"]
    assert weak["low"] < weak["estimate"] < weak["high"] < 1.0
    assert runs["weak", "x"]["relative_ap"]["estimate"] == pytest.approx(weak["estimate"])
    by_variant = {c["variant"]: c for c in result["comparisons"]}
    assert by_variant["original"]["average_precision"]["p_value"] == 1.0  # identical runs
    assert not by_variant["original"]["average_precision"]["significant"]
    assert by_variant["x"]["average_precision"]["significant"]
    assert by_variant["x"]["average_precision"]["p_value"] < 0.01
    assert by_variant["x"]["relative_ap"]["estimate"] > 0  # perfect keeps more than weak
    assert analyse(scenario, SETTINGS) == result  # seeded


def test_unpaired_images_are_refused(scenario):
    broken = copy.deepcopy(scenario)
    broken[-1]["per_image"] = broken[-1]["per_image"][1:]
    with pytest.raises(ValueError, match="cannot pair"):
        analyse(broken, SETTINGS)


def test_paired_test_p_value_symmetry():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.1, 0.05, 1000), rng.normal(0.0, 0.05, 1000)
    forward, backward = paired_test(a, b, 0.1, 0.95), paired_test(b, a, -0.1, 0.95)
    assert forward["p_value"] == pytest.approx(backward["p_value"])
    assert forward["low"] == pytest.approx(-backward["high"])


def grouped_case(rng, n_subjects=4, per_subject=3):
    """A random case whose images belong to subjects (several images each) and light groups."""
    truth, detections = random_case(rng)
    while len(truth.images) < n_subjects * per_subject:
        more_truth, more_detections = random_case(rng)
        truth.images += more_truth.images
        detections.images += more_detections.images
    truth.images, detections.images = (m.images[:n_subjects * per_subject]
                                       for m in (truth, detections))
    for index, (t, d) in enumerate(zip(truth.images, detections.images, strict=True)):
        t.file = d.file = f"{index}.png"
        t.attributes = {"subject": index // per_subject,
                        "group": ["0-20 deg", "20-45 deg", "45-70 deg"][index % per_subject]}
    return truth, detections


def grouped_runs(detectors: tuple[str, str], dataset: str) -> list[dict]:
    """Metrics of two detectors on one grouped case of 6 subjects x 3 light groups: the first
    finds what random_case gives, the second about half of it."""
    rng = np.random.default_rng(3)
    truth, detections = grouped_case(rng, n_subjects=6)
    worse = Manifest("detections", ".", [
        ImageRecord(r.file, r.width, r.height, [b for b in r.boxes if rng.random() < 0.6])
        for r in detections.images])
    return [{"detector": name, "dataset": dataset, "variant": "original",
             **evaluate(truth, found, 0.5, [2], resample_unit="subject")}
            for name, found in zip(detectors, (detections, worse), strict=True)]


@pytest.mark.parametrize("seed", range(6))
def test_subject_bootstrap_equals_evaluating_resampled_subject_sets(seed):
    """Drawing a subject k times counts each of its images k times: the bootstrap AP equals
    evaluating a test set built explicitly from the drawn subjects' images."""
    from pipeline.evaluation.bootstrap import unit_resample_counts

    rng = np.random.default_rng(seed)
    truth, detections = grouped_case(rng)
    metrics = evaluate(truth, detections, 0.5, [0, 2], resample_unit="subject")
    units = [m["unit"] for m in metrics["per_image"]]
    assert units == [str(r.attributes["subject"]) for r in truth.images]
    counts = unit_resample_counts(units, 8, seed)
    boot = bootstrap_run(matches_from_metrics(metrics), counts, [0, 2])
    subjects = sorted(set(units), key=units.index)
    drawn = resample_counts(len(subjects), 8, seed)  # the subject draws behind ``counts``
    for row in range(8):
        picks = [i for s, k in enumerate(drawn[row]) for _ in range(k)
                 for i, u in enumerate(units) if u == subjects[s]]
        assert sorted(picks) == sorted(np.repeat(np.arange(len(units)), counts[row]))
        assert_resample_is(boot, row, evaluate(resampled(truth, picks),
                                               resampled(detections, picks), 0.5, [0, 2]))


def test_image_units_resample_exactly_as_before():
    from pipeline.evaluation.bootstrap import unit_resample_counts

    files = [f"{k}.png" for k in range(9)]
    assert np.array_equal(unit_resample_counts(files, 50, 4), resample_counts(9, 50, 4))


def test_a_missing_resample_attribute_is_named():
    truth, detections = random_case(np.random.default_rng(0))
    with pytest.raises(ValueError, match="no 'subject' attribute"):
        evaluate(truth, detections, 0.5, [0], resample_unit="subject")


def test_groups_get_intervals_shares_of_the_baseline_group_and_paired_tests():
    """Per light-angle group: each detector's AP interval, its share of the first (near-
    frontal) group's AP kept, and paired tests; the estimates are the metrics' own."""
    runs = grouped_runs(("a", "b"), "yale")
    result = analyse(runs, SETTINGS)
    assert result["resampling"]["yale"] == {"unit": "subject", "n_units": 6, "n_images": 18,
                                            "n_seeds": 1}
    groups = {(r["detector"], r["group"]): r for r in result["groups"]["runs"]}
    assert sorted({g for _, g in groups}) == ["0-20 deg", "20-45 deg", "45-70 deg"]
    for (name, group), entry in groups.items():
        metrics = next(r for r in runs if r["detector"] == name)["groups"][group]
        assert entry["average_precision"]["estimate"] == metrics["average_precision"]
        assert entry["baseline_group"] == "0-20 deg"
        if group == "0-20 deg":
            assert "relative_ap" not in entry
        else:
            base = next(r for r in runs if r["detector"] == name)["groups"]["0-20 deg"]
            assert entry["relative_ap"]["estimate"] == pytest.approx(
                metrics["average_precision"] / base["average_precision"])
    tests = {t["group"]: t for t in result["groups"]["comparisons"]}
    assert set(tests) == {"0-20 deg", "20-45 deg", "45-70 deg"}
    assert "relative_ap" not in tests["0-20 deg"] and "relative_ap" in tests["45-70 deg"]
    shares = {name: groups[name, "45-70 deg"]["relative_ap"]["estimate"] for name in "ab"}
    assert tests["45-70 deg"]["relative_ap"]["estimate"] == pytest.approx(
        shares["a"] - shares["b"])


def test_cross_set_share_equals_evaluating_independently_resampled_sets():
    """A set that is a condition of another: share kept = AP here / AP on the other set's
    original images, its interval the percentiles of explicitly re-evaluated resamples (this
    set with the dataset's resamples, the other with its own stream), paired across detectors."""
    rng = np.random.default_rng(5)
    sets = {"photo": 12, "toon": 9}
    truth = {name: manifest("ground_truth", [[Box(*rng.uniform(0, 60, 2), 30, 30)]
                                             for _ in range(n)]) for name, n in sets.items()}
    found = {(d, name): manifest("detections", [
        [Box(b.x + rng.uniform(-9, 9), b.y, b.w, b.h, rng.random()) for b in record.boxes
         if rng.random() < keep] + [Box(70, 70, 20, 20, rng.random())]
        for record in truth[name].images])
        for d, keep in (("cnn", 0.9), ("haar", 0.6)) for name in sets}
    runs = [{"detector": d, "dataset": name, "variant": "original",
             **evaluate(truth[name], found[d, name], 0.5, [2])} for d, name in found]
    settings = {**SETTINGS, "bootstrap_samples": 60, "cross_set_shares": {"toon": "photo"}}
    result = analyse(runs, settings)["cross_sets"]
    own = resample_counts(sets["toon"], 60, settings["seed"])
    stream = [settings["seed"], CROSS_SET_STREAM, zlib.crc32(b"toon/photo")]
    other = resample_counts(sets["photo"], 60, np.random.SeedSequence(stream))

    def explicit(d: str) -> np.ndarray:
        ap = {name: np.array([evaluate(resampled(truth[name], np.repeat(np.arange(n), row)),
                                       resampled(found[d, name], np.repeat(np.arange(n), row)),
                                       0.5, [2])["average_precision"] for row in counts])
              for name, n, counts in (("toon", 9, own), ("photo", 12, other))}
        return ap["toon"] / ap["photo"]

    ratios = {d: explicit(d) for d in ("cnn", "haar")}
    ap = {(r["detector"], r["dataset"]): r["average_precision"] for r in runs}
    for entry in result["runs"]:
        d = entry["detector"]
        assert entry["reference_dataset"] == "photo"
        share = entry["relative_ap"]
        assert share["estimate"] == pytest.approx(ap[d, "toon"] / ap[d, "photo"])
        assert (share["low"], share["high"]) == pytest.approx(
            tuple(np.percentile(ratios[d], [2.5, 97.5])))
    (test,) = result["comparisons"]
    assert (test["a"], test["b"]) == ("cnn", "haar")
    low, high = np.percentile(ratios["cnn"] - ratios["haar"], [2.5, 97.5])
    assert (test["relative_ap"]["low"], test["relative_ap"]["high"]) == pytest.approx((low, high))

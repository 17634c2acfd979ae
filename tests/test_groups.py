"""Grouped test sets (Yale B light-angle bins): the report's group section and figure are drawn
from statistics.json, and say what they resampled."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
from scipy.stats import rankdata

from pipeline.boxes import Box, ImageRecord, Manifest
from pipeline.evaluation.contracts import Statistics
from pipeline.evaluation.metrics import evaluate, matches_from_metrics
from pipeline.evaluation.statistics import analyse
from pipeline.report.figures import plot_light_angle
from pipeline.report.numbers import ci as _ci
from pipeline.report.sections import group_blocks
from tests.test_statistics import SETTINGS, grouped_case, grouped_runs


def grouped_statistics():
    return analyse(grouped_runs(("cnn", "haar"), "yaleb"), SETTINGS)


CONFIG = {"detectors": {"cnn": {"kind": "cnn"}, "haar": {"kind": "haar"}}}


def test_group_section_cells_are_the_statistics():
    statistics = grouped_statistics()
    [block] = group_blocks(CONFIG, Statistics.parse(statistics))
    assert block.title == "yaleb"
    assert "resample subject units (6 units, 18 images)" in block.text
    cells = [block.table.head] + [[str(c) for c in row] for row in block.table.rows]
    assert cells[0] == ["group", "images", "cnn: AP", "haar: AP", "cnn: share kept",
                        "haar: share kept"]
    by_key = {(r["detector"], r["group"]): r for r in statistics["groups"]["runs"]}
    for row in cells[1:]:
        group = row[0]
        assert row[2] == _ci(by_key["cnn", group]["average_precision"])
        assert row[3] == _ci(by_key["haar", group]["average_precision"])
        if group == "0-20 deg":
            assert row[4:] == ["(baseline)", "(baseline)"]
        else:
            assert row[5] == _ci(by_key["haar", group]["relative_ap"], percent=True)
    # One claim check per non-baseline group, and the baseline loss of each detector.
    items = " ".join(block.items)
    assert items.count("Share kept, CNN vs Haar") == 2
    assert items.count("already loses") == 2


def test_no_group_section_without_grouped_sets():
    assert group_blocks(CONFIG, Statistics.parse({"settings": SETTINGS, "runs": []})) == []


def test_light_angle_figure_is_drawn_with_and_without_groups(tmp_path):
    plot_light_angle({"fp_for_summary": 2}, grouped_statistics(), tmp_path / "groups.png")
    plot_light_angle({"fp_for_summary": 2}, {"runs": []}, tmp_path / "none.png")
    for name in ("groups.png", "none.png"):
        image = matplotlib.image.imread(tmp_path / name)
        assert image.shape[0] > 100 and image.std() > 0


def test_side_and_top_light_are_grouped_apart():
    from pipeline.data.real_datasets import light_group
    from pipeline.evaluation.metrics import group_order

    edges = [0, 20, 45, 70, 90, 135]
    assert light_group(10, 5, edges, "axis") == "0-20 deg"  # the baseline bin has no axis
    assert light_group(50, 10, edges, "axis") == "azimuth 45-70 deg"
    assert light_group(-10, 50, edges, "axis") == "elevation 45-70 deg"
    assert light_group(20, 0, edges, "axis") == "azimuth 20-45 deg"  # 20.0, not 19.999
    assert light_group(50, 10, edges, "angle") == "45-70 deg"
    labels = ["elevation 20-45 deg", "azimuth 45-70 deg", "0-20 deg", "azimuth 20-45 deg",
              "elevation 90-135 deg", "azimuth >135 deg"]
    assert sorted(labels, key=group_order) == [
        "0-20 deg", "azimuth 20-45 deg", "azimuth 45-70 deg", "azimuth >135 deg",
        "elevation 20-45 deg", "elevation 90-135 deg"]


def permutation_case():
    """Two detectors on 4 subjects x 3 light groups: matches and the subject of each image."""
    rng = np.random.default_rng(5)
    truth, detections = grouped_case(rng, n_subjects=4)
    worse = Manifest("detections", ".", [
        ImageRecord(r.file, r.width, r.height, [b for b in r.boxes if rng.random() < 0.5])
        for r in detections.images])
    return truth, detections, worse


def quantile_scored(found):
    """The detections with each score replaced by its quantile among the detector's own."""
    scores = [box.score for record in found.images for box in record.boxes]
    quantiles = iter(rankdata(scores) / len(scores))
    return Manifest("detections", ".", [
        ImageRecord(r.file, r.width, r.height,
                    [Box(b.x, b.y, b.w, b.h, float(next(quantiles))) for b in r.boxes])
        for r in found.images])


def share_by_evaluation(truth, found, group):
    """Share kept, group / baseline group, by evaluating the explicit image sets."""
    def ap(label):
        keep = [r.attributes["group"] == label for r in truth.images]
        subset = [Manifest(m.kind, ".", [r for r, k in zip(m.images, keep, strict=True) if k])
                  for m in (truth, found)]
        return evaluate(*subset, 0.5, [2])["average_precision"]
    return ap(group) / ap("0-20 deg")


def test_permutation_test_equals_swapping_subjects_by_hand():
    """Every one of the 2**4 patterns swaps whole subjects between the detectors; the p-value
    is the share of patterns at least as extreme, computed here by evaluating each swapped
    pair of detection sets explicitly."""
    from pipeline.evaluation.conditions import permutation_share_test

    truth, a, b = permutation_case()
    metrics = [evaluate(truth, found, 0.5, [2], resample_unit="subject") for found in (a, b)]
    units = [m["unit"] for m in metrics[0]["per_image"]]
    labels = [r.attributes["group"] for r in truth.images]
    members = {g: np.flatnonzero([label == g for label in labels]) for g in set(labels)}
    observed = share_by_evaluation(truth, a, "45-70 deg") - share_by_evaluation(
        truth, b, "45-70 deg")
    result = permutation_share_test(*([matches_from_metrics(m)] for m in metrics), units,
                                    members["45-70 deg"], members["0-20 deg"], observed, 0)
    assert (result["permutations"], result["exact"], result["units"]) == (16, True, 4)
    subjects = sorted(set(units))
    extreme = 0
    ranked_a, ranked_b = quantile_scored(a), quantile_scored(b)
    for pattern in range(16):
        flipped = {s for k, s in enumerate(subjects) if pattern >> k & 1}
        sides = [Manifest("detections", ".", [
            (y if units[i] in flipped else x).images[i] for i in range(len(units))])
            for x, y in ((ranked_a, ranked_b), (ranked_b, ranked_a))]
        difference = (share_by_evaluation(truth, sides[0], "45-70 deg")
                      - share_by_evaluation(truth, sides[1], "45-70 deg"))
        extreme += abs(difference) >= abs(observed) - 1e-12
    assert result["p_value"] == pytest.approx(extreme / 16)
    # the detectors' score scales do not matter: rescale b's scores, p stays
    rescaled = Manifest("detections", ".", [
        ImageRecord(r.file, r.width, r.height,
                    [Box(x.x, x.y, x.w, x.h, 100 + 0.01 * x.score) for x in r.boxes])
        for r in b.images])
    moved = evaluate(truth, rescaled, 0.5, [2], resample_unit="subject")
    again = permutation_share_test([matches_from_metrics(metrics[0])],
                                   [matches_from_metrics(moved)], units, members["45-70 deg"],
                                   members["0-20 deg"], observed, 0)
    assert again["p_value"] == result["p_value"]
    # identical detectors: every pattern gives the observed difference, 0
    same = permutation_share_test([matches_from_metrics(metrics[0])],
                                  [matches_from_metrics(metrics[0])], units,
                                  members["45-70 deg"], members["0-20 deg"], 0.0, 0)
    assert same["p_value"] == 1.0


def test_matched_arms_on_subject_sets_get_a_permutation_test():
    settings = {**SETTINGS, "arms": {"photo": {"haar": "haar", "cnn": "cnn"}}}
    statistics = analyse(grouped_runs(("cnn", "haar"), "yaleb"), settings)
    tests = [t for t in statistics["groups"]["comparisons"] if "relative_ap" in t]
    assert tests and all(t["relative_ap_permutation"]["permutations"] == 64 for t in tests)
    assert all(0 < t["relative_ap_permutation"]["p_value"] <= 1 for t in tests)
    [block] = group_blocks(CONFIG, Statistics.parse(statistics))
    assert sum("exact permutation test over 6 subject units" in item for item in block.items) \
        == len(tests)
    unmatched = analyse(grouped_runs(("cnn", "haar"), "yaleb"), SETTINGS)  # no arms
    assert all("relative_ap_permutation" not in t for t in unmatched["groups"]["comparisons"])

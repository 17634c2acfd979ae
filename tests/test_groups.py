"""Grouped test sets (Yale B light-angle bins): the report's group section and figure are drawn
from statistics.json, and say what they resampled."""

from __future__ import annotations

import re

import matplotlib.image

from pipeline.evaluation.statistics import analyse
from pipeline.report.figures import plot_light_angle
from pipeline.report.render import _ci, _group_section
from tests.test_statistics import SETTINGS, grouped_runs


def grouped_statistics():
    return analyse(grouped_runs(("cnn", "haar"), "yaleb"), SETTINGS)


SETTINGS_FOR_REPORT = {"fp_for_summary": 2, "config": {"detectors": {
    "cnn": {"kind": "cnn"}, "haar": {"kind": "haar"}}}}


def test_group_section_cells_are_the_statistics():
    statistics = grouped_statistics()
    section = _group_section(SETTINGS_FOR_REPORT, statistics)
    assert "Real shadows" in section and "resample subject units (6 units, 18 images)" in section
    rows = re.findall(r"<tr>(.*?)</tr>", section)
    cells = [re.findall(r"<t[dh]>(.*?)</t[dh]>", row) for row in rows]
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
    assert section.count("Claim check") == 2
    assert section.count("already loses") == 2


def test_no_group_section_without_grouped_sets():
    assert _group_section(SETTINGS_FOR_REPORT, {"settings": SETTINGS, "runs": []}) == ""


def test_light_angle_figure_is_drawn_with_and_without_groups(tmp_path):
    plot_light_angle({"fp_for_summary": 2}, grouped_statistics(), tmp_path / "groups.png")
    plot_light_angle({"fp_for_summary": 2}, {"runs": []}, tmp_path / "none.png")
    for name in ("groups.png", "none.png"):
        image = matplotlib.image.imread(tmp_path / name)
        assert image.shape[0] > 100 and image.std() > 0

"""Grouped test sets (Yale B light-angle bins): the report's group section and figure are drawn
from statistics.json, and say what they resampled."""

from __future__ import annotations

import matplotlib.image

from pipeline.evaluation.contracts import Statistics
from pipeline.evaluation.statistics import analyse
from pipeline.report.figures import plot_light_angle
from pipeline.report.numbers import ci as _ci
from pipeline.report.sections import group_blocks
from tests.test_statistics import SETTINGS, grouped_runs


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

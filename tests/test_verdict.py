"""The report's verdict table: each cell is read from statistics.json, and arms are matched."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from pipeline.boxes import Box
from pipeline.config import ConfigError, validate_config
from pipeline.metrics import evaluate
from pipeline.report import _ci, _verdict_section, claim_verdict, verdict_rows
from pipeline.statistics import analyse
from tests.test_metrics import manifest
from tests.test_statistics import SETTINGS, grouped_runs

ARMS = {"photo": {"haar": "haar_trained", "cnn": "cnn"}}
CONFIG = {"report": {"arms": ARMS}, "detectors": {"haar_trained": {"kind": "haar"},
                                                  "cnn": {"kind": "cnn"}}}
REPORT_SETTINGS = {"main_variants": ["original", "shadow"], "config": CONFIG}


def variant_statistics():
    """cnn finds every face in both variants; haar_trained loses about half under shadow."""
    rng = np.random.default_rng(1)
    truth = [[Box(*rng.uniform(0, 60, 2), 30, 30)] for _ in range(30)]
    found = {"cnn": {v: [[Box(b.x, b.y, b.w, b.h, 1.0) for b in t] for t in truth]
                     for v in ("original", "shadow")},
             "haar_trained": {"original": [[Box(b.x, b.y, b.w, b.h, 1.0) for b in t]
                                           for t in truth],
                              "shadow": [[Box(b.x, b.y, b.w, b.h, rng.random()) for b in t
                                          if rng.random() < 0.5] + [Box(70, 70, 20, 20, 0.9)]
                                         for t in truth]}}
    runs = [{"detector": d, "dataset": "faces", "variant": v,
             **evaluate(manifest("ground_truth", truth), manifest("detections", boxes), 0.5, [2])}
            for d, by_variant in found.items() for v, boxes in by_variant.items()]
    return analyse(runs, SETTINGS)


def test_verdict_cells_are_the_statistics():
    statistics = variant_statistics()
    rows = verdict_rows(REPORT_SETTINGS, statistics)
    assert [(r["dataset"], r["variant"], r["group"]) for r in rows] == [("faces", "shadow", None)]
    cell = rows[0]["cells"]["photo"]
    run = {(r["detector"], r["variant"]): r for r in statistics["runs"]}
    test = next(c for c in statistics["comparisons"] if c["variant"] == "shadow")
    assert (test["a"], test["b"]) == ("cnn", "haar_trained")
    assert cell["cnn"] == run["cnn", "shadow"]["relative_ap"]
    assert cell["haar"] == run["haar_trained", "shadow"]["relative_ap"]
    assert cell["cnn_minus_haar"]["estimate"] == test["relative_ap"]["estimate"] > 0
    assert cell["p_value"] == test["relative_ap"]["p_value"]
    assert cell["verdict"] == "supported"
    html = _verdict_section(REPORT_SETTINGS, statistics,
                            {"runs": [{"dataset": "faces", "variant": "original",
                                       "n_images": 30, "n_faces": 30}]}, {"photo": 50})
    table_cells = re.findall(r"<td>(.*?)</td>", html)
    assert table_cells[:2] == ["faces", "shadow"]
    assert _ci(cell["cnn"], percent=True) in table_cells[2]
    assert table_cells[2].endswith("supported")
    assert "1 supported" in html and "faces 30 images, 30 faces" in html
    assert "photo 50" in html and "not evidence" in html  # 50 training faces: a demonstration


def test_cnn_minus_haar_keeps_its_sign_whichever_detector_sorts_first():
    test = {"estimate": 0.2, "low": 0.1, "high": 0.3, "p_value": 0.01, "significant": True}
    assert claim_verdict(test, cnn_is_a=True) == ("supported", 0.2)
    assert claim_verdict(test, cnn_is_a=False) == ("contradicted", -0.2)
    assert claim_verdict(dict(test, significant=False), True) == ("not resolved", 0.2)
    assert claim_verdict(dict(test, estimate=None), True) == ("undefined", None)


def test_light_groups_are_rows_of_the_verdict():
    statistics = analyse(grouped_runs(("cnn", "haar_trained"), "yaleb"), SETTINGS)
    rows = verdict_rows(REPORT_SETTINGS, statistics)
    assert [r["group"] for r in rows] == ["20-45 deg", "45-70 deg"]
    groups = {(r["detector"], r["group"]): r for r in statistics["groups"]["runs"]}
    for row in rows:
        assert row["cells"]["photo"]["haar"] == groups["haar_trained", row["group"]]["relative_ap"]


def test_evidence_scale_is_stated_without_the_warning_for_large_training_sets():
    html = _verdict_section(REPORT_SETTINGS, variant_statistics(),
                            {"runs": [{"dataset": "faces", "variant": "original",
                                       "n_images": 30, "n_faces": 30}]}, {"photo": 6713})
    assert "photo 6713" in html and "not evidence" not in html


def test_no_arm_no_verdict():
    settings = {**REPORT_SETTINGS, "config": {**CONFIG, "report": {}}}
    assert "No verdict" in _verdict_section(settings, variant_statistics(), {"runs": []}, {})


@pytest.mark.parametrize("change, message", [
    (lambda c: c["report"]["arms"]["photo"].__setitem__("haar", "haar"),
     "report.arms.photo.haar: 'haar' is not a haar detector with a trained_cascade"),
    (lambda c: c["report"]["arms"]["photo"].__setitem__("cnn", "haar"),
     "report.arms.photo.cnn"),
    (lambda c: c["cascades"]["haar_trained"].__setitem__("train_dataset", "other"),
     "not matched"),
])
def test_arms_must_be_matched(default_config, change, message):
    config = copy.deepcopy(default_config)
    config["datasets"]["other"] = dict(config["datasets"]["embedded"], evaluate=False)
    change(config)
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(config)

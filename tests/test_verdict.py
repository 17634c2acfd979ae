"""The report's verdict table: each cell is read from statistics.json, and arms are matched."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.boxes import Box
from pipeline.config import ConfigError, validate_config
from pipeline.evaluation.contracts import Interval, PairedTest, Statistics
from pipeline.evaluation.metrics import evaluate
from pipeline.evaluation.statistics import analyse
from pipeline.evaluation.verdict_rule import verdict_of
from pipeline.report.numbers import ci as _ci
from pipeline.report.render import verdict_view
from pipeline.report.verdicts import difference_verdict, domain_rows
from pipeline.report.verdicts import verdict_rows as typed_verdict_rows
from tests.test_metrics import manifest
from tests.test_statistics import SETTINGS, grouped_runs
from tests.test_workflow import REPO, job_counts

ARMS = {"photo": {"haar": "haar_trained", "cnn": "cnn"}}
CONFIG = {"report": {"arms": ARMS}, "detectors": {"haar_trained": {"kind": "haar"},
                                                  "cnn": {"kind": "cnn"}},
          "variants": {"original": {"kind": "original"},
                       "shadow": {"kind": "shadow", "family": "edge"}}}
REPORT_SETTINGS = {"main_variants": ["original", "shadow"], "config": CONFIG}


def judged(arms=ARMS, **extra):
    """Statistics settings that judge ``arms`` (the rule's margin and floor: defaults)."""
    return {**SETTINGS, "arms": arms, "main_variants": ["original", "shadow"], **extra}


def verdict_rows(settings, statistics):
    return typed_verdict_rows(settings["config"], Statistics.parse(statistics))


def interval(entry):
    """An interval dict of statistics.json as the contract reads it (tests compare the two)."""
    return None if entry is None else {k: entry[k] for k in ("estimate", "low", "high")}


def as_dict(value):
    return None if value is None else {k: getattr(value, k) for k in
                                       ("estimate", "low", "high", "p_value", "significant")
                                       if hasattr(value, k)}


def verdict_section(settings, statistics, summary, training_faces):
    """The verdict's view (table, summary, domain table, gains, notes) as one text."""
    view = verdict_view(settings["config"], Statistics.parse(statistics), summary["runs"],
                        training_faces)
    tables = [view["table"], view["domains"]] + [b.table for b in view["gains"]]
    return "\n".join([view["answer"], view["summary"], *view["notes"],
                      *(b.title + "\n" + b.text for b in view["gains"]),
                      *("\t".join(t.head) for t in tables),
                      *("\t".join(map(str, row)) for t in tables for row in t.rows)])


def variant_statistics():
    """cnn finds every face in both variants; haar_trained loses about half under shadow."""
    return analyse(variant_statistics_runs(), judged())


def variant_statistics_runs():
    rng = np.random.default_rng(1)
    truth = [[Box(*rng.uniform(0, 60, 2), 30, 30)] for _ in range(30)]
    found = {"cnn": {v: [[Box(b.x, b.y, b.w, b.h, 1.0) for b in t] for t in truth]
                     for v in ("original", "shadow")},
             "haar_trained": {"original": [[Box(b.x, b.y, b.w, b.h, 1.0) for b in t]
                                           for t in truth],
                              "shadow": [[Box(b.x, b.y, b.w, b.h, rng.random()) for b in t
                                          if rng.random() < 0.5] + [Box(70, 70, 20, 20, 0.9)]
                                         for t in truth]}}
    runs = [{"detector": d, "seed": 0, "dataset": "faces", "variant": v,
             **evaluate(manifest("ground_truth", truth), manifest("detections", boxes), 0.5, [2])}
            for d, by_variant in found.items() for v, boxes in by_variant.items()]
    return runs


def test_verdict_cells_are_the_statistics():
    statistics = variant_statistics()
    rows = verdict_rows(REPORT_SETTINGS, statistics)
    assert [(r.condition.dataset, r.condition.variant, r.condition.group)
            for r in rows] == [("faces", "shadow", None)]
    cell = rows[0].cells["photo"]
    run = {(r["detector"], r["variant"]): r for r in statistics["runs"]}
    test = next(c for c in statistics["comparisons"] if c["variant"] == "shadow")
    assert (test["a"], test["b"]) == ("cnn", "haar_trained")
    assert as_dict(cell.cnn) == run["cnn", "shadow"]["relative_ap"]
    assert as_dict(cell.haar) == run["haar_trained", "shadow"]["relative_ap"]
    assert as_dict(cell.cnn_minus_haar) == interval(test["relative_ap"])
    assert cell.cnn_minus_haar.estimate > 0
    # one cell tested: its level is the uncorrected one, so its intervals are the statistics'
    assert statistics["verdict"]["cells_tested"] == 1
    assert statistics["verdict"]["level"] == pytest.approx(0.05)
    assert cell.questions == {"haar_breaks": "yes", "cnn_holds": "yes", "cnn_better": "yes"}
    assert cell.verdict == "supported"
    view = verdict_view(CONFIG, Statistics.parse(statistics),
                        [{"dataset": "faces", "variant": "original", "n_images": 30,
                          "n_faces": 30}], {"photo": 50})
    html = verdict_section(REPORT_SETTINGS, statistics,
                           {"runs": [{"dataset": "faces", "variant": "original",
                                      "n_images": 30, "n_faces": 30}]}, {"photo": 50})
    table_cells = view["table"].rows[0]
    assert table_cells[:2] == ["faces", "shadow"]
    assert _ci(cell.cnn, percent=True) in table_cells[2]
    assert table_cells[2].endswith("supported")
    assert "1 supported" in html and "faces 30 images, 30 faces" in html
    assert "photo 50" in html and "not evidence" in html  # 50 training faces: a demonstration


def test_cnn_minus_haar_keeps_its_sign_whichever_detector_sorts_first():
    test = PairedTest(0.2, 0.1, 0.3, p_value=0.01, significant=True)
    assert difference_verdict(test, cnn_is_a=True) == ("CNN higher", 0.2)
    assert difference_verdict(test, cnn_is_a=False) == ("Haar higher", -0.2)
    assert difference_verdict(PairedTest(0.2, 0.1, 0.3, 0.2, False), True) == (
        "not resolved", 0.2)
    assert difference_verdict(PairedTest(None, None, None), True) == ("undefined", None)
    assert difference_verdict(None, True) == ("undefined", None)


def test_an_arm_is_compared_in_its_own_domain_as_the_statistics_say():
    """report.arms.<arm>.domain: both detectors' AP on that set and the paired CNN - Haar test,
    read from statistics.json with the CNN's sign whichever detector sorts first."""
    rng = np.random.default_rng(4)
    truth = [[Box(*rng.uniform(0, 60, 2), 30, 30)] for _ in range(30)]
    found = {"cnn": [[Box(b.x, b.y, b.w, b.h, 1.0) for b in t] for t in truth],
             "haar_trained": [[Box(b.x, b.y, b.w, b.h, rng.random()) for b in t
                               if rng.random() < 0.4] + [Box(70, 70, 20, 20, 0.9)]
                              for t in truth]}
    runs = [{"detector": d, "dataset": "cartoons", "variant": "original",
             **evaluate(manifest("ground_truth", truth), manifest("detections", boxes), 0.5, [2])}
            for d, boxes in found.items()]
    arms = {"photo": dict(ARMS["photo"], domain="cartoons")}
    statistics = analyse(runs, judged(arms))
    settings = {"main_variants": ["original"],
                "config": dict(CONFIG, report={"arms": arms})}
    [row] = domain_rows(settings["config"], Statistics.parse(statistics))
    ap = {r["detector"]: r["average_precision"] for r in statistics["runs"]}
    [test] = [c["average_precision"] for c in statistics["comparisons"]]
    assert (as_dict(row.cnn), as_dict(row.haar)) == (ap["cnn"], ap["haar_trained"])
    assert row.cnn_minus_haar.estimate == pytest.approx(
        ap["cnn"]["estimate"] - ap["haar_trained"]["estimate"])
    assert row.cnn_minus_haar.estimate == test["estimate"] > 0  # cnn sorts first
    assert row.cnn_minus_haar.p_value == test["p_value"] and row.verdict == "CNN higher"
    # A CNN that sorts after the cascade: the test is stored as haar_trained - zcnn, and the
    # row keeps the CNN's sign.
    flipped = analyse([dict(r, detector="zcnn") if r["detector"] == "cnn" else r for r in runs],
                      judged(arms))
    assert [(c["a"], c["b"]) for c in flipped["comparisons"]] == [("haar_trained", "zcnn")]
    renamed = {"photo": dict(arms["photo"], cnn="zcnn")}
    [again] = domain_rows(dict(CONFIG, report={"arms": renamed}), Statistics.parse(flipped))
    assert as_dict(again.cnn_minus_haar) == pytest.approx(as_dict(row.cnn_minus_haar))
    assert again.verdict == "CNN higher"
    html = verdict_section(dict(settings, main_variants=["original", "shadow"]), statistics,
                            {"runs": []}, {"photo": 6713})
    assert "CNN - Haar\tverdict" in html and _ci(ap["cnn"]) in html


def test_light_groups_are_rows_of_the_verdict():
    statistics = analyse(grouped_runs(("cnn", "haar_trained"), "yaleb"), judged())
    rows = verdict_rows(REPORT_SETTINGS, statistics)
    assert [r.condition.group for r in rows] == ["20-45 deg", "45-70 deg"]
    groups = {(r["detector"], r["group"]): r for r in statistics["groups"]["runs"]}
    for row in rows:
        assert (as_dict(row.cells["photo"].haar)
                == groups["haar_trained", row.condition.group]["relative_ap"])


def test_evidence_scale_is_stated_without_the_warning_for_large_training_sets():
    html = verdict_section(REPORT_SETTINGS, variant_statistics(),
                            {"runs": [{"dataset": "faces", "variant": "original",
                                       "n_images": 30, "n_faces": 30}]}, {"photo": 6713})
    assert "photo 6713" in html and "not evidence" not in html


def test_no_arm_no_verdict():
    settings = {**REPORT_SETTINGS, "config": {**CONFIG, "report": {"arms": {}}}}
    assert verdict_section(settings, variant_statistics(), {"runs": []}, {}).startswith(
        "No verdict")


@pytest.mark.parametrize("change, message", [
    (lambda c: c["report"]["arms"]["photo"].__setitem__("haar", "haar"),
     "report.arms.photo.haar: 'haar' is not a cascade detector with a trained_cascade"),
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


def arms_runs():
    """Five detectors on a photo set (original, shadow) and a cartoon set (original) that is a
    condition of it; each keeps its own share of faces under shadow and on cartoons."""
    rng = np.random.default_rng(2)
    keep = {"cnn": (0.9, 0.8), "haar_trained": (0.5, 0.4), "haar": (0.4, 0.5),
            "cnn_lit": (1.0, 0.8), "haar_lit": (0.7, 0.4)}          # shadow, cartoon

    def found(truth, share):
        return [[Box(b.x, b.y, b.w, b.h, rng.random()) for b in t if rng.random() < share]
                + [Box(70, 70, 20, 20, 0.5 * rng.random())] for t in truth]

    photo = [[Box(*rng.uniform(0, 60, 2), 30, 30)] for _ in range(40)]
    toon = [[Box(*rng.uniform(0, 60, 2), 30, 30)] for _ in range(30)]
    cases = [("photo", "original", photo, lambda d: 1.0), ("photo", "shadow", photo,
                                                             lambda d: keep[d][0]),
             ("toon", "original", toon, lambda d: keep[d][1])]
    runs = [{"detector": d, "dataset": s, "variant": v,
             **evaluate(manifest("ground_truth", t), manifest("detections", found(t, share(d))),
                        0.5, [2])}
            for s, v, t, share in cases for d in keep]
    return runs


def arms_statistics():
    return analyse(arms_runs(), judged(AUGMENTED_ARMS, cross_set_shares={"toon": "photo"}))


AUGMENTED_ARMS = {**ARMS, "photo_lit": {"haar": "haar_lit", "cnn": "cnn_lit", "augments": "photo"}}
AUGMENTED = {**REPORT_SETTINGS, "config": {
    "report": {"arms": AUGMENTED_ARMS},
    "detectors": {"haar_trained": {"kind": "haar", "trained_cascade": "haar_trained"},
                  "haar_lit": {"kind": "haar", "trained_cascade": "haar_lit"},
                  "haar": {"kind": "haar"}, "cnn": {"kind": "cnn"}, "cnn_lit": {"kind": "cnn"}},
    "cascades": {"haar_trained": {}, "haar_lit": {}}, "variants": CONFIG["variants"]}}


def test_cross_set_rows_reference_column_and_gains_are_the_statistics():
    statistics = arms_statistics()
    rows = verdict_rows(AUGMENTED, statistics)
    assert [(r.condition.dataset, r.condition.variant, r.condition.reference_dataset)
            for r in rows] == [
        ("photo", "shadow", None), ("toon", "original", "photo")]
    cross = {r["detector"]: r["relative_ap"] for r in statistics["cross_sets"]["runs"]}
    within = {r["detector"]: r["relative_ap"] for r in statistics["runs"]
              if r["variant"] == "shadow"}
    tests = {(c["a"], c["b"], c.get("reference_dataset")): c["relative_ap"]
             for c in statistics["comparisons"] + statistics["cross_sets"]["comparisons"]
             if "relative_ap" in c}
    for row, shares in zip(rows, (within, cross), strict=True):
        reference = row.condition.reference_dataset
        assert {k: as_dict(v) for k, v in row.reference.items()} == {"haar": shares["haar"]}
        for arm, haar, cnn in (("photo", "haar_trained", "cnn"), ("photo_lit", "haar_lit",
                                                                   "cnn_lit")):
            cell = row.cells[arm]
            test = tests[cnn, haar, reference]           # cnn sorts before haar
            # the same estimates; intervals at the corrected level (4 cells), so wider
            for judged_share, plain in ((cell.cnn, shares[cnn]), (cell.haar, shares[haar]),
                                        (cell.cnn_minus_haar, test)):
                assert judged_share.estimate == pytest.approx(plain["estimate"])
                assert judged_share.low <= plain["low"] and judged_share.high >= plain["high"]
        gains = {k: as_dict(v) for k, v in row.gains["photo_lit"].items()}
        assert set(row.gains) == {"photo_lit"}
        assert gains["cnn"] == tests["cnn", "cnn_lit", reference] | {
            "estimate": -tests["cnn", "cnn_lit", reference]["estimate"],
            "low": -tests["cnn", "cnn_lit", reference]["high"],
            "high": -tests["cnn", "cnn_lit", reference]["low"]}   # cnn_lit minus cnn
        assert gains["haar"] == tests["haar_lit", "haar_trained", reference]
        assert gains["haar"]["estimate"] == pytest.approx(
            shares["haar_lit"]["estimate"] - shares["haar_trained"]["estimate"])
    html = verdict_section(AUGMENTED, statistics, {"runs": []}, {"photo": 5000})
    assert "reference: haar share kept" in html
    assert "the whole set, against photo original" in html
    assert "Gain from augmentation: arm photo_lit over arm photo" in html
    counts = {(kind, up): sum(bool(r.gains["photo_lit"][kind].significant)
                              and (r.gains["photo_lit"][kind].estimate > 0) == up
                              for r in rows) for kind in ("cnn", "haar") for up in (True, False)}
    assert (f"the augmentation of arm photo_lit raised the CNN share kept significantly in "
            f"{counts['cnn', True]} and lowered it in {counts['cnn', False]}; it raised the Haar "
            f"share kept in {counts['haar', True]} and lowered it in {counts['haar', False]}"
            in html)
    assert counts["cnn", True] + counts["haar", True] > 0  # the case has a significant gain
    noted = copy.deepcopy(AUGMENTED)
    noted["config"]["report"]["arms"]["photo"]["note"] = "its own <domain>"
    assert "arm photo: its own <domain>" in verdict_section(noted, statistics, {"runs": []}, {})


@pytest.mark.parametrize("change, message", [
    (lambda c: c["report"]["arms"].__setitem__("lit", {"haar": "haar_trained", "cnn": "cnn",
                                                       "augments": "nothing"}),
     "report.arms.lit.augments: 'nothing' is not another arm"),
    (lambda c: c["report"]["arms"].__setitem__("lit", {"haar": "haar_trained", "cnn": "cnn",
                                                       "augments": "lit"}),
     "report.arms.lit.augments: 'lit' is not another arm"),
    (lambda c: c["report"]["arms"].__setitem__("lit", {"haar": "haar_trained", "cnn": "cnn",
                                                       "augments": "photo"}),
     "report.arms.lit.augments: 'photo' shares a detector with it"),
    (lambda c: c["report"]["arms"].update(
        lit={"haar": "haar_trained", "cnn": "cnn", "augments": "photo"},
        photo={"haar": "haar_trained", "cnn": "cnn", "augments": "lit"}),
     "augments an arm itself"),
    (lambda c: c["statistics"].__setitem__("cross_set_shares", {"embedded": "embedded"}),
     "a test set cannot be a condition of itself"),
    (lambda c: (c["datasets"].__setitem__("empty", dict(c["datasets"]["embedded"],
                                                        negatives_only=True)),
                c["statistics"].__setitem__("cross_set_shares", {"empty": "embedded"})),
     "statistics.cross_set_shares.empty: 'empty' is face-free"),
    (lambda c: c["statistics"].__setitem__("cross_set_shares", {"embedded": "webfaces"}),
     "statistics.cross_set_shares.embedded: 'webfaces' is not a test set"),
    (lambda c: c["report"]["arms"]["photo"].__setitem__("domain", "webfaces"),
     "report.arms.photo.domain: 'webfaces' is not a test set"),
])
def test_augmented_arms_and_cross_set_shares_are_checked(default_config, change, message):
    config = copy.deepcopy(default_config)
    change(config)
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(config)


def test_a_new_arm_is_added_by_configuration_alone(default_config, tmp_path):
    """An overlay adds a model, a cascade, their two detectors and an arm (with an
    illumination block, augmenting photo): a dry run plans both trainings, both detectors on
    every test set and variant, and the report; no code names the arm."""
    illumination = {"probability": 0.5, "shadow_strength": 0.8, "shadow_softness": 0.08,
                    "gradient": 40, "gamma": 1.8, "local_contrast": 3.0}
    overlay = {
        "models": {"cnn_new": {**default_config["models"]["cnn"], "illumination": illumination}},
        "cascades": {"haar_new": {**default_config["cascades"]["haar_trained"],
                                  "illumination": illumination}},
        "detectors": {"cnn_new": {**default_config["detectors"]["cnn"], "model": "cnn_new"},
                      "haar_new": {**default_config["detectors"]["haar_trained"],
                                   "trained_cascade": "haar_new"}},
        "report": {"arms": {"new": {"haar": "haar_new", "cnn": "cnn_new", "augments": "photo",
                                    "differences": default_config["report"]["arms"]["photo"][
                                        "differences"]}}}}
    (tmp_path / "new_arm.yaml").write_text(yaml.safe_dump(overlay))

    def plan(*configs: Path) -> str:
        command = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--snakefile",
                   str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                   *map(str, configs)]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout + result.stderr

    before = plan(REPO / "config" / "default.yaml")
    after = plan(REPO / "config" / "default.yaml", tmp_path / "new_arm.yaml")
    runs = [f"results/metrics/{d}/seed0/embedded/{v}.json" for d in ("cnn_new", "haar_new")
            for v in default_config["variants"]]
    for path in ["results/models/seed0/cnn_new.pt", "results/models/seed0/haar_new.xml", *runs]:
        assert path in after and path not in before
    assert job_counts(after)["train_cnn"] == job_counts(before)["train_cnn"] + 1
    assert job_counts(after)["train_haar"] == job_counts(before)["train_haar"] + 1
    assert job_counts(after)["report"] == 1
    assert not (tmp_path / "results").exists()  # planned, nothing run


def test_a_share_over_a_near_zero_baseline_is_not_judged():
    """haar_trained finds almost nothing on the original images: its share kept under shadow
    is left to noise, so the cell says so instead of giving a verdict."""
    rng = np.random.default_rng(4)
    truth = [[Box(*rng.uniform(0, 60, 2), 30, 30)] for _ in range(30)]
    found = {"cnn": {v: truth for v in ("original", "shadow")},
             "haar_trained": {v: [t if k % 10 == 0 else [] for k, t in enumerate(truth)]
                              for v in ("original", "shadow")}}
    runs = [{"detector": d, "dataset": "faces", "variant": v,
             **evaluate(manifest("ground_truth", truth),
                        manifest("detections", [[Box(b.x, b.y, b.w, b.h, 1.0) for b in t]
                                                + [Box(70, 70, 20, 20, 0.9)] for t in boxes]),
                        0.5, [2])}
            for d, by_variant in found.items() for v, boxes in by_variant.items()]
    statistics = analyse(runs, judged())
    haar_ap = next(r["average_precision"] for r in statistics["runs"]
                   if r["detector"] == "haar_trained" and r["variant"] == "original")
    assert haar_ap["low"] < 0.2  # the floor (config default)
    (row,) = verdict_rows(REPORT_SETTINGS, statistics)
    cell = row.cells["photo"]
    assert cell.verdict == "not judged" and cell.questions == {}
    assert cell.why == ("baseline AP interval reaches below the floor 0.2: haar_trained "
                        f"{haar_ap['low']:.2f}")
    assert statistics["verdict"]["cells_tested"] == 0  # a cell not judged is not counted
    assert verdict_rows(REPORT_SETTINGS, variant_statistics())[0].cells["photo"].why == ""


def cell(cnn, haar, difference, margin=0.2):
    """The verdict of intervals given as (low, high) pairs."""
    return verdict_of(*(Interval(sum(i) / 2, *i) for i in (cnn, haar, difference)), margin)[0]


@pytest.mark.parametrize("cnn, haar, difference, expected", [
    ((0.85, 0.95), (0.3, 0.6), (0.3, 0.6), "supported"),           # all three yes
    ((0.80, 0.95), (0.3, 0.6), (0.3, 0.6), "supported"),           # holds: at least 1 - margin
    ((0.60, 0.75), (0.2, 0.4), (0.1, 0.4), "partly supported"),    # CNN better but also breaks
    ((0.70, 0.90), (0.2, 0.4), (0.1, 0.4), "partly supported"),    # CNN holding up not shown
    ((0.85, 0.95), (0.82, 0.99), (-0.1, 0.1), "contradicted"),     # Haar holds up
    ((0.40, 0.60), (0.6, 0.75), (-0.3, -0.1), "contradicted"),     # Haar keeps more
    ((0.40, 0.60), (0.4, 0.6), (-0.1, 0.1), "contradicted"),       # CNN breaks, no better
    ((0.85, 0.95), (0.5, 0.9), (0.0, 0.3), "not resolved"),        # Haar breaking not shown
    ((0.85, 0.95), (0.3, 0.6), (-0.05, 0.5), "not resolved"),      # CNN better not shown
])
def test_the_three_questions_give_the_verdict(cnn, haar, difference, expected):
    assert cell(cnn, haar, difference) == expected


def test_an_undefined_interval_answers_nothing():
    verdict, questions = verdict_of(Interval(None, None, None), Interval(0.4, 0.3, 0.5),
                                    Interval(None, None, None), 0.2)
    assert verdict == "not resolved"
    assert questions == {"haar_breaks": "yes", "cnn_holds": "open", "cnn_better": "open"}


def test_each_cell_is_judged_at_alpha_over_the_cells_tested():
    """Two arms on the same condition: two cells, each at 0.05 / 2, so its intervals are the
    97.5% percentile intervals of the same resamples (wider than the 95% ones)."""
    arms = {"photo": ARMS["photo"], "again": ARMS["photo"]}
    statistics = analyse(variant_statistics_runs(), judged(arms))
    rule = statistics["verdict"]
    assert (rule["cells_tested"], rule["correction"]) == (2, "bonferroni")
    assert rule["level"] == pytest.approx(0.025)
    assert rule["tail_resamples"] == pytest.approx(200 * 0.025 / 2)
    single = analyse(variant_statistics_runs(), judged())["verdict"]["cells"][0]
    for judged_cell in rule["cells"]:
        for kind in ("cnn", "haar", "cnn_minus_haar"):
            wide, narrow = judged_cell[kind], single[kind]
            assert wide["estimate"] == narrow["estimate"]
            assert wide["low"] <= narrow["low"] and wide["high"] >= narrow["high"]
        assert judged_cell["haar"]["high"] > single["haar"]["high"] or (
            judged_cell["haar"]["low"] < single["haar"]["low"])


def test_a_cross_set_share_of_two_protocols_leaves_the_verdict():
    """Cartoon frames scored by IoU against photos scored by landmarks: their APs measure
    different things, so the share is not formed and its cell is not judged at all."""
    landmarks = {"kind": "landmarks", "iou_threshold": 0.5, "size_factor": 2.0,
                 "faces_judged_by_landmarks": 40}
    runs = [dict(r, criterion=landmarks) if r["dataset"] == "photo" else r for r in arms_runs()]
    statistics = analyse(runs, judged(AUGMENTED_ARMS, cross_set_shares={"toon": "photo"}))
    assert statistics["cross_sets"]["runs"] == statistics["cross_sets"]["comparisons"] == []
    [excluded] = statistics["cross_sets"]["excluded"]
    assert (excluded["dataset"], excluded["reference_dataset"]) == ("toon", "photo")
    assert "IoU >= 0.5 vs landmark criterion (size within 2x)" in excluded["why"]
    assert {c["dataset"] for c in statistics["verdict"]["cells"]} == {"photo"}
    assert statistics["verdict"]["cells_tested"] == 2  # two arms on the photo shadow row
    view = verdict_view(AUGMENTED["config"], Statistics.parse(statistics), [], {})
    assert any(note.startswith("toon against photo original: left out of the verdict")
               for note in view["notes"])

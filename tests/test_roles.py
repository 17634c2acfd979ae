"""Tuning kept apart from testing: roles, deterministic splits, the refusal of a set that is both
tuned and tested on, and a verdict computed on test sets only."""

from __future__ import annotations

import copy
import re

import pytest

from pipeline.boxes import Box, ImageRecord, Manifest
from pipeline.config import ConfigError, validate_config
from pipeline.data.datasets import build_dataset
from pipeline.data.roles import in_part, keep_part, role_conflicts, split_key
from pipeline.evaluation.contracts import Statistics
from pipeline.evaluation.statistics import analyse
from pipeline.report.render import verdict_view
from tests.test_verdict import CONFIG, judged, variant_statistics_runs


def records(n: int, unit: str | None = None) -> Manifest:
    return Manifest("ground_truth", ".", [
        ImageRecord(f"{k:05d}_x.png", 10, 10, [Box(0, 0, 5, 5)],
                    attributes={"source_file": f"img{k}.jpg",
                                **({unit: str(k // 4)} if unit else {})})
        for k in range(n)])


def test_the_two_parts_of_a_split_partition_the_set_by_name():
    manifest = records(400)
    a = keep_part(manifest, {"part": "a", "fraction": 0.5})
    b = keep_part(manifest, {"part": "b", "fraction": 0.5})
    names = {r.attributes["source_file"] for r in manifest.images}
    part_a = {r.attributes["source_file"] for r in a.images}
    part_b = {r.attributes["source_file"] for r in b.images}
    assert part_a | part_b == names and not part_a & part_b
    assert 150 < len(part_a) < 250  # about half
    # by name, not position: the same image lands in the same part in another folder listing
    reordered = Manifest("ground_truth", ".", list(reversed(manifest.images)))
    assert {r.attributes["source_file"] for r in keep_part(
        reordered, {"part": "a", "fraction": 0.5}).images} == part_a
    assert a.meta["split"] == {"part": "a", "fraction": 0.5, "by": "image", "of_images": 400}
    small = keep_part(manifest, {"part": "a", "fraction": 0.1})
    assert 20 < len(small.images) < 60


def test_a_set_resampled_by_subjects_splits_whole_subjects():
    manifest = records(80, unit="subject")
    a = keep_part(manifest, {"part": "a"}, "subject")
    subjects_a = {r.attributes["subject"] for r in a.images}
    rest = {r.attributes["subject"] for r in manifest.images} - subjects_a
    assert subjects_a and rest
    assert len(a.images) == 4 * len(subjects_a)  # every image of a kept subject
    assert all(in_part(s, {"part": "b"}) for s in rest)


def annotated(**extra):
    return {"kind": "annotated", "format": "box_list", "root": "/data/set",
            "sources": [{"annotations": "/data/set/gt.txt"}], "evaluate": True, **extra}


@pytest.mark.parametrize("tune, test, refused", [
    ({}, {}, True),                                             # the same images twice
    ({"split": {"part": "a"}}, {"split": {"part": "a"}}, True),  # the same half twice
    ({"split": {"part": "a"}}, {}, True),                       # a half and the whole
    ({"split": {"part": "a"}}, {"split": {"part": "b"}}, False),
    ({"split": {"part": "a", "fraction": 0.3}}, {"split": {"part": "b"}}, False),
    ({"split": {"part": "a", "fraction": 0.7}}, {"split": {"part": "b"}}, True),  # 0.5-0.7
    ({"split": {"part": "a"}, "resample_unit": "subject"}, {"split": {"part": "b"}}, True),
    ({"root": "/data/set/"}, {}, True),                         # the same folder, spelled apart
    ({"sources": [{"annotations": "/data/set/other.txt"}]}, {}, False),  # other images
])
def test_a_set_both_tuned_and_tested_on_is_refused(tune, test, refused):
    datasets = {"dev": annotated(role="tune", **tune), "final": annotated(role="test", **test)}
    messages = role_conflicts(datasets)
    assert bool(messages) == refused
    if refused and not tune.get("root") and "resample_unit" not in tune and tune.get(
            "split", {}).get("fraction") is None:
        assert messages == ["datasets.dev (tune) and datasets.final (test) hold the same images: "
                            "a set that chose anything cannot be judged; give them a split "
                            "with different parts by the same unit (split: {part: a} and "
                            "{part: b}, part a's fraction at most part b's)"]


def test_a_box_calibration_set_counts_as_choosing_even_when_not_evaluated():
    """A calibration is fitted for AP on its set: over a test set's images it is refused."""
    fitting = annotated(evaluate=False)
    test = annotated(role="test", calibration="fit")
    messages = role_conflicts({"fit": fitting, "final": test})
    assert messages and messages[0].startswith(
        "datasets.fit (box calibration) and datasets.final (test) hold the same images")
    assert not role_conflicts({"fit": {**fitting, "split": {"part": "a"}},
                               "final": {**test, "split": {"part": "b"}}})
    assert not role_conflicts({"fit": fitting, "final": {**test, "calibration": None}})


def test_yale_b_entries_of_other_subjects_may_tune_and_test():
    yale = {"kind": "yale_b", "folder": "/data/yaleb", "evaluate": True}
    assert not role_conflicts({"dev": {**yale, "subjects": [1, 2], "role": "tune"},
                               "test": {**yale, "subjects": [3, 4], "role": "test"}})
    assert role_conflicts({"dev": {**yale, "subjects": [1, 2], "role": "tune"},
                           "test": {**yale, "subjects": [2, 3], "role": "test"}})


def test_the_configuration_check_refuses_it(default_config):
    config = copy.deepcopy(default_config)
    config["datasets"]["tuning"] = dict(config["datasets"]["embedded"], role="tune")
    with pytest.raises(ConfigError, match=re.escape("datasets.tuning (tune) and "
                                                    "datasets.embedded (test)")):
        validate_config(config)
    config["datasets"]["tuning"]["split"] = {"part": "a"}
    config["datasets"]["embedded"]["split"] = {"part": "b"}
    validate_config(config)


def test_no_verdict_cell_is_computed_on_a_tune_set():
    runs = variant_statistics_runs()  # dataset "faces": cnn holds up, haar breaks
    judged_on_test = analyse(runs, judged(roles={"faces": "test"}))
    assert [c["verdict"] for c in judged_on_test["verdict"]["cells"]] == ["supported"]
    tuned = analyse(runs, judged(roles={"faces": "tune"}))
    assert tuned["verdict"]["cells"] == [] and tuned["verdict"]["cells_tested"] == 0
    assert tuned["runs"] == judged_on_test["runs"]  # its results stay, as development
    view = verdict_view(CONFIG, Statistics.parse(tuned), [], {})
    assert view["answer"].startswith("No verdict")


def test_a_split_build_keeps_its_part(default_config, tmp_path):
    settings = default_config["datasets"]["embedded"]
    build_dataset(settings, tmp_path / "whole")
    build_dataset({**settings, "split": {"part": "a"}}, tmp_path / "a")
    build_dataset({**settings, "split": {"part": "b"}}, tmp_path / "b")
    whole, a, b = (Manifest.load(tmp_path / n / "test.json") for n in ("whole", "a", "b"))
    files = [{r.file for r in m.images} for m in (whole, a, b)]
    assert files[1] | files[2] == files[0] and not files[1] & files[2]
    assert a.meta["split"]["of_images"] == len(whole.images)


def test_a_split_by_a_missing_unit_names_the_image():
    with pytest.raises(ValueError, match=r"00000_x.png: no attribute 'subjekt' to split by"):
        keep_part(records(4), {"part": "a"}, "subjekt")
    assert split_key(records(1, unit="subject").images[0], "subject") == "0"


def test_no_test_set_is_refused(default_config):
    config = copy.deepcopy(default_config)
    config["datasets"]["embedded"]["role"] = "tune"
    config["report"]["arms"] = {}
    with pytest.raises(ConfigError, match="no evaluated dataset has role test"):
        validate_config(config)

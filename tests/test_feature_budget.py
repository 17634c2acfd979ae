"""benchmarks/feature_budget.py: cascades cut by stage, trained per feature budget, scored on
tune sets only."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.feature_budget import budget_curve, cut_cascade, tune_truths
from pipeline import paths
from pipeline.boxes import Box, ImageRecord, Manifest
from pipeline.io import read_json, write_image, write_json
from pipeline.models.cascade import Cascade
from pipeline.training.train_cascade import train_cascade
from tests.test_haar_training import (
    TINY_CASCADE,
    synthetic_face,
    write_synthetic_training_set,
)


def stage_decisions(cascade: Cascade) -> list:
    """Every stage's threshold and stumps (feature rectangles, threshold, leaves)."""
    return [(stage.threshold, [(cascade.features[s.feature].tolist(), s.threshold, s.left,
                                s.right) for s in stage.stumps]) for stage in cascade.stages]


def test_a_cut_cascade_is_the_one_fewer_stages_train(tmp_path):
    train, scenes = write_synthetic_training_set(tmp_path / "data")
    settings = dict(TINY_CASCADE, max_stages=3, target_false_positive_rate=1e-9)
    three = train_cascade(settings, train, scenes, tmp_path / "three.xml")
    two = train_cascade(dict(settings, max_stages=2), train, scenes, tmp_path / "two.xml")
    cut = cut_cascade(tmp_path / "three.xml", 2, tmp_path / "cut.xml")
    assert stage_decisions(Cascade.read_xml(cut)) == stage_decisions(
        Cascade.read_xml(tmp_path / "two.xml"))
    assert len(three) == 3 and [{**row, "seconds": 0} for row in three[:2]] == [
        {**row, "seconds": 0} for row in two]  # the same negatives, rates, stumps
    for stages in (0, 4):
        with pytest.raises(ValueError, match="cannot cut 3 stages"):
            cut_cascade(tmp_path / "three.xml", stages, tmp_path / "bad.xml")


def write_tune_set(workdir, name: str) -> None:
    """Three noisy scenes, each with one synthetic face of 48 px, as a built variant."""
    import cv2

    rng = np.random.default_rng(5)
    manifest = workdir / paths.variant_manifest(name, "original")
    records = []
    for k in range(3):
        image = np.clip(cv2.GaussianBlur(rng.normal(128, 40, (200, 240)), (0, 0), 2), 0, 255)
        image = image.astype(np.uint8)
        image[60:108, 40 + 50 * k:88 + 50 * k] = synthetic_face(rng, 48)
        write_image(manifest.parent / f"image{k}.png", image)
        records.append(ImageRecord(f"image{k}.png", 240, 200, [Box(40 + 50 * k, 60, 48, 48)]))
    Manifest("ground_truth", manifest.parent, records).save(manifest)


def curve_config(default_config: dict) -> dict:
    return {
        "datasets": {"synthetic_tune": {"evaluate": True, "role": "tune"},
                     "synthetic_test": {"evaluate": True, "role": "test"}},
        "detectors": {"tiny": {"kind": "haar", "trained_cascade": "tiny", "scale_factor": 1.2,
                               "min_neighbors": 2, "min_size": 24, "equalize_hist": False}},
        "cascades": {"tiny": dict(TINY_CASCADE, max_stages=3)},
        "tuning": {"tiny": {"grid": {"min_neighbors": [1, 3]}}},
        "evaluation": default_config["evaluation"],
    }


def test_the_curve_scores_each_budget_and_cut_on_tune_sets_only(tmp_path, default_config,
                                                                  monkeypatch):
    train, scenes = write_synthetic_training_set(tmp_path / "results" / "data" / "synthetic")
    config = curve_config(default_config)
    with pytest.raises(FileNotFoundError, match="synthetic_tune/original/manifest.json"):
        tune_truths(config, "tiny", tmp_path)
    write_tune_set(tmp_path, "synthetic_tune")
    assert list(tune_truths(config, "tiny", tmp_path)) == ["synthetic_tune"]  # never the test set
    with pytest.raises(FileNotFoundError, match="train_backgrounds.json: training set not built"):
        budget_curve(config, "tiny", "tiny", [300], [2], 0, tmp_path / "out", tmp_path)
    scenes.rename(tmp_path / paths.training_scenes("synthetic"))  # as the workflow names it
    assert budget_curve(config, "tiny", "tiny", [300], [2], 0, tmp_path / "out", tmp_path,
                        train_only=True) == []
    assert (tmp_path / "out" / "tiny_budget300_seed0.xml").is_file()

    rows = budget_curve(config, "tiny", "tiny", [300, 1500], [2, 9], 0, tmp_path / "out",
                        tmp_path)
    assert [(row["budget"], row["stages"]) for row in rows] == [
        (300, 2), (300, 3), (1500, 2), (1500, 3)]  # 9 stages: the whole cascade, 3
    assert [row["features"] for row in rows] == [300, 300, 1500, 1500]
    assert {row["timed"] for row in rows} == {"here"}
    for budget in (300, 1500):
        weak = [row["weak"] for row in rows if row["budget"] == budget]
        seconds = [row["train_seconds"] for row in rows if row["budget"] == budget]
        assert 0 < weak[0] < weak[1] and seconds[0] < seconds[1]
        trained = tmp_path / "out" / f"tiny_budget{budget}_seed0.xml"
        assert Cascade.read_xml(trained).n_weak == weak[-1]
    for row in rows:
        assert row["choice"]["min_neighbors"] in (1, 3)
        assert set(row["average_precision"]) == {"synthetic_tune"}
        assert 0 <= row["score"] <= 1 and row["score"] == row["average_precision"][
            "synthetic_tune"]
    assert max(row["score"] for row in rows) > 0.5  # the synthetic faces are found

    # Called again: budget 300 is reused from --out, budget 1500 (the configured one) read from
    # the workflow's own training of it, and the curve is the same; no training runs.
    folder = paths.models_folder(0)
    (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "out" / "tiny_budget1500_seed0.xml").rename(
        tmp_path / paths.trained_cascade("tiny", folder))
    record = read_json(tmp_path / "out" / "tiny_budget1500_seed0.stages.json")
    (tmp_path / "out" / "tiny_budget1500_seed0.stages.json").unlink()
    settings = {**config["cascades"]["tiny"], "seed": 0}
    write_json(tmp_path / paths.cascade_history("tiny", folder),
               {"settings": settings, "stages": record["history"]})

    def no_training(*args, **kwargs):
        raise RuntimeError("trained again")

    monkeypatch.setattr("pipeline.training.train_cascade.train_cascade", no_training)
    again = budget_curve(config, "tiny", "tiny", [300, 1500], [2, 9], 0, tmp_path / "out",
                         tmp_path)
    assert [row["timed"] for row in again] == ["here", "here", "workflow", "workflow"]
    assert [{**row, "timed": "here"} for row in again] == rows
    # The workflow's cascade trained with other settings is not taken for this budget, nor one
    # in --out trained with other settings.
    write_json(tmp_path / paths.cascade_history("tiny", folder),
               {"settings": {**settings, "max_weak_per_stage": 29}, "stages": record["history"]})
    with pytest.raises(RuntimeError, match="trained again"):
        budget_curve(config, "tiny", "tiny", [1500], [2], 0, tmp_path / "out", tmp_path)
    other = {**config, "cascades": {"tiny": {**config["cascades"]["tiny"], "max_stages": 2}}}
    with pytest.raises(RuntimeError, match="trained again"):
        budget_curve(other, "tiny", "tiny", [300], [2], 0, tmp_path / "out", tmp_path)
    with pytest.raises(ValueError, match="does not run cascade"):
        budget_curve({**config, "cascades": {"other": TINY_CASCADE}}, "other", "tiny", [300],
                     [1], 0, tmp_path / "out", tmp_path)

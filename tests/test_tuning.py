"""Operating points chosen on tune sets only: every candidate scored, the best chosen, the choice
used by detection, and a configuration that would tune on a test set refused."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.boxes import Manifest
from pipeline.config import ConfigError, deep_merge, validate_config
from pipeline.defaults import with_defaults
from pipeline.detection.detectors import build_detector, run_detector
from pipeline.evaluation.metrics import Criterion, evaluate
from pipeline.tuning.operating_point import (
    candidates,
    choose,
    chosen_settings,
    tune_operating_point,
    tuning_conflicts,
)

REPO = Path(__file__).resolve().parents[1]
GRID = {"min_neighbors": [0, 2], "scale_factor": [1.1, 1.3]}
# An arm's cascade shares its CNN's pyramid step, so only its grouping threshold is tuned.
ARM_GRID = {"min_neighbors": [0, 2]}


def test_candidates_are_every_combination_in_grid_order():
    assert candidates(GRID) == [
        {"min_neighbors": 0, "scale_factor": 1.1}, {"min_neighbors": 0, "scale_factor": 1.3},
        {"min_neighbors": 2, "scale_factor": 1.1}, {"min_neighbors": 2, "scale_factor": 1.3}]


def test_the_best_score_wins_and_the_first_of_equals():
    rows = [{"settings": {"k": k}, "score": s} for k, s in enumerate([0.5, None, 0.8, 0.8, 0.1])]
    assert choose(rows)["settings"] == {"k": 2}
    with pytest.raises(ValueError, match="no candidate has a defined AP"):
        choose([{"settings": {}, "score": None}])


def test_tuning_chooses_the_candidate_with_the_best_tune_ap(tiny_dataset, tiny_config):
    """Every candidate is scored by the evaluate stage's AP of the detector run with it (run
    here again, candidate by candidate), and the choice is the best of them."""
    settings = tiny_config["detectors"]["haar"]
    evaluation = tiny_config["evaluation"]
    truth_path = tiny_dataset / "test.json"
    record = tune_operating_point(settings, GRID, {"embedded": truth_path}, [], evaluation,
                                  "haar")
    assert [row["settings"] for row in record["candidates"]] == candidates(GRID)
    truth = Manifest.load(truth_path)
    for row in record["candidates"]:
        detector = with_defaults({**settings, **row["settings"]}, "detectors.*")
        found, _ = run_detector(build_detector(detector, []), truth, "haar")
        ap = evaluate(truth, found, Criterion.from_settings(evaluation),
                      evaluation["false_positive_points"])["average_precision"]
        assert row["average_precision"] == {"embedded": pytest.approx(ap)}
        assert row["score"] == pytest.approx(ap)
    scores = [row["score"] for row in record["candidates"]]
    assert record["choice"] == candidates(GRID)[scores.index(max(scores))]
    assert record["tune_sets"] == ["embedded"] and record["metric"] == "average_precision"
    assert len({s for s in scores}) > 1  # the grid matters on these images


def test_detection_runs_with_the_written_choice(tiny_dataset, tiny_config, tmp_path):
    record = tmp_path / "choice.json"
    record.write_text(json.dumps({"choice": {"min_neighbors": 5}}))
    settings = tiny_config["detectors"]["haar"]
    assert chosen_settings(settings, record) == {**settings, "min_neighbors": 5}
    assert chosen_settings(settings, None) is settings
    command = [sys.executable, "-m", "pipeline", "detect", "--settings", json.dumps(settings),
               "--manifest", str(tiny_dataset / "test.json"), "--name", "haar",
               "--out", str(tmp_path / "d.json"), "--timing", str(tmp_path / "t.json"),
               "--tuning", str(record)]
    subprocess.run(command, check=True, capture_output=True)
    written = json.loads((tmp_path / "d.json").read_text())
    assert written["meta"]["detector_settings"]["min_neighbors"] == 5


def split_config(default_config: dict, **tuning) -> dict:
    """The default configuration with the embedded set split into a tune half and a test
    half, and ``tuning`` as its tuning section."""
    embedded = default_config["datasets"]["embedded"]
    return deep_merge(default_config, {
        "datasets": {"embedded": {"split": {"part": "b"}},
                     "embedded_tune": {**embedded, "role": "tune", "split": {"part": "a"}}},
        "tuning": tuning})


def test_a_configuration_that_tunes_on_a_test_set_is_refused(default_config):
    config = split_config(default_config, haar_trained={"grid": ARM_GRID})
    validate_config(copy.deepcopy(config))
    assert not tuning_conflicts(config)
    unmatched = split_config(default_config, haar_trained={"grid": GRID})
    with pytest.raises(ConfigError,
                       match="'pyramid_step' .* differs .* chosen for haar_trained on tune"):
        validate_config(unmatched)
    wrong = deep_merge(config, {"tuning": {"haar_trained": {"datasets": ["embedded"]}}})
    with pytest.raises(ConfigError, match="tuning.haar_trained.datasets: 'embedded' has role "
                                          "test; only tune sets may choose anything"):
        validate_config(wrong)
    untuned = deep_merge(default_config, {"tuning": {"haar": {"grid": GRID}}})
    with pytest.raises(ConfigError, match="tuning.haar: no evaluated dataset has role tune"):
        validate_config(untuned)
    bad = split_config(default_config, cnn={"grid": {"nms_method": ["soft", "best"]}})
    with pytest.raises(ConfigError, match=r"tuning.cnn.grid \{'nms_method': 'best'\}"):
        validate_config(bad)
    unknown = split_config(default_config, hog={"grid": GRID})
    with pytest.raises(ConfigError, match="tuning.hog: not a detector"):
        validate_config(unknown)


@pytest.mark.workflow
def test_the_workflow_tunes_on_the_tune_half_and_detects_with_the_choice(default_config,
                                                                        tmp_path):
    """A dry run: one tuning job per tuned detector draw, reading the tune set only, and every
    detection of that detector reads its choice."""
    import yaml

    overlay = tmp_path / "tuned.yaml"
    config = split_config(default_config, haar_trained={"grid": ARM_GRID})
    overlay.write_text(yaml.safe_dump({"datasets": {k: config["datasets"][k] for k in (
        "embedded", "embedded_tune")}, "tuning": config["tuning"], "seeds": [0, 1]}))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--printshellcmds", "--cores", "1",
         "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(REPO / "config/default.yaml"), str(overlay)],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout
    tuning = [line for line in output.splitlines() if "tune-operating-point" in line]
    assert len(tuning) == 2  # one per training seed
    for line in tuning:
        assert "--truth embedded_tune=results/variants/embedded_tune/original/manifest.json" in line
        assert "results/variants/embedded/" not in line
    detect = [line for line in output.splitlines() if "pipeline.detection detect" in line]
    tuned = [line for line in detect if "--name haar_trained" in line]
    assert tuned and all("--tuning results/tuning/haar_trained/seed" in line for line in tuned)
    assert not any("--tuning" in line for line in detect if "--name haar_trained" not in line)
    report = next(line for line in output.splitlines() if "pipeline.report report" in line)
    assert ("--tuning results/tuning/haar_trained/seed0.json "
            "results/tuning/haar_trained/seed1.json") in report

"""Every stage runs from the command line without Snakemake."""

import json
import subprocess
import sys

import pytest

from pipeline.boxes import Manifest
from pipeline.cli import main
from pipeline.io import read_json


def test_stage_chain_from_the_command_line(tiny_dataset, tiny_model, tiny_config, tmp_path):
    settings = json.dumps(tiny_config["variants"]["shadow"])
    main(["make-variant", "--manifest", str(tiny_dataset / "test.json"), "--name", "shadow",
          "--settings", settings, "--out", str(tmp_path / "shadow")])
    manifest = tmp_path / "shadow" / "manifest.json"
    assert len(Manifest.load(manifest).images) == tiny_config["datasets"]["embedded"]["n_scenes"]
    for name in ("haar", "cnn"):
        args = ["detect", "--config", "config/default.yaml", "--section", f"detectors.{name}",
                "--manifest", str(manifest), "--name", name,
                "--out", str(tmp_path / f"{name}_shard.json"),
                "--timing", str(tmp_path / f"{name}_shard_time.json")]
        main(args + (["--model", str(tiny_model)] if name == "cnn" else []))
        main(["merge-detections", "--manifest", str(manifest),
              "--detections", str(tmp_path / f"{name}_shard.json"),
              "--timings", str(tmp_path / f"{name}_shard_time.json"),
              "--detector", name, "--dataset", "embedded", "--variant", "shadow",
              "--out", str(tmp_path / f"{name}.json"),
              "--timing-out", str(tmp_path / f"{name}_time.json")])
        main(["evaluate", "--config", "config/default.yaml", "--section", "evaluation",
              "--truth", str(manifest), "--detections", str(tmp_path / f"{name}.json"),
              "--detector", name, "--dataset", "embedded", "--variant", "shadow",
              "--out", str(tmp_path / f"{name}_metrics.json")])
    metrics = read_json(tmp_path / "cnn_metrics.json")
    assert metrics["detector"] == "cnn" and 0 <= metrics["average_precision"] <= 1
    # a box calibration fitted on a set scores there what its search reported
    main(["calibrate", "--config", "config/default.yaml", "--section", "evaluation",
          "--truth", str(manifest), "--detections", str(tmp_path / "cnn.json"),
          "--detector", "cnn", "--dataset", "embedded", "--out", str(tmp_path / "cal.json")])
    fitted = read_json(tmp_path / "cal.json")
    assert fitted["average_precision"] >= fitted["average_precision_uncalibrated"]
    assert fitted["average_precision_uncalibrated"] == metrics["average_precision"]
    assert len(fitted["candidates"]) > 1
    main(["evaluate", "--config", "config/default.yaml", "--section", "evaluation",
          "--truth", str(manifest), "--detections", str(tmp_path / "cnn.json"),
          "--calibration", str(tmp_path / "cal.json"),
          "--detector", "cnn", "--dataset", "embedded", "--variant", "shadow",
          "--out", str(tmp_path / "cnn_calibrated.json")])
    calibrated = read_json(tmp_path / "cnn_calibrated.json")
    assert calibrated["average_precision"] == fitted["average_precision"]
    assert "candidates" not in calibrated["box_calibration"]
    metrics_files = [str(tmp_path / f"{n}_metrics.json") for n in ("haar", "cnn")]
    main(["summarise", "--metrics", *metrics_files,
          "--timings", *[str(tmp_path / f"{n}_time.json") for n in ("haar", "cnn")],
          "--out-csv", str(tmp_path / "s.csv"), "--out-json", str(tmp_path / "s.json")])
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("detector,dataset,variant")
    main(["statistics", "--settings", json.dumps({"bootstrap_samples": 50, "confidence": 0.9,
                                                  "seed": 0, "fp_for_summary": 5}),
          "--metrics", *metrics_files, "--out", str(tmp_path / "stats.json")])
    stats = read_json(tmp_path / "stats.json")
    assert len(stats["runs"]) == 2 and stats["comparisons"][0]["variant"] == "shadow"
    # the statistics settings gather several sections: --config alone gives them all
    main(["statistics", "--config", "config/default.yaml", "--metrics", *metrics_files,
          "--out", str(tmp_path / "stats_config.json")])
    assert len(read_json(tmp_path / "stats_config.json")["runs"]) == 2


def test_a_stage_whose_settings_gather_sections_takes_the_config_alone(tmp_path):
    import argparse

    from pipeline.commands import stage_settings
    from pipeline.config import load_config
    from pipeline.evaluation.statistics import statistics_settings

    args = argparse.Namespace(settings=None, config="config/default.yaml", section=None,
                              data_root=str(tmp_path), schema_section=None,
                              compose=statistics_settings, command="statistics")
    settings = stage_settings(args)
    config = load_config("config/default.yaml", str(tmp_path))
    assert settings == statistics_settings(config)
    assert settings["fp_for_summary"] == config["report"]["fp_for_summary"]
    assert set(settings["arms"]) == set(config["report"]["arms"])
    assert settings["roles"] == {name: "test" for name in config["datasets"]}
    assert settings["main_variants"] == list(config["variants"])
    with pytest.raises(SystemExit, match="the statistics settings gather several sections"):
        stage_settings(argparse.Namespace(**{**vars(args), "section": "statistics"}))


def test_bad_settings_and_sections_are_reported(tmp_path):
    with pytest.raises(SystemExit, match="not valid JSON"):
        main(["build-dataset", "--settings", "{oops", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="no section 'datasets.nosuch'"):
        main(["build-dataset", "--config", "config/default.yaml", "--section",
              "datasets.nosuch", "--out", str(tmp_path)])


def test_module_entry_point_prints_help():
    result = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True,
                            text=True, check=True)
    for command in ("build-dataset", "make-variant", "train-cnn", "detect", "evaluate",
                    "summarise", "figures", "report"):
        assert command in result.stdout


def test_train_haar_from_the_command_line(tiny_dataset, tiny_config, tmp_path):
    from pipeline.models.cascade import Cascade

    settings = dict(tiny_config["cascades"]["haar_trained"], device="cpu", max_stages=2)
    main(["train-haar", "--settings", json.dumps(settings),
          "--train", str(tiny_dataset / "train.npz"),
          "--backgrounds", str(tiny_dataset / "train_backgrounds.json"),
          "--out", str(tmp_path / "vj.xml"), "--history", str(tmp_path / "vj.stages.json")])
    record = read_json(tmp_path / "vj.stages.json")
    assert record["settings"] == {**settings, "seed": 0} and record["device"] == "cpu"
    assert len(record["stages"]) == len(Cascade.read_xml(tmp_path / "vj.xml").stages) == 2
    assert record["train_seconds"] == pytest.approx(sum(r["seconds"] for r in record["stages"]))


@pytest.mark.parametrize(("setting", "cores", "expected"),
                         [("auto", 2, 1), ("auto", 1, 1), ("auto", 16, 8), ("auto", None, 1),
                          ("auto", sys.maxsize, 16), (8, 2, 8), (3, 16, 3)])
def test_training_threads_auto_is_half_the_cores(setting, cores, expected, monkeypatch):
    """auto lets two training jobs share Snakemake's cores, at most this machine's 32 CPUs
    (-j unlimited); a number is kept (Snakemake itself lowers it to --cores)."""
    from pipeline.commands import training_threads

    monkeypatch.setattr("os.cpu_count", lambda: 32)
    assert training_threads(setting, cores) == expected


def test_training_threads_refuses_other_words(default_config):
    from pipeline.config import ConfigError, validate_config

    config = dict(default_config, execution={**default_config["execution"],
                                             "training_threads": "many"})
    with pytest.raises(ConfigError, match="training_threads"):
        validate_config(config)

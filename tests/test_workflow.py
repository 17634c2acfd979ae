"""The Snakemake workflow end to end on a tiny config, and what a changed setting reruns."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pipeline.config import deep_merge
from tests.conftest import TINY_OVERRIDES

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.workflow


def snakemake(workdir: Path, config: Path, *args: str) -> str:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(config), "--cores", "2", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout + result.stderr


def job_counts(output: str) -> dict[str, int]:
    """Rule name -> number of jobs, from the 'Job stats' table of a dry run."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def write_config(path: Path, overrides: dict) -> Path:
    path.write_text(yaml.safe_dump(overrides))
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    config = write_config(workdir / "tiny.yaml", TINY_OVERRIDES)
    snakemake(workdir, config)
    return workdir, config


def test_full_run_produces_report_metrics_and_figures(finished_run, tiny_config):
    workdir, _ = finished_run
    with open(workdir / "results/summary/summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    variants = {"original", "shadow", "cartoon", "shadow_sweep_0.00", "shadow_sweep_0.50"}
    assert {(r["detector"], r["variant"]) for r in rows} == {
        (d, v) for d in ("haar", "haar_trained", "cnn", "cnn_cascade") for v in variants}
    for row in rows:
        assert 0.0 <= float(row["average_precision"]) <= 1.0
        assert float(row["ms_per_image_mean"]) > 0
    haar_original = next(r for r in rows if r["detector"] == "haar" and r["variant"] == "original")
    assert float(haar_original["average_precision"]) > 0.5
    html = (workdir / "results/report/index.html").read_text()
    assert html.count("data:image/png;base64,") == 8  # no light-angle figure: no grouped set
    assert "ap_vs_light_angle" not in html and "Real shadows" not in html
    assert "Network complexity" in html and "googlenet" in html
    assert "<table>" in html and "Findings" in html and "opencv-python-headless" in html
    assert "Share kept, CNN vs Haar" in html and "bootstrap" in html
    assert "bonferroni" in html  # the rule in words, on the first screen
    assert "cells tested, each at level" in html or "no cell could be judged" in html
    assert "Viola-Jones cascades trained here" in html
    trained = workdir / "results/models/seed0/haar_trained.xml"
    assert "<stageType>BOOST</stageType>" in trained.read_text()
    for stage in ("build_dataset", "make_variant", "train_cnn", "train_haar", "detect",
                  "evaluate"):
        assert any((workdir / "results/logs" / stage).rglob("*.log")), stage
        assert any((workdir / "results/benchmarks" / stage).rglob("*.tsv")), stage


def test_nothing_left_to_do_after_a_run(finished_run):
    workdir, config = finished_run
    assert job_counts(snakemake(workdir, config, "-n")) == {}


def test_shadow_strength_reruns_only_shadow_and_downstream(finished_run):
    workdir, config = finished_run
    changed = write_config(workdir / "shadow.yaml", deep_merge(
        TINY_OVERRIDES, {"variants": {"shadow": {"strength": 0.4}}}))
    counts = job_counts(snakemake(workdir, changed, "-n"))
    assert counts == {"make_variant": 1, "detect": 8, "merge_detections": 4, "evaluate": 4,
                      "statistics": 1, "summarise": 1, "figures": 1, "report": 1, "all": 1}


def test_cnn_training_change_does_not_rerun_haar(finished_run):
    workdir, config = finished_run
    changed = write_config(workdir / "train.yaml", deep_merge(
        TINY_OVERRIDES, {"models": {"cnn": {"epochs": 3}}}))
    output = snakemake(workdir, changed, "-n", "--printshellcmds")
    counts = job_counts(output)
    # the cnn model is retrained; cnn and cnn_cascade (its verifier) rerun on 5 variants x 2
    # shards; the proposal model is not retrained
    assert counts["train_cnn"] == 1 and counts["detect"] == 20
    assert "--out results/models/seed0/proposal.pt" not in output
    assert "--threads 1 2>" in output  # training_threads auto: half of --cores 2
    assert "--name cnn" in output and not re.search(r"--name haar\b", output)
    assert "build_dataset" not in counts and "make_variant" not in counts
    assert "train_haar" not in counts and "--name haar_trained" not in output


def test_a_second_seed_trains_and_runs_only_the_new_draws(finished_run):
    """seeds: [0, 1] trains every model once more (seed 1), each as its own job, and runs the
    detectors that use them on every variant; the bundled cascade and the data stay."""
    workdir, config = finished_run
    changed = write_config(workdir / "seeds.yaml", deep_merge(TINY_OVERRIDES, {"seeds": [0, 1]}))
    output = snakemake(workdir, changed, "-n", "--printshellcmds")
    counts = job_counts(output)
    assert counts["train_cnn"] == 2 and counts["train_haar"] == 1  # cnn, proposal; the cascade
    assert counts["detect"] == 30  # haar_trained, cnn, cnn_cascade x 5 variants x 2 shards
    assert "--out results/models/seed1/cnn.pt --seed 1" in output
    assert "--seed 0" not in output  # seed 0's models stay
    assert "--draw seed1" in output and "--draw seed0" not in output  # nor are they rerun
    assert "--draw fixed" not in output and not re.search(r"--name haar\b", output)
    assert "build_dataset" not in counts and "make_variant" not in counts
    assert counts["statistics"] == 1 and counts["report"] == 1


def test_cascade_training_change_reruns_only_the_trained_cascade(finished_run):
    workdir, config = finished_run
    changed = write_config(workdir / "cascade.yaml", deep_merge(
        TINY_OVERRIDES, {"cascades": {"haar_trained": {"max_stages": 3}}}))
    output = snakemake(workdir, changed, "-n", "--printshellcmds")
    assert job_counts(output) == {"train_haar": 1, "detect": 10, "merge_detections": 5,
                                  "evaluate": 5, "statistics": 1, "summarise": 1,
                                  "figures": 1, "report": 1, "all": 1}
    assert "--name haar_trained" in output and not re.search(r"--name (haar|cnn)\b", output)


def test_snakemake_report_with_captions(finished_run):
    workdir, config = finished_run
    snakemake(workdir, config, "--report", "report.zip")
    assert (workdir / "report.zip").stat().st_size > 10_000


def test_local_profile_runs(finished_run):
    workdir, config = finished_run
    output = snakemake(workdir, config, "--profile", str(REPO / "profiles" / "local"), "-n")
    assert job_counts(output) == {}


def test_slurm_profile_asks_a_gpu_for_training_only():
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    workflow_files = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
    rules = {name for path in workflow_files
             for name in re.findall(r"^rule (\w+):", path.read_text(), re.M)}
    assert {"train_cnn", "train_haar", "detect", "report"} <= rules
    assert profile["executor"] == "slurm"
    assert set(profile["set-resources"]) <= rules and set(profile["set-threads"]) <= rules
    groups = profile["groups"]
    assert set(groups) <= rules and "detect" not in groups  # shards still spread over nodes
    # merge -> calibrate -> evaluate: a group may not feed itself through a job outside it
    assert groups["merge_detections"] == groups["calibrate"] == groups["evaluate"]
    gpu_rules = {r for r, res in profile["set-resources"].items() if res.get("gpu")}
    assert gpu_rules == {"train_cnn", "train_haar"} and "gpu" not in profile["default-resources"]


def readme_commands() -> list[str]:
    """The commands of the README's everyday-use table, as written there."""
    text = (REPO / "README.md").read_text()
    table = text.split("Everyday use")[1].split("\n\n")[1]
    return [m for line in table.splitlines()[2:] for m in re.findall(r"`([^`]+)`$", line.strip(
        " |"))]


# How each README command runs in the test: as typed, in the finished run's folder, with only
# the Snakefile's location and the tiny configuration added; dry runs where the command would
# recompute. None: not run here, with the reason.
README_COMMANDS = {
    "snakemake --cores 2": "-n",
    "snakemake -n": "",
    "snakemake --cores 2 --configfile my.yaml": "-n",
    "snakemake --cores 2 results/metrics/haar/fixed/embedded/shadow.json": "-n",
    "snakemake --report report.zip": "",
    "snakemake --cores 2 --forcerun figures": "-n",
    "snakemake --unlock": "",
    "python -m pipeline detect --config config/default.yaml --section detectors.haar "
    "--manifest results/variants/embedded/shadow/manifest.json --name haar --out haar.json "
    "--timing haar_time.json": "",
    "snakemake --profile profiles/slurm": None,  # needs a SLURM cluster
    "python benchmarks/memory_scaling.py 100 1000": None,  # a benchmark: minutes
    "python benchmarks/speed.py": None,  # a benchmark on a full run's models
    # benchmarks on a finished run: test_operating_point_sweep_reproduces_the_workflows_metrics
    # and test_level_scores_reads_the_runs_detections run them
    "python benchmarks/operating_point.py --dataset embedded --detector cnn "
    "--grid nms_method=greedy,soft": None,
    "python benchmarks/level_scores.py --dataset embedded --detector cnn": None,
    "ruff check .": None,  # run by .ci/run
}


def test_every_readme_command_runs_as_typed(finished_run):
    """No README command needs a flag the README does not show (e.g. --cores for --report)."""
    workdir, config = finished_run
    assert set(readme_commands()) == set(README_COMMANDS)
    (workdir / "my.yaml").write_text(yaml.safe_dump({"report": {"example_images": 3}}))
    for command, extra in README_COMMANDS.items():
        if extra is None:
            continue
        words = command.replace("config/default.yaml", str(REPO / "config/default.yaml")
                                ).split()
        if words[0] == "snakemake":
            words = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                     *(["--configfile", str(config)] if "--configfile" not in words else []),
                     *words[1:], *extra.split()]
            if "--configfile" in command:
                words[words.index("my.yaml")] = f"{config} my.yaml"
                words = " ".join(words).split()
        else:
            words = [sys.executable, *words[1:]]
        result = subprocess.run(words, cwd=workdir, capture_output=True, text=True)
        assert result.returncode == 0, f"{command}:\n{result.stderr[-3000:]}"
    assert (workdir / "report.zip").stat().st_size > 10_000
    assert json.loads((workdir / "haar.json").read_text())["kind"] == "detections"


def test_a_face_free_test_set_runs_end_to_end_as_negatives_only(finished_run, tmp_path):
    """A negatives-only dataset beside the tiny one: compared by false positives per image,
    AP written as null and reported as undefined; a face-free set not so marked stops."""
    workdir, config = finished_run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, symlinks=True)
    empty = {"kind": "embedded", "seed": 3, "n_test_faces": 50, "n_scenes": 3,
             "scene_size": [320, 240], "faces_per_scene": [1, 1], "empty_scene_fraction": 1.0,
             "face_size": [40, 80], "test_backgrounds": ["brick"],
             "train_backgrounds": ["grass"], "variants": ["original"]}
    unmarked = write_config(copy / "unmarked.yaml",
                            deep_merge(TINY_OVERRIDES, {"datasets": {"empty": empty}}))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile",
                             str(REPO / "Snakefile"), "--directory", str(copy), "--configfile",
                             str(unmarked), "--cores", "2", "results/data/empty/test.json"],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "the test set has no faces" in (copy / "results/logs/build_dataset/empty.log"
                                           ).read_text()
    marked = write_config(copy / "marked.yaml", deep_merge(TINY_OVERRIDES, {"datasets": {
        "empty": {**empty, "negatives_only": True}}}))
    snakemake(copy, marked)
    metrics = json.loads((copy / "results/metrics/haar/fixed/empty/original.json").read_text())
    assert metrics["negatives_only"] and metrics["n_faces"] == 0
    assert metrics["average_precision"] is None
    assert metrics["false_positives_per_image"] == metrics["n_detections"] / 3
    statistics = json.loads((copy / "results/summary/statistics.json").read_text())
    assert any(c.get("negatives_only") for c in statistics["comparisons"])
    html = (copy / "results/report/index.html").read_text()
    text = re.sub(r"data:image/png;base64,[^']+", "", html)
    assert "face-free test set" in text and "<td>undefined</td>" in text
    assert not re.search(r"\bnan\b", text, re.I)


def _benchmark(workdir: Path, script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args],
                            cwd=workdir, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_operating_point_sweep_reproduces_the_workflows_metrics(finished_run):
    """The sweep's row with the configured settings scores what the evaluate stage scored
    (same detections, same matching); the other rows are other NMS methods; a bad grid value
    is refused naming the key."""
    workdir, config = finished_run
    metrics = json.loads((workdir / "results/metrics/cnn/seed0/embedded/original.json").read_text())
    out = _benchmark(workdir, "operating_point.py", "--configfile", str(config), "--dataset",
                     "embedded", "--detector", "cnn", "--grid", "nms_method=soft,greedy")
    header, soft, greedy = out.strip().splitlines()[-3:]
    columns = header.split(" | ")
    assert columns[:2] == ["nms_method", "ap"] and "dr@10" in columns
    assert soft.split(" | ")[0] == "soft" and greedy.split(" | ")[0] == "greedy"
    assert float(soft.split(" | ")[1]) == pytest.approx(metrics["average_precision"], abs=5e-4)
    rate = float(soft.split(" | ")[columns.index("dr@10")])
    assert rate == pytest.approx(metrics["detection_rate_at_fp"]["10"], abs=5e-4)
    bad = subprocess.run([sys.executable, str(REPO / "benchmarks/operating_point.py"),
                          "--configfile", str(config), "--dataset", "embedded", "--detector",
                          "cnn", "--grid", "nms_method=best"], cwd=workdir, capture_output=True,
                         text=True)
    assert bad.returncode != 0 and "detectors.cnn.nms_method" in bad.stderr


@pytest.mark.parametrize("detector", ["cnn", "haar"])  # probabilities; level weights
def test_level_scores_reads_the_runs_detections(finished_run, detector):
    """Per size band: the detections add up to the run's, and the raw-score AP is the
    evaluate stage's."""
    workdir, config = finished_run
    draw = "fixed" if detector == "haar" else "seed0"
    metrics = json.loads((workdir / f"results/metrics/{detector}/{draw}/embedded/original.json"
                          ).read_text())
    out = _benchmark(workdir, "level_scores.py", "--configfile", str(config), "--dataset",
                     "embedded", "--detector", detector)
    bands = [line for line in out.splitlines() if re.match(r"\s*\d+-\s*\d+ \|", line)]
    assert sum(int(line.split("|")[1]) for line in bands) == metrics["n_detections"]
    raw = float(re.search(r"AP with the raw scores ([\d.]+)", out)[1])
    assert raw == pytest.approx(metrics["average_precision"], abs=5e-4)


def test_an_edited_annotation_or_image_rebuilds_exactly_its_set(tmp_path):
    """Dataset builds declare the files they read: cutting an annotation line, or changing an
    image, reruns that set's build and its variant, not the other set's; untouched, nothing."""
    data = tmp_path / "data"
    data.mkdir()
    lines = []
    for k in range(3):
        cv2.imwrite(str(data / f"{k}.png"), np.full((120, 160), 60 * k, np.uint8))
        lines.append(f"{k}.png 30 40 90 100\n")
    (data / "faces.txt").write_text("".join(lines))
    mini = {"kind": "annotated", "format": "box_list", "root": str(data),
            "sources": [{"annotations": str(data / "faces.txt")}], "variants": ["original"]}
    config = write_config(tmp_path / "mini.yaml",
                          deep_merge(TINY_OVERRIDES, {"datasets": {"mini": mini}}))
    targets = ["results/variants/mini/original/manifest.json",
               "results/variants/embedded/original/manifest.json"]
    snakemake(tmp_path, config, *targets)
    assert job_counts(snakemake(tmp_path, config, "-n", *targets)) == {}

    (data / "faces.txt").write_text("".join(lines[:2]))
    rebuilt = {"build_dataset": 1, "make_variant": 1}
    output = snakemake(tmp_path, config, "-n", "--printshellcmds", *targets)
    assert job_counts(output) == rebuilt and "--out results/data/mini" in output
    snakemake(tmp_path, config, *targets)
    truth = json.loads((tmp_path / "results/data/mini/test.json").read_text())
    assert len(truth["images"]) == 2

    time.sleep(0.01)  # a later modification time on file systems with coarse clocks
    cv2.imwrite(str(data / "1.png"), np.full((120, 160), 200, np.uint8))
    output = snakemake(tmp_path, config, "-n", "--printshellcmds", *targets)
    assert job_counts(output) == rebuilt and "--out results/data/mini" in output


def test_example_output_script_rebuilds_the_committed_example(finished_run, tmp_path):
    """scripts/example_output.py turns a finished run into the example: the summary and
    figures copied, the report's verdict table as Markdown."""
    workdir, _ = finished_run
    result = subprocess.run([sys.executable, str(REPO / "scripts/example_output.py"),
                             "--results", str(workdir / "results"), "--out", str(tmp_path),
                             "--no-screenshot"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "summary.csv").read_bytes() == (
        workdir / "results/summary/summary.csv").read_bytes()
    assert {p.name for p in tmp_path.iterdir()} == {
        "README.md", "summary.csv", "ap_by_variant.png", "pr_curves.png"}
    text = (tmp_path / "README.md").read_text()
    table = text.split("## Verdict table\n\n")[1].splitlines()
    assert table[0].startswith("| test set | condition | arm photo |")
    assert {row.split(" | ")[1] for row in table[2:]} == {"cartoon", "shadow"}
    assert all(re.search(r": (supported|contradicted|not resolved|not judged)", row)
               for row in table[2:])
    committed = (REPO / "docs/example/README.md").read_text().split("## Verdict table")[1]
    assert committed.splitlines()[2] == table[0]  # the committed example has the same columns

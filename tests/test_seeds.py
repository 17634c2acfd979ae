"""Training seeds: runs grouped per seed, their mean, and the bootstrap that resamples seeds and
test images together (checked against evaluating every resample by hand)."""

import copy

import numpy as np
import pytest

from pipeline.boxes import Box
from pipeline.evaluation.bootstrap import (
    SEED_STREAM,
    over_seeds,
    resample_counts,
    seed_resamples,
)
from pipeline.evaluation.metrics import evaluate
from pipeline.evaluation.seeds import by_run, seed_mean
from pipeline.evaluation.statistics import analyse
from pipeline.evaluation.summary import summarise
from pipeline.io import read_json, write_json
from tests.test_metrics import manifest

SETTINGS = {"bootstrap_samples": 300, "confidence": 0.9, "seed": 5, "fp_for_summary": 2}


def seeded_runs(detector: str, rng: np.random.Generator, seeds: list[int | None],
                variants=("original", "shadow"), found_by: dict | None = None) -> list[dict]:
    """One run per seed and variant on one random test set; each seed finds a different
    random share of the faces (a different model draw). ``found_by`` collects the truth and
    each (seed, variant)'s detections."""
    truth = manifest("ground_truth", [[Box(*rng.uniform(0, 60, 2), 30, 30)] for _ in range(30)])
    runs = []
    for seed in seeds:
        for variant in variants:
            keep = rng.uniform(0.3, 0.9)
            found = manifest("detections", [
                [Box(b.x, b.y, b.w, b.h, rng.random()) for b in record.boxes
                 if rng.random() < keep] + [Box(70, 70, 20, 20, rng.random())]
                for record in truth.images])
            if found_by is not None:
                found_by["truth"], found_by[seed, variant] = truth, found
            runs.append({"detector": detector, "seed": seed, "dataset": "d",
                         "variant": variant, **evaluate(truth, found, 0.5, [2])})
    return runs


def test_seed_resamples_draw_with_replacement_from_their_own_stream():
    picks = seed_resamples(3, 2000, 5)
    assert picks.shape == (2000, 3) and picks.min() == 0 and picks.max() == 2
    assert np.array_equal(picks, np.random.default_rng([5, SEED_STREAM]).integers(0, 3, (2000, 3)))
    # all three seeds drawn in 3!/3^3 = 22% of resamples
    assert 0.18 < np.mean([len(set(row)) == 3 for row in picks]) < 0.27
    assert not seed_resamples(1, 10, 5).any()


def test_over_seeds_averages_the_drawn_seeds():
    values = [np.array([1.0, 1.0]), np.array([2.0, 2.0]), np.array([4.0, 4.0])]
    picks = np.array([[0, 0, 2], [1, 2, 2]])
    assert over_seeds(values, picks).tolist() == [2.0, 10 / 3]
    assert over_seeds(values[:1], picks) is values[0]  # an untrained run stands for every seed
    with pytest.raises(ValueError, match="2 runs for 3 training seeds"):
        over_seeds(values[:2], picks)


def test_runs_are_grouped_in_seed_order_and_checked():
    rng = np.random.default_rng(0)
    runs = seeded_runs("cnn", rng, [2, 0, 1])
    grouped = by_run(runs)
    assert [r["seed"] for r in grouped["cnn", "d", "original"]] == [0, 1, 2]
    with pytest.raises(ValueError, match="seed repeated"):
        by_run(runs + runs[:1])
    with pytest.raises(ValueError, match="different training seeds"):
        by_run([r for r in runs if not (r["seed"] == 2 and r["variant"] == "shadow")])
    mean = seed_mean(grouped["cnn", "d", "original"])
    assert mean["average_precision"] == pytest.approx(np.mean(
        [r["average_precision"] for r in grouped["cnn", "d", "original"]]))
    assert mean["detection_rate_at_fp"]["2"] == pytest.approx(np.mean(
        [r["detection_rate_at_fp"]["2"] for r in grouped["cnn", "d", "original"]]))


def test_the_bootstrap_equals_drawing_seeds_then_images_by_hand():
    """Each resample's AP is the mean, over the seeds it draws, of that seed's model's AP on the
    images it draws: computed here by evaluating every resampled image set explicitly."""
    from tests.test_statistics import resampled

    rng = np.random.default_rng(1)
    found_by: dict = {}
    runs = seeded_runs("cnn", rng, [0, 1, 2], variants=("original",), found_by=found_by)
    settings = {**SETTINGS, "bootstrap_samples": 6}
    result = analyse(copy.deepcopy(runs), settings)
    n, truth = runs[0]["n_images"], found_by["truth"]
    counts = resample_counts(n, 6, settings["seed"])
    picks = seed_resamples(3, 6, settings["seed"])
    expected = []
    for row in range(6):
        images = np.repeat(np.arange(n), counts[row])
        expected.append(np.mean([
            evaluate(resampled(truth, images), resampled(found_by[seed, "original"], images),
                     0.5, [2])["average_precision"] for seed in picks[row]]))
    tail = 100 * (1 - settings["confidence"]) / 2
    low, high = np.percentile(expected, [tail, 100 - tail])
    ap = result["runs"][0]["average_precision"]
    assert (ap["low"], ap["high"]) == pytest.approx((low, high))
    assert ap["estimate"] == pytest.approx(np.mean([r["average_precision"] for r in runs]))
    assert [s["seed"] for s in result["runs"][0]["seeds"]] == [0, 1, 2]
    assert result["training_seeds"] == [0, 1, 2] and result["resampling"]["d"]["n_seeds"] == 3


def test_identical_seeds_give_the_intervals_of_one_run():
    """Seeds that trained the same model add no variance: every interval is that of the one
    run (the images are drawn from the same stream, whatever the seeds)."""
    rng = np.random.default_rng(2)
    one = seeded_runs("cnn", rng, [None]) + seeded_runs("haar", rng, [None])
    three = [dict(r, seed=s) for r in one for s in (0, 4, 9)]
    single, seeded = analyse(copy.deepcopy(one), SETTINGS), analyse(three, SETTINGS)
    for a, b in zip(single["runs"], seeded["runs"], strict=True):
        for metric in ("average_precision", "detection_rate", "relative_ap"):
            assert a.get(metric) == pytest.approx(b.get(metric))
    for a, b in zip(single["comparisons"], seeded["comparisons"], strict=True):
        assert a["average_precision"] == pytest.approx(b["average_precision"])


def test_seed_variance_widens_the_intervals_and_an_untrained_run_stands_for_every_seed():
    rng = np.random.default_rng(3)
    trained = seeded_runs("cnn", rng, [0, 1, 2])
    untrained = seeded_runs("haar", rng, [None])
    result = analyse(copy.deepcopy(trained + untrained), SETTINGS)
    runs = {(r["detector"], r["variant"]): r for r in result["runs"]}
    # each of the three models tested alone has a narrower interval: images only
    seeded = runs["cnn", "original"]["average_precision"]
    for seed in (0, 1, 2):
        alone = analyse([dict(r, seed=None) for r in trained if r["seed"] == seed], SETTINGS)
        one = alone["runs"][0]["average_precision"]
        assert one["high"] - one["low"] < seeded["high"] - seeded["low"]
    spread = [s["average_precision"] for s in runs["cnn", "original"]["seeds"]]
    ap = runs["cnn", "original"]["average_precision"]
    assert ap["low"] <= np.mean(spread) <= ap["high"]
    assert runs["haar", "original"]["seeds"] == [
        {"seed": None, "average_precision": untrained[0]["average_precision"]}]
    assert result["training_seeds"] == [0, 1, 2]


def test_the_summary_row_is_the_mean_over_seeds(tmp_path):
    from pipeline.evaluation.contracts import stamped

    rng = np.random.default_rng(4)
    runs = seeded_runs("cnn", rng, [0, 1])
    metric_files, timing_files = [], []
    for k, run in enumerate(runs):
        metric_files.append(tmp_path / f"m{k}.json")
        write_json(metric_files[-1], stamped("metrics", run))
        timing_files.append(tmp_path / f"t{k}.json")
        write_json(timing_files[-1], {"detector": "cnn", "seed": run["seed"], "dataset": "d",
                                      "variant": run["variant"], "ms_per_image_mean": 10.0 + k,
                                      "ms_per_image_median": 9.0})
    summarise(metric_files, timing_files, tmp_path / "s.csv", tmp_path / "s.json")
    rows = {r["variant"]: r for r in read_json(tmp_path / "s.json")["runs"]}
    original = [r for r in runs if r["variant"] == "original"]
    assert rows["original"]["average_precision"] == pytest.approx(
        np.mean([r["average_precision"] for r in original]))
    assert rows["original"]["seeds"] == [{"seed": r["seed"],
                                          "average_precision": r["average_precision"]}
                                         for r in original]
    assert rows["original"]["n_seeds"] == 2 and rows["original"]["curve_seed"] == 0
    assert rows["original"]["ms_per_image_mean"] == pytest.approx(11.0)  # runs 0 and 2
    assert rows["shadow"]["relative_ap"] == pytest.approx(
        rows["shadow"]["average_precision"] / rows["original"]["average_precision"])
    header = (tmp_path / "s.csv").read_text().splitlines()[0].split(",")
    assert "n_seeds" in header and "ap_per_seed" in header


def test_a_model_seed_is_refused_with_the_new_place_named(default_config):
    from pipeline.config import ConfigError, validate_config

    config = copy.deepcopy(default_config)
    config["models"]["cnn"]["seed"] = 0
    with pytest.raises(ConfigError, match=r"models.cnn: .*'seed'.*top-level `seeds:` list"):
        validate_config(config)
    for bad in ([], [0, 0], [-1]):
        config = copy.deepcopy(default_config)
        config["seeds"] = bad
        with pytest.raises(ConfigError, match="seeds"):
            validate_config(config)


def test_the_report_says_whether_training_variance_is_in_the_intervals():
    from pipeline.report.verdicts import training_variance

    assert training_variance([0, 1, 2]).startswith("Intervals resample 3 training seeds")
    assert training_variance([0]).startswith("One training seed per model")
    assert training_variance([None]).startswith("No detector here trains a model")


def test_one_training_seed_is_named_whatever_detector_sorts_first():
    """With one seed every detector has one run: the trained detector's seed is the run's
    training seed, even when an untrained detector sorts first (it had read [None], and the
    report then said that no detector trains)."""
    rng = np.random.default_rng(6)
    runs = seeded_runs("a_bundled", rng, [None]) + seeded_runs("cnn", rng, [0])
    result = analyse(runs, SETTINGS)
    assert result["training_seeds"] == [0] and result["resampling"]["d"]["n_seeds"] == 1
    untrained = seeded_runs("a_bundled", rng, [None]) + seeded_runs("haar", rng, [None])
    assert analyse(untrained, SETTINGS)["training_seeds"] == [None]


def test_seeds_typed_on_snakemakes_command_line_are_numbers(default_config):
    """`snakemake --config seeds=[0,1]` reads the items as text; under the keys given on the
    command line they are typed as the schema asks, text that spells no such value is left
    for validation to name, and a file's quoted value keeps its type."""
    from pipeline.command_line_config import typed_command_line_values
    from pipeline.config import ConfigError, deep_merge, validate_config

    given = {"seeds": ["0", "1"], "statistics": {"confidence": "0.9"},
             "execution": {"training_threads": "auto"}}
    config = deep_merge(default_config, {**given, "evaluation": {"iou_threshold": "0.5"}})
    assert typed_command_line_values(config, given) == [
        "seeds.0", "seeds.1", "statistics.confidence"]
    assert config["seeds"] == [0, 1] and config["statistics"]["confidence"] == 0.9
    assert config["execution"]["training_threads"] == "auto"  # a word the schema allows
    assert config["evaluation"]["iou_threshold"] == "0.5"  # not given on the command line
    wrong = deep_merge(default_config, {"seeds": ["0", "one"]})
    assert typed_command_line_values(wrong, {"seeds": ["0", "one"]}) == ["seeds.0"]
    with pytest.raises(ConfigError, match="seeds.1: 'one' is not of type 'integer'"):
        validate_config(wrong)
    assert typed_command_line_values(copy.deepcopy(default_config), {}) == []
    nulled = deep_merge(default_config, {"evaluation": {"min_face_size": "null"}})
    assert typed_command_line_values(nulled, {"evaluation": {"min_face_size": "null"}}) == [
        "evaluation.min_face_size"]
    assert nulled["evaluation"]["min_face_size"] is None


@pytest.mark.workflow
def test_the_workflow_trains_once_per_seed_given_on_the_command_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--cores", "1",
         "--snakefile", str(repo / "Snakefile"), "--directory", str(tmp_path),
         "--config", "seeds=[0,1]"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = dict(line.split()[:2] for line in result.stdout.splitlines()
                  if line.strip() and line.split()[0].startswith("train_"))
    assert counts and all(int(n) % 2 == 0 for n in counts.values()), counts

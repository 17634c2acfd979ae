"""The report is the contracts rendered by a template: versions are checked, every value is
escaped, and the first screen holds the answer, the verdict table, the index and provenance."""

from __future__ import annotations

import copy
import re

import matplotlib.pyplot as plt
import pytest

from pipeline.evaluation.contracts import (
    STATISTICS_VERSION,
    ContractError,
    Statistics,
    read_statistics,
    read_summary,
    stamped,
)
from pipeline.evaluation.statistics import analyse
from pipeline.io import read_json, write_json
from pipeline.report.render import seeds, write_report
from tests.test_verdict import CONFIG, judged, variant_statistics, variant_statistics_runs

SUMMARY_RUNS = [{"detector": d, "dataset": "faces", "variant": v, "n_images": 30, "n_faces": 30,
                 "n_detections": 31, "average_precision": 0.9, "detection_rate_at_fp": {"2": 0.8},
                 "seeds": [{"seed": 0, "average_precision": 0.9}]}
                for d in ("cnn", "haar_trained") for v in ("original", "shadow")]


@pytest.fixture
def report_inputs(tmp_path):
    statistics, summary = tmp_path / "statistics.json", tmp_path / "summary.json"
    write_json(statistics, stamped("statistics", variant_statistics()))
    write_json(summary, stamped("summary", {"runs": SUMMARY_RUNS, "fp_points": [2]}))
    figure = tmp_path / "pr_curves.png"
    plt.figure(figsize=(1, 1))
    plt.savefig(figure)
    plt.close()
    config = copy.deepcopy(CONFIG)
    config["evaluation"] = {"iou_threshold": 0.5}
    config["report"]["arms"]["photo"]["note"] = "<script>alert(1)</script> & more"
    config["models"] = {"cnn": {"seed": 7}}
    config["datasets"] = {"faces": {"kind": "embedded", "evaluate": True, "role": "test"}}
    settings = {"main_variants": ["original", "shadow"], "config": config,
                "sweep": {"strengths": []}, "config_files": ["config/default.yaml",
                                                             "config/mine <b>.yaml"]}
    return settings, summary, statistics, [str(figure)], tmp_path / "index.html"


def test_the_first_screen_is_answer_verdict_index_provenance(report_inputs):
    settings, summary, statistics, figures, out = report_inputs
    write_report(settings, summary, statistics, figures, out)
    page = out.read_text()
    order = [page.index(marker) for marker in (
        'class="answer"', '<h2 id="verdict">', "<nav>", "Provenance of this run",
        'id="verdict-details"', 'id="findings"', 'id="figures"')]
    assert order == sorted(order)
    answer = re.search(r'class="answer" id="answer">(.*?)</p>', page).group(1)
    assert answer.startswith("Does Viola-Jones break where the CNN holds up? Over 1 conditions")
    assert "(1 cells tested, each at level 0.05, bonferroni)" in answer
    assert "arm photo: 1 supported" in answer
    first_screen = page[:page.index('id="verdict-details"')]
    assert "supported" in re.search(r"<table>.*?</table>", first_screen, re.S).group(0)
    for anchor in re.findall(r'<a href="#([\w-]+)">', first_screen):
        assert f'id="{anchor}"' in page  # every index entry has its section
    provenance = first_screen[first_screen.index("Provenance of this run"):]
    assert re.search(r"<dt>commit</dt><dd>([0-9a-f]{10}|unknown)", provenance)
    assert "config/default.yaml, config/mine &lt;b&gt;.yaml" in provenance
    assert "models.cnn.seed 7" in provenance
    assert "One training seed per model: the intervals hold test-image variance only" in answer
    assert re.search(r"<dt>date</dt><dd>\d{4}-\d\d-\d\d \d\d:\d\d UTC", provenance)


def test_every_value_is_escaped(report_inputs):
    settings, summary, statistics, figures, out = report_inputs
    write_report(settings, summary, statistics, figures, out)
    page = out.read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert page.count("<img ") == 1 and "data:image/png;base64," in page


def test_stage_outputs_carry_and_check_their_format_version(report_inputs, tmp_path):
    _, summary, statistics, _, _ = report_inputs
    assert read_json(statistics)["format_version"] == STATISTICS_VERSION
    assert isinstance(read_statistics(statistics), Statistics)
    assert read_summary(summary).fp_points == [2]
    old = read_json(statistics)
    old["format_version"] = STATISTICS_VERSION + 1
    write_json(tmp_path / "old.json", old)
    with pytest.raises(ContractError, match=rf"old.json: statistics format version "
                       rf"{STATISTICS_VERSION + 1}, this code reads version "
                       rf"{STATISTICS_VERSION}; rerun the stage"):
        read_statistics(tmp_path / "old.json")
    with pytest.raises(ContractError, match="summary.json: not a statistics file .its format: "
                                            "summary"):
        read_statistics(summary)


def test_a_stage_cannot_write_what_the_next_cannot_read():
    with pytest.raises(ContractError, match="summary output breaks its contract"):
        stamped("summary", {"runs": [{"detector": "cnn"}], "fp_points": [2]})
    with pytest.raises(ContractError, match="statistics output breaks its contract"):
        stamped("statistics", {"runs": []})  # no settings


def test_seeds_are_found_at_any_depth():
    config = {"statistics": {"seed": 0}, "models": {"cnn": {"seed": 3}, "other": {"seeds": [1, 2]}},
              "datasets": {"a": {"n": 1}}}
    assert seeds(config) == {"statistics.seed": 0, "models.cnn.seed": 3,
                             "models.other.seeds": [1, 2]}


def test_the_typed_statistics_agree_with_the_file(report_inputs):
    _, _, statistics, _, _ = report_inputs
    raw, typed = read_json(statistics), read_statistics(statistics)
    assert len(typed.runs) == len(raw["runs"]) and len(typed.comparisons) == len(raw["comparisons"])
    for run, record in zip(typed.runs, raw["runs"], strict=True):
        assert run.average_precision.estimate == record["average_precision"]["estimate"]
        assert (run.relative_ap is None) == ("relative_ap" not in record)
    flipped = typed.comparisons[0].average_precision.negated()
    original = raw["comparisons"][0]["average_precision"]
    assert (flipped.estimate, flipped.low, flipped.high) == (
        -original["estimate"], -original["high"], -original["low"])


def test_a_tune_set_is_shown_as_development_only(report_inputs):
    settings, summary, statistics, figures, out = report_inputs
    settings["config"]["datasets"]["faces"]["role"] = "tune"
    with pytest.raises(ContractError, match="computed for other dataset roles than the "
                                            "configuration's; rerun the statistics stage"):
        write_report(settings, summary, statistics, figures, out)  # judged when faces was test
    write_json(statistics, stamped("statistics", analyse(variant_statistics_runs(),
                                                         judged(roles={"faces": "tune"}))))
    write_report(settings, summary, statistics, figures, out)
    page = out.read_text()
    assert "<dt>tuned on</dt><dd>faces (role tune" in page
    development = page[page.index('id="development"'):page.index('id="protocol"')]
    assert development.count("<td>faces</td>") == len(SUMMARY_RUNS)
    main = page[page.index('id="main"'):page.index('id="development"')]
    assert "<td>faces</td>" not in main and "faces:" not in page[
        page.index('id="findings"'):page.index('id="main"')]


def test_the_operating_points_chosen_on_tune_sets_are_listed(report_inputs, tmp_path):
    settings, summary, statistics, figures, out = report_inputs
    record = tmp_path / "seed0.json"
    write_json(record, {"detector": "haar_trained", "seed": 0, "tune_sets": ["faces_tune"],
                        "metric": "average_precision", "choice": {"min_neighbors": 2},
                        "score": 0.91, "candidates": [
                            {"settings": {"min_neighbors": 1}, "score": 0.9,
                             "average_precision": {"faces_tune": 0.9}},
                            {"settings": {"min_neighbors": 2}, "score": 0.91,
                             "average_precision": {"faces_tune": 0.91}}]})
    write_report(settings, summary, statistics, figures, out, tuning=[str(record)])
    page = out.read_text()
    section = page[page.index('<h2 id="tuning">'):]
    row = re.search(r"<tr><td>haar_trained</td>.*?</tr>", section).group(0)
    assert "<td>faces_tune</td><td>min_neighbors 2</td><td>0.910</td>" in row
    assert "min_neighbors 1: 0.900; min_neighbors 2: 0.910" in row
    assert '<a href="#tuning">' in page
    write_report(settings, summary, statistics, figures, out)
    assert 'id="tuning"' not in out.read_text()  # nothing tuned: no section

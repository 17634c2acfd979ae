"""The self-contained HTML results report: the stage contracts and verdicts laid out by the
Jinja2 template ``templates/report.html.j2`` (every value escaped), figures embedded.

The first screen holds the answer in one line, the verdict table, the section index and the
provenance (commit, config files, seeds, date); the evidence follows.
"""

from __future__ import annotations

import base64
import datetime
import importlib.metadata
import json
import logging
import platform
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from pipeline.data.roles import dataset_roles
from pipeline.data.variants import BASELINE_VARIANT
from pipeline.evaluation.contracts import (
    ContractError,
    Statistics,
    read_statistics,
    read_summary,
)
from pipeline.evaluation.verdict_rule import MIN_TAIL_RESAMPLES, judged_arms
from pipeline.io import atomic_open, read_json
from pipeline.report import sections
from pipeline.report.families import (
    declared_differences,
    families_compared,
    family_disagreements,
    family_notes,
)
from pipeline.report.findings import findings, folded_findings
from pipeline.report.numbers import ci, p_value
from pipeline.report.verdicts import (
    EVIDENCE_FACES,
    arm_tallies,
    domain_rows,
    one_line_answer,
    reference_detectors,
    small_arms,
    training_variance,
    verdict_rows,
)

LOG = logging.getLogger(__name__)

PACKAGES = ["numpy", "opencv-python-headless", "torch", "scikit-learn", "scikit-image",
            "snakemake", "matplotlib", "jinja2"]
HERE = Path(__file__).parent
CAPTIONS_DIR = HERE / "captions"
TEMPLATE = "report.html.j2"


def caption(figure: str | Path) -> str:
    """The caption of a figure (shared with ``snakemake --report``): captions/<stem>.rst."""
    path = CAPTIONS_DIR / f"{Path(figure).stem}.rst"
    return path.read_text().strip() if path.exists() else Path(figure).stem


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def code_commit() -> str:
    """The git commit of the code that wrote the report, ``+ local changes`` when the checkout's
    workflow, package or configuration differs from it; ``unknown`` outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=HERE.parents[1], capture_output=True,
                              text=True, check=True, timeout=30).stdout.strip()
    try:
        commit = git("rev-parse", "--short=10", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ":(top)pipeline",
                    ":(top)rules", ":(top)Snakefile", ":(top)config")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + (" + local changes" if dirty else "")


def seeds(config: Any, path: str = "") -> dict[str, Any]:
    """Every ``seed``/``seeds`` setting of the configuration, by dotted key."""
    found: dict[str, Any] = {}
    if isinstance(config, dict):
        for key, value in config.items():
            where = f"{path}.{key}" if path else str(key)
            if key in ("seed", "seeds"):
                found[where] = value
            else:
                found |= seeds(value, where)
    return found


def verdict_view(config: dict[str, Any], statistics: Statistics,
                 summary_runs: list[dict[str, Any]], training_faces: dict[str, int]
                 ) -> dict[str, Any]:
    """The verdict table and its notes as text for the template."""
    arms = config["report"].get("arms", {})
    rows = verdict_rows(config, statistics) if arms else []
    samples = statistics.samples
    references = list(dict.fromkeys(d for row in rows for d in row.reference))
    table = sections.Table(["test set", "condition"] + [f"arm {name}" for name in arms]
                           + [f"reference: {d} share kept" for d in references])
    for row in rows:
        texts = []
        for name in arms:
            cell = row.cells.get(name)
            if cell is None:
                texts.append("")
                continue
            why = f" ({cell.why})" if cell.why else ""
            texts.append(f"CNN {ci(cell.cnn, percent=True)}; Haar {ci(cell.haar, percent=True)};"
                         f" CNN - Haar {ci(cell.cnn_minus_haar)}: {cell.verdict}{why}")
        texts += [ci(row.reference[d], percent=True) if d in row.reference else ""
                  for d in references]
        table.rows.append([row.condition.dataset, row.condition.label] + texts)
    scale = []
    for dataset in sorted({r.condition.dataset for r in rows}):
        run = next((r for r in summary_runs if r["dataset"] == dataset
                    and r["variant"] == BASELINE_VARIANT), None)
        if run is not None:
            scale.append(f"{dataset} {run['n_images']} images, {run['n_faces']} faces")
    tallies = arm_tallies(arms, rows)
    summary = (f"Over {len(rows)} conditions and {len(arms)} matched arm(s): "
               + "; ".join(f"arm {name}: {counts}" for name, counts in tallies.items())
               + f". Test sets: {'; '.join(scale)}. Training faces per arm: "
               + ", ".join(f"{name} {training_faces.get(name, 'unknown')}" for name in arms)
               + ".")
    small = small_arms(training_faces)
    if small:
        summary += (f" Arm(s) {', '.join(small)} learned from fewer than {EVIDENCE_FACES:,} "
                    "faces: their verdicts demonstrate the pipeline and are not evidence "
                    "about the claim.")
    domains = sections.Table(["arm", "test set", "CNN AP", "Haar AP", "CNN - Haar", "verdict"])
    for d in domain_rows(config, statistics):
        p = ("" if d.cnn_minus_haar is None
             else f", {p_value(d.cnn_minus_haar.p_value, samples)}")
        domains.rows.append([d.arm, f"{d.dataset} ({BASELINE_VARIANT})", ci(d.cnn), ci(d.haar),
                             ci(d.cnn_minus_haar) + p, d.verdict])
    return {"answer": one_line_answer(arms, rows, training_faces, statistics), "table": table,
            "rule": statistics.verdict,
            "rows": rows, "summary": summary, "domains": domains,
            "notes": [f"arm {name}: {arm['note']}" for name, arm in arms.items()
                      if arm.get("note")]
            + [f"{e['dataset']} against {e['reference_dataset']} {BASELINE_VARIANT}: left out of "
               f"the verdict, since {e['why']}" for e in statistics.cross_sets.excluded]
            + family_notes(config, rows),
            "differences": sections.Table(["arm", "aspect", "CNN side", "cascade side",
                                           "why kept"], declared_differences(config)),
            "families": families_compared(config, rows),
            "family_changes": family_disagreements(config, rows),
            "gains": gain_blocks(arms, rows, samples)}


def gain_blocks(arms: dict[str, Any], rows: list[Any], samples: int) -> list[sections.Block]:
    """Per augmented arm: each detector's gain in share kept over the arm it augments, per
    condition, and the CNN - Haar gap that remains with the augmentation."""
    blocks = []
    for name, arm in arms.items():
        base = arm.get("augments")
        judged = [r for r in rows if name in r.gains]
        if base is None or not judged:
            continue
        table = sections.Table(
            ["test set", "condition", f"CNN gain ({arm['cnn']} - {arms[base]['cnn']})",
             f"Haar gain ({arm['haar']} - {arms[base]['haar']})", "remaining CNN - Haar gap"])
        raised = {"cnn": 0, "haar": 0}
        lowered = {"cnn": 0, "haar": 0}
        for row in judged:
            texts = []
            for kind in ("cnn", "haar"):
                gain = row.gains[name][kind]
                if gain is None or gain.estimate is None:
                    texts.append("undefined")
                    continue
                if gain.significant:
                    (raised if gain.estimate > 0 else lowered)[kind] += 1
                texts.append(f"{ci(gain)}, {p_value(gain.p_value, samples)}")
            cell = row.cells[name]
            texts.append(f"{ci(cell.cnn_minus_haar)}: {cell.verdict}")
            table.rows.append([row.condition.dataset, row.condition.label] + texts)
        gaps = arm_tallies({name: arm}, judged)[name]
        text = (f"Over {len(judged)} conditions, the augmentation of arm {name} raised the CNN "
                f"share kept significantly in {raised['cnn']} and lowered it in "
                f"{lowered['cnn']}; it raised the Haar share kept in {raised['haar']} and "
                f"lowered it in {lowered['haar']}. The gap between the feature types that "
                f"remains with it: {gaps}.")
        blocks.append(sections.Block(f"Gain from augmentation: arm {name} over arm {base}",
                                     text, table))
    return blocks


def figure_views(figures: list[str], grouped: bool, swept: bool) -> list[dict[str, str]]:
    """Figures as embedded PNG data with their captions; the light-angle and sweep figures
    only where a grouped set or a sweep gives them data."""
    views = []
    for figure in figures:
        path = Path(figure)
        if (path.name == "ap_vs_light_angle.png" and not grouped
                or path.name == "ap_vs_shadow_strength.png" and not swept):
            continue
        views.append({"name": path.stem, "caption": caption(path),
                      "data": base64.b64encode(path.read_bytes()).decode("ascii")})
    return views


def check_judged_as_configured(statistics: Statistics, config: dict[str, Any],
                               roles: dict[str, str], path: str | Path) -> None:
    """Refuse statistics whose verdict was computed for other arms or dataset roles than
    the configuration's (a stage run by hand on an old file): ContractError naming it."""
    judged_roles = statistics.settings.get("roles", {})
    differ = []
    if statistics.settings.get("arms", {}) != judged_arms(config):
        differ.append("report.arms")
    if any(role != judged_roles.get(name, "test") for name, role in roles.items()):
        differ.append("dataset roles")
    if differ:
        raise ContractError(f"{path}: its verdict was computed for other {' and '.join(differ)} "
                            "than the configuration's; rerun the statistics stage")


def environment() -> jinja2.Environment:
    """The template environment: escaping on for every value, undefined names an error."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def write_report(settings: dict[str, Any], summary_path: str | Path,
                 statistics_path: str | Path, figures: list[str], out: str | Path,
                 complexity_path: str | Path | None = None,
                 cascade_histories: list[str] | None = None,
                 tuning: list[str] | None = None) -> None:
    """Write the HTML report; ``cascade_histories`` are train-haar records
    (``<name>.stages.json``); ``tuning`` are the tuning stage's records
    (``results/tuning/<detector>/<draw>.json``); ``settings`` are the figure settings plus
    ``config``, ``arm_training`` {arm: train.npz} and ``config_files``."""
    summary = read_summary(summary_path)
    statistics = read_statistics(statistics_path)
    histories = {Path(p).name.removesuffix(".stages.json"): read_json(p)
                 for p in cascade_histories or []}
    training_faces = {}
    for arm, path in settings.get("arm_training", {}).items():
        with np.load(path) as data:
            training_faces[arm] = len(data["faces"])
    config, main_variants = settings["config"], settings["main_variants"]
    references = reference_detectors(config)
    roles_by_set = dataset_roles(config)
    check_judged_as_configured(statistics, config, roles_by_set, statistics_path)
    tuned = {name for name, r in roles_by_set.items() if r == "tune"}
    tested = [r for r in summary.runs if r["dataset"] not in tuned]
    matched = [r for r in tested if r["detector"] not in references]
    swept = bool(settings["sweep"]["strengths"])
    blocks, rest = folded_findings(findings(config, main_variants, statistics),
                                   sorted({r["dataset"] for r in summary.runs}))
    blocks = {name: items for name, items in blocks.items() if name not in tuned}
    context = {
        "verdict": verdict_view(config, statistics, summary.runs, training_faces),
        "min_tail_resamples": MIN_TAIL_RESAMPLES,
        "level": statistics.level,
        "baseline": BASELINE_VARIANT,
        "iou_threshold": config["evaluation"]["iou_threshold"],
        "findings": blocks, "findings_rest": rest,
        "main": sections.run_table([r for r in matched if r["variant"] in main_variants],
                                   summary.fp_points),
        "sweep": sections.run_table([r for r in matched if r["variant"] not in main_variants],
                                    summary.fp_points) if swept else None,
        "references": [f"{name} ({config['detectors'][name]['kind']})" for name in
                       dict.fromkeys(r["detector"] for r in summary.runs
                                     if r["detector"] in references)],
        "reference_table": sections.run_table(
            [r for r in tested if r["detector"] in references], summary.fp_points),
        "development": sections.run_table(
            [r for r in summary.runs if r["dataset"] in tuned], summary.fp_points)
        if tuned else None,
        "groups": sections.group_blocks(config, statistics, frozenset(tuned)),
        "tuning": sections.tuning_table([read_json(p) for p in tuning or []]),
        "protocol": sections.protocol(summary.runs),
        "cascades": sections.cascade_blocks(histories),
        "complexity": sections.complexity_blocks(
            read_json(complexity_path) if complexity_path else None),
        "figures": figure_views(figures, bool(statistics.groups.runs), swept),
        "provenance": {
            "test_sets": [n for n, r in roles_by_set.items() if r == "test"],
            "tune_sets": sorted(tuned),
            "calibration_sets": sorted({d["calibration"] for d in config["datasets"].values()
                                        if d.get("calibration")}),
            "commit": code_commit(),
            "config_files": settings.get("config_files") or ["config/default.yaml"],
            "seeds": seeds(config),
            "training_seeds": "{}. {}".format(
                ", ".join("none (no detector trains)" if s is None else str(s)
                          for s in statistics.training_seeds),
                training_variance(statistics.training_seeds)),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "bootstrap": f"{statistics.samples} resamples, seed {statistics.settings['seed']}",
        },
        "packages": json.dumps(package_versions(), indent=1),
        "configuration": json.dumps(config, indent=1),
    }
    with atomic_open(out, "w") as handle:
        handle.write(environment().get_template(TEMPLATE).render(context))
    LOG.info("report written to %s", out)

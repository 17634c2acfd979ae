"""The tiny workflow through profiles/slurm on a live SLURM cluster (`scripts/slurm-local.sh`).

Skipped when there is no SLURM controller to talk to, or no SLURM executor plugin
(`pip install -e '.[slurm]'`). The profile is copied with the site settings a user changes:
account and partitions, and, because the local node is small and has no GPU, `cores` and the
training rules' GPU, CPUs and memory fitted to the node (`fit_profile`).

To keep CI short the run is a slice of the tiny configuration (`TARGETS`): both training rules
(so their resource requests are checked), and one CNN and the trained cascade detected on one
variant, then merged and evaluated (one group job per detector). The local reference run makes
the same targets.
"""

from __future__ import annotations

import filecmp
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import deep_merge
from tests.conftest import TINY_OVERRIDES

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
ACCOUNT = os.environ.get("SLURM_LOCAL_ACCOUNT", "facecompare")
PARTITION = os.environ.get("SLURM_LOCAL_PARTITION", "local")
# Run-dependent outputs: wall times (timing/, benchmarks/, and the tables, figures and report
# that show them) and logs. Everything else must be byte-identical to a local run, except the
# training wall times inside model checkpoints and cascade stage histories (`same_content`).
RUN_DEPENDENT = ("timing", "benchmarks", "logs", "summary/summary.csv", "summary/summary.json",
                 "figures", "report")
WALL_TIME_KEYS = {"seconds", "train_seconds"}
# The tiny configuration with a one-epoch CNN, no hard-negative mining (seconds, not a minute,
# of training) and unsharded detection, and the slice of it that is run: 10 jobs, which the
# profile submits as 8 SLURM jobs (merge and evaluation of each detector in one group job).
SLURM_OVERRIDES = deep_merge(TINY_OVERRIDES, {
    "models": {"cnn": {"epochs": 1, "hard_negative_rounds": 0}},
    "execution": {"detection_shards": 1},
})
TARGETS = [f"results/metrics/{detector}/seed0/embedded/original.json"
           for detector in ("cnn", "haar_trained")]
CANCELLED_SHARD = Path("results/detections/haar_trained/seed0/embedded/original/shard0.json")


def slurm_unavailable() -> str | None:
    """Why the SLURM test cannot run here, or None."""
    if shutil.which("sinfo") is None:
        return "sinfo not found (start a cluster with scripts/slurm-local.sh start)"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm not installed (pip install -e '.[slurm]')"
    states = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    if states.returncode != 0 or "idle" not in states.stdout.split():
        return f"no idle SLURM node: {(states.stdout + states.stderr).strip()}"
    return None


UNAVAILABLE = slurm_unavailable()
pytestmark = [pytest.mark.workflow,
              pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE))]


def node_size() -> tuple[int, int]:
    """CPUs and memory (MiB) of the smallest node of the partition."""
    out = subprocess.run(["sinfo", "-h", "-N", "-p", PARTITION, "-o", "%c %m"],
                         capture_output=True, text=True, check=True).stdout
    sizes = [tuple(int(v) for v in line.split()) for line in out.splitlines()]
    return min(c for c, _ in sizes), min(m for _, m in sizes)


def fit_profile(profile: dict[str, Any], cpus: int, mem_mb: int) -> dict[str, Any]:
    """The profile with this cluster's account and partition, and no GPU; ``cores`` (so the
    widest group job) and training's threads, CPUs and memory capped at one node's ``cpus``
    and ``mem_mb``."""
    fitted = yaml.safe_load(yaml.safe_dump(profile))
    fitted["slurm-init-seconds-before-status-checks"] = 5  # default 40: slow on a tiny run
    fitted["cores"] = min(fitted["cores"], cpus)
    fitted["default-resources"].update(slurm_account=ACCOUNT, slurm_partition=PARTITION)
    fitted["set-threads"] = {rule: min(n, cpus) for rule, n in fitted["set-threads"].items()}
    for resources in fitted["set-resources"].values():
        resources.update(slurm_partition=PARTITION, gpu=0,
                         cpus_per_task=min(resources["cpus_per_task"], cpus),
                         mem_mb=min(resources["mem_mb"], mem_mb))
    return fitted


def snakemake(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--configfile", str(workdir / "tiny.yaml"), *args]


def group_of(comment: str, profile: dict[str, Any]) -> str | None:
    """The group a SLURM job ran, from the comment the plugin gives it (``rule_<group>_<its
    rules>`` for a group job, ``rule_<rule>_wildcards_<values>`` for a single job), or None."""
    groups = sorted(set(profile.get("groups", {}).values()), key=len, reverse=True)
    return next((g for g in groups if comment.startswith(f"rule_{g}_")), None)


def runs_detection(comment: str, profile: dict[str, Any]) -> bool:
    """Whether a SLURM job with this comment runs detection, alone or in its group."""
    group = group_of(comment, profile)
    if group is None:
        return comment.startswith("rule_detect_")
    return "_detect_" in f"_{comment.removeprefix(f'rule_{group}_')}_"  # sorted, "_"-joined


def run(command: list[str]) -> tuple[str, float]:
    """Output and wall time (s) of a command that must succeed."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout + result.stderr, time.perf_counter() - start


def slurm_job_ids(output: str) -> list[str]:
    """SLURM job ids of the jobs a Snakemake run submitted."""
    return re.findall(r"has been submitted with SLURM jobid (\d+)", output)


def sacct(job_ids: list[str], steps: bool = False) -> list[dict[str, str]]:
    """sacct's allocation lines for the given job ids, or with ``steps`` their srun steps
    (``<job>.<n>``: the plugin runs each Snakemake job of a SLURM job as one srun step)."""
    fields = ["JobID", "Comment", "Account", "Partition", "State", "ReqCPUS", "ReqMem",
              "Timelimit", "ReqTRES", "Elapsed"]
    out = subprocess.run(["sacct", *([] if steps else ["-X"]), "-n", "-P", "-j",
                          ",".join(job_ids), "--format", ",".join(fields)],
                         capture_output=True, text=True, check=True).stdout
    lines = [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()]
    return [j for j in lines if re.fullmatch(r"\d+\.\d+", j["JobID"])] if steps else lines


def job_count(output: str) -> int:
    """Number of jobs in the run's 'Job stats' table, less the target rule ``all``."""
    table = output.split("Job stats:")[1].split("total")[0]
    return sum(int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)
               if m[1] != "all")


def result_files(workdir: Path) -> set[Path]:
    root = workdir / "results"
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()
            and not any(str(p.relative_to(root)).startswith(d) for d in RUN_DEPENDENT)}


def without_wall_times(value: Any) -> Any:
    """``value`` with every dict entry named in WALL_TIME_KEYS left out, at any depth."""
    if isinstance(value, dict):
        return {k: without_wall_times(v) for k, v in value.items() if k not in WALL_TIME_KEYS}
    if isinstance(value, list | tuple):
        return [without_wall_times(v) for v in value]
    return value


def same_content(a: Path, b: Path) -> bool:
    """Whether two checkpoints (.pt) or JSON files are equal apart from wall times."""
    if a.suffix == ".pt":
        import torch

        first, second = (without_wall_times(torch.load(p, weights_only=True)) for p in (a, b))
        states = first.pop("state_dict"), second.pop("state_dict")
        return first == second and states[0].keys() == states[1].keys() and all(
            torch.equal(states[0][k], states[1][k]) for k in states[0])
    return without_wall_times(json.loads(a.read_text())) == without_wall_times(
        json.loads(b.read_text()))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Any]:
    """The tiny configuration run locally and through SLURM: workdirs, outputs, wall times."""
    local, cluster = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("slurm")
    profile = cluster / "profile"
    profile.mkdir()
    fitted = fit_profile(yaml.safe_load(PROFILE.read_text()), *node_size())
    (profile / "config.yaml").write_text(yaml.safe_dump(fitted, sort_keys=False))
    # CNN weights are bit-identical only for one thread count: the local run trains with the
    # threads the profile gives the SLURM training jobs (which set-threads fixes there)
    overrides = deep_merge(SLURM_OVERRIDES, {
        "execution": {"training_threads": fitted["set-threads"]["train_cnn"]}})
    for workdir in (local, cluster):
        (workdir / "tiny.yaml").write_text(yaml.safe_dump(overrides))
    local_output, local_s = run(snakemake(local, "--cores", "2", *TARGETS))
    slurm_output, slurm_s = run(snakemake(cluster, "--profile", str(profile), *TARGETS))
    print(f"tiny configuration, {' '.join(TARGETS)}: local {local_s:.0f} s, "
          f"SLURM {slurm_s:.0f} s")
    return {"local": local, "slurm": cluster, "profile": profile, "fitted": fitted,
            "local_output": local_output, "slurm_output": slurm_output}


def test_every_job_ran_as_a_slurm_job(runs):
    ids = slurm_job_ids(runs["slurm_output"])
    assert len(ids) == len(set(ids))
    jobs = sacct(ids)
    assert sorted(j["JobID"] for j in jobs) == sorted(ids)
    assert {j["State"] for j in jobs} == {"COMPLETED"}
    assert {j["Account"] for j in jobs} == {ACCOUNT}
    assert {j["Partition"] for j in jobs} == {PARTITION}
    # one srun step per Snakemake job; the profile's groups put several in one SLURM job
    steps = sacct(ids, steps=True)
    assert len(steps) == job_count(runs["slurm_output"]) > len(ids)
    assert {s["State"] for s in steps} == {"COMPLETED"}
    assert any(group_of(j["Comment"], runs["fitted"]) for j in jobs)


def minutes(limit: str) -> int:
    """Minutes of an sacct time limit ([D-]HH:MM:SS)."""
    days, _, clock = limit.rpartition("-")
    hours, mins, _ = (int(v) for v in clock.split(":"))
    return (int(days or 0) * 24 + hours) * 60 + mins


def test_training_asked_for_the_profile_resources(runs):
    fitted = runs["fitted"]
    default = fitted["default-resources"]
    jobs = sacct(slurm_job_ids(runs["slurm_output"]))
    trained = set()
    for job in jobs:
        assert "gres/gpu" not in job["ReqTRES"], job
        if group_of(job["Comment"], fitted):
            # the jobs it could run side by side (default resources each, at most `cores`),
            # and the run times of those it runs one after another (merge, evaluate) added up
            cpus = int(job["ReqCPUS"])
            assert 1 <= cpus <= fitted["cores"], job
            assert job["ReqMem"] == f"{cpus * default['mem_mb']}M", job
            assert minutes(job["Timelimit"]) % default["runtime"] == 0, job
            assert minutes(job["Timelimit"]) >= 2 * default["runtime"], job
            continue
        rule = re.match(r"rule_(\w+?)_wildcards", job["Comment"]) or re.match(
            r"rule_(\w+)", job["Comment"])
        assert rule, job
        wanted = {**default, **fitted["set-resources"].get(rule[1], {})}
        assert int(job["ReqCPUS"]) == wanted["cpus_per_task"], job
        assert job["ReqMem"] == f"{wanted['mem_mb']}M", job
        assert minutes(job["Timelimit"]) == wanted["runtime"], job
        if rule[1] in fitted["set-resources"]:
            trained.add(rule[1])
    assert trained == {"train_cnn", "train_haar"}


def test_results_identical_to_a_local_run(runs):
    files = result_files(runs["local"])
    assert files == result_files(runs["slurm"])
    assert any(f.parts[0] == "models" for f in files) and any(f.parts[0] == "metrics"
                                                              for f in files)
    _, mismatch, errors = filecmp.cmpfiles(runs["local"] / "results", runs["slurm"] / "results",
                                           [str(f) for f in files], shallow=False)
    assert errors == []
    assert {Path(f).suffix for f in mismatch} <= {".pt", ".json"}
    local, cluster = runs["local"] / "results", runs["slurm"] / "results"
    for name in mismatch:
        assert same_content(local / name, cluster / name), name


def test_cancelled_job_is_resubmitted_on_rerun(runs):
    cluster, fitted = runs["slurm"], runs["fitted"]
    shard = CANCELLED_SHARD
    (cluster / shard).unlink()  # an intermediate file: asked for by name, or nothing reruns
    command = snakemake(cluster, "--profile", str(runs["profile"]), str(shard))
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    cancelled = None
    try:
        deadline = time.monotonic() + 120
        while cancelled is None and time.monotonic() < deadline:
            queue = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %k"],
                                   capture_output=True, text=True, check=True).stdout
            for line in queue.splitlines():
                job_id, comment = line.split(maxsplit=1)
                if runs_detection(comment, fitted):
                    subprocess.run(["scancel", job_id], check=True)
                    cancelled = job_id
            time.sleep(0.2)
        # plugin 2.8 on SLURM 22.05 does not report the cancelled job ("CANCELLED by 0" in
        # sacct) and waits on; a user stops it, as here, and reruns. 20 s gives it two status
        # checks (5 s, then 15 s apart with the fitted profile)
        first.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
            run(snakemake(cluster, "--cores", "1", "--unlock"))
    assert cancelled is not None, "the detection job never showed up in squeue"
    assert not (cluster / shard).exists()
    assert sacct([cancelled])[0]["State"].startswith("CANCELLED")
    rerun_output, _ = run(command)
    resubmitted = sacct(slurm_job_ids(rerun_output))
    assert any(runs_detection(j["Comment"], fitted) for j in resubmitted)
    assert {j["State"] for j in resubmitted} == {"COMPLETED"}
    assert filecmp.cmp(cluster / shard, runs["local"] / shard, shallow=False)

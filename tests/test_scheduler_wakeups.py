"""The scheduler guard keeps one pending wake-up timer where Snakemake keeps one per pass."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from snakemake.scheduling.job_scheduler import JobScheduler

from pipeline.scheduler_wakeups import limit_scheduler_wakeups

DELAY_S = 0.3
REPO = Path(__file__).parents[1]


def _bare_scheduler() -> JobScheduler:
    """A JobScheduler with only the semaphore its wake-ups release."""
    scheduler = object.__new__(JobScheduler)
    scheduler._open_jobs = threading.Semaphore(0)
    return scheduler


def _wakeup_timers() -> list[threading.Timer]:
    return [t for t in threading.enumerate() if isinstance(t, threading.Timer) and t.is_alive()]


def _passes(scheduler: JobScheduler, n_passes: int) -> int:
    """Run ``n_passes`` scheduling passes' ends; return the timers they left pending."""
    before = len(_wakeup_timers())
    for _ in range(n_passes):
        scheduler._schedule_reevalutation(DELAY_S)
    return len(_wakeup_timers()) - before


def _drain(scheduler: JobScheduler) -> int:
    """Count wake-ups released until none comes within twice the delay."""
    count = 0
    while scheduler._open_jobs.acquire(timeout=2 * DELAY_S):
        count += 1
    return count


@pytest.fixture
def guarded(monkeypatch):
    """JobScheduler with the guard installed; Snakemake's own method restored afterwards."""
    monkeypatch.setattr(
        JobScheduler, "_schedule_reevalutation", JobScheduler.__dict__["_schedule_reevalutation"]
    )
    assert limit_scheduler_wakeups()
    return JobScheduler


def test_snakemake_itself_leaves_one_timer_per_pass():
    # the problem the guard exists for: if this fails, Snakemake changed and the guard may go
    scheduler = _bare_scheduler()
    assert _passes(scheduler, 20) == 20
    assert _drain(scheduler) == 20


def test_guard_keeps_one_pending_timer_and_one_wakeup(guarded):
    scheduler = _bare_scheduler()
    assert _passes(scheduler, 20) == 1
    assert all(t.daemon for t in _wakeup_timers())
    assert _drain(scheduler) == 1


def test_a_pass_after_the_wakeup_arms_a_new_timer(guarded):
    scheduler = _bare_scheduler()
    _passes(scheduler, 3)
    assert _drain(scheduler) == 1
    assert _passes(scheduler, 3) == 1
    assert _drain(scheduler) == 1


def test_schedulers_do_not_share_their_pending_timer(guarded):
    first, second = _bare_scheduler(), _bare_scheduler()
    assert _passes(first, 2) + _passes(second, 2) == 2
    assert _drain(first) == 1 and _drain(second) == 1


def test_guard_is_installed_once(guarded):
    method = guarded.__dict__["_schedule_reevalutation"]
    assert limit_scheduler_wakeups()
    assert guarded.__dict__["_schedule_reevalutation"] is method


def test_missing_method_leaves_snakemake_alone(monkeypatch, caplog):
    monkeypatch.delattr(JobScheduler, "_schedule_reevalutation")
    assert not limit_scheduler_wakeups()
    assert not hasattr(JobScheduler, "_schedule_reevalutation")
    assert "_schedule_reevalutation" in caplog.text


def test_the_workflow_installs_the_guard(tmp_path):
    # a dry run of the real Snakefile, in its own process, then look at the scheduler's method
    probe = (
        "import sys\n"
        "from snakemake.cli import main\n"
        "from snakemake.scheduling.job_scheduler import JobScheduler\n"
        "try:\n"
        f"    main(['-n', '--quiet', 'all', '--cores', '1', '-s', {str(REPO / 'Snakefile')!r},"
        f" '-d', {str(tmp_path)!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('METHOD', JobScheduler._schedule_reevalutation.__module__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert "METHOD pipeline.scheduler_wakeups" in result.stdout, result.stderr[-2000:]

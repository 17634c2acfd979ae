"""At most one pending wake-up timer per Snakemake scheduler.

Snakemake 9 ends every scheduling pass by starting a ``threading.Timer`` for its job-rate
window (``JobScheduler._schedule_reevalutation``, name as spelled upstream). A pass woken by
such a timer starts another, so every finished job leaves an endless chain of timers: in the
3-seed research run (1,422 jobs) Snakemake held 1,144 threads and 45% of a core after 1,136
jobs, and short jobs waited to start (docs/results/2026-12-07-research-39a720e.md).

:func:`limit_scheduler_wakeups` replaces that method with one that keeps a single pending
timer per scheduler: a further request while one is pending is already covered by it, since
the pending timer wakes the scheduler no later than the window asks. Finished jobs still wake
the scheduler at once (Snakemake releases its semaphore for each). The timer is a daemon
thread, so it no longer holds Snakemake's exit for a window.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

_PATCH_MARK = "_pipeline_single_wakeup"
_METHOD = "_schedule_reevalutation"


def _single_pending_wakeup(scheduler: Any, delay: float) -> None:
    """Wake ``scheduler`` after ``delay`` seconds unless a wake-up is already pending."""
    lock = scheduler.__dict__.setdefault("_pipeline_wakeup_lock", threading.Lock())
    with lock:
        if scheduler.__dict__.get("_pipeline_wakeup_pending", False):
            return
        scheduler._pipeline_wakeup_pending = True

    def wake() -> None:
        with lock:
            scheduler._pipeline_wakeup_pending = False
        scheduler._open_jobs.release()

    timer = threading.Timer(delay, wake)
    timer.daemon = True
    timer.start()


setattr(_single_pending_wakeup, _PATCH_MARK, True)


def limit_scheduler_wakeups() -> bool:
    """Install the single-timer wake-up in Snakemake's scheduler; True when installed.

    Idempotent. Where the installed Snakemake has no such method (another version), it logs
    a warning and leaves Snakemake as it is.
    """
    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        log.warning("Snakemake's JobScheduler not found: its wake-up timers are left as they are")
        return False
    current = getattr(JobScheduler, _METHOD, None)
    if current is None:
        log.warning(
            "snakemake JobScheduler has no %s: its wake-up timers are left as they are", _METHOD
        )
        return False
    if not getattr(current, _PATCH_MARK, False):
        setattr(JobScheduler, _METHOD, _single_pending_wakeup)
    return True

"""Where a workflow run's time went: its jobs' Snakemake benchmark files, summed per rule.

Reads every ``benchmarks/<rule>/.../<job>.tsv`` under a results folder (Snakemake's
``benchmark:`` files: wall seconds ``s`` and CPU seconds ``cpu_time`` of one job) and prints,
per rule, the jobs, the summed wall and CPU seconds, the median and the longest job, and each
rule's share of all job seconds; then the longest jobs. With ``--log`` (the run's Snakemake
log), it also prints the run's wall time, first to last timestamp, and the job seconds per
wall second (how many cores were busy on average).

    python benchmarks/workflow_times.py results --log snakemake.log --top 15
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def job_times(results: Path) -> list[tuple[str, str, float, float]]:
    """``(rule, job, wall s, CPU s)`` of every benchmark file under ``results/benchmarks``."""
    rows = []
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        with path.open(newline="") as handle:
            last = list(csv.DictReader(handle, delimiter="\t"))
        if not last:
            continue
        relative = path.relative_to(results / "benchmarks")
        cpu = last[-1].get("cpu_time", "NA")
        rows.append((relative.parts[0], str(relative.with_suffix("")), float(last[-1]["s"]),
                     float(cpu) if cpu not in ("NA", "") else float("nan")))
    return rows


def log_wall_seconds(log: Path) -> float:
    """Seconds from the first to the last ``[date]`` line of a Snakemake log."""
    stamps = [datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
              for line in log.read_text().splitlines() if (m := STAMP.match(line.strip()))]
    if len(stamps) < 2:
        raise SystemExit(f"{log}: fewer than two timestamps; is it a Snakemake log?")
    return (stamps[-1] - stamps[0]).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a run's results folder")
    parser.add_argument("--log", type=Path, help="the run's Snakemake log")
    parser.add_argument("--top", type=int, default=10, help="longest jobs to list")
    args = parser.parse_args()
    rows = job_times(args.results)
    if not rows:
        raise SystemExit(f"{args.results}/benchmarks: no benchmark files")
    total = sum(r[2] for r in rows)
    print(f"{'rule':<24}{'jobs':>6}{'wall s':>10}{'cpu s':>10}{'median s':>10}"
          f"{'max s':>9}{'share':>8}")
    for rule in sorted({r[0] for r in rows}, key=lambda n: -sum(r[2] for r in rows if r[0] == n)):
        walls = [r[2] for r in rows if r[0] == rule]
        cpu = sum(r[3] for r in rows if r[0] == rule)
        print(f"{rule:<24}{len(walls):>6}{sum(walls):>10.0f}{cpu:>10.0f}"
              f"{statistics.median(walls):>10.1f}{max(walls):>9.0f}{sum(walls) / total:>8.1%}")
    print(f"{'all':<24}{len(rows):>6}{total:>10.0f}")
    print(f"\nlongest {args.top} jobs:")
    for _rule, job, wall, _cpu in sorted(rows, key=lambda r: -r[2])[:args.top]:
        print(f"  {wall:>8.0f} s  {job}")
    if args.log is not None:
        wall = log_wall_seconds(args.log)
        print(f"\nrun wall time {wall:.0f} s ({wall / 60:.1f} min); job seconds per wall second "
              f"{total / wall:.2f}")


if __name__ == "__main__":
    main()

"""Peak memory of the per-image stages as the test set grows (prints measured numbers).

Builds the embedded dataset with N scenes for each N given, then runs the shadow variant, the
Haar detector and the evaluation on it, each stage in a fresh process, and prints each
stage's peak resident memory (MiB) and wall time. Memory that stays flat as N grows shows that
images are streamed, not held.

    python benchmarks/memory_scaling.py 100 1000
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.config import load_config


def stage(args: list[str]) -> tuple[float, float]:
    """Run ``python -m pipeline ARGS``; return (peak RSS of the child in MiB, seconds)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", *args], check=True,
                   stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, seconds


def main(sizes: list[int]) -> None:
    config = load_config()
    print(f"{'scenes':>7} {'stage':>14} {'peak MiB':>9} {'seconds':>8}")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            dataset = dict(config["datasets"]["embedded"], n_scenes=n)
            steps = {
                "build-dataset": ["build-dataset", "--settings", json.dumps(dataset),
                                  "--out", str(root / "data")],
                "make-variant": ["make-variant", "--settings",
                                 json.dumps(config["variants"]["shadow"]), "--name", "shadow",
                                 "--manifest", str(root / "data/test.json"),
                                 "--out", str(root / "shadow")],
                "detect haar": ["detect", "--settings", json.dumps(config["detectors"]["haar"]),
                                "--manifest", str(root / "shadow/manifest.json"), "--name",
                                "haar", "--out", str(root / "det.json"),
                                "--timing", str(root / "time.json")],
                "evaluate": ["evaluate", "--settings", json.dumps(config["evaluation"]),
                             "--truth", str(root / "shadow/manifest.json"), "--detections",
                             str(root / "det.json"), "--detector", "haar", "--dataset", "e",
                             "--variant", "shadow", "--out", str(root / "metrics.json")],
            }
            for name, args in steps.items():
                # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: run each stage
                # in its own interpreter so the number belongs to that stage alone.
                peak, seconds = _isolated(args)
                print(f"{n:>7} {name:>14} {peak:>9.0f} {seconds:>8.1f}", flush=True)


def _isolated(args: list[str]) -> tuple[float, float]:
    code = ("import sys, runpy, resource, time; from benchmarks.memory_scaling import stage; "
            "peak, s = stage(sys.argv[1:]); print(peak, s)")
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parents[1]).stdout.split()
    return float(out[-2]), float(out[-1])


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 1000])

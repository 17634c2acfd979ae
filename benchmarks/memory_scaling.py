"""Peak memory of the per-image stages as the test set and the images grow (prints measured
numbers).

Test set size: builds the embedded dataset with N scenes for each N given, then runs the
shadow variant, the Haar detector and the evaluation on it, each stage in a fresh process, and
prints each stage's peak resident memory (MiB) and wall time. Memory that stays flat as N
grows shows that images are streamed, not held.

Image size (``--megapixels``): one test image of each size (a sample scene resized, with
faces of the embedded dataset pasted in), detected by the Haar cascade and by the CNN
detectors (trained models of a finished run, ``--models``), each in a fresh process. The CNN
scores pyramid levels in tiles (``tile_size``), so its peak memory grows with the image itself
(a few bytes per pixel), not with the network's activations over the whole image.

    python benchmarks/memory_scaling.py 100 1000
    python benchmarks/memory_scaling.py --megapixels 0.3 4 64
    python benchmarks/memory_scaling.py --megapixels 64 --max-pixels 4000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from pipeline.config import load_config
from pipeline.detection.detectors import model_files


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


def image_of(megapixels: float, out: Path) -> Path:
    """A 4:3 grayscale test image of ``megapixels`` with four faces, and its manifest."""
    from pipeline.boxes import Box, ImageRecord, Manifest
    from pipeline.data.compose import paste_face
    from pipeline.data.datasets import lfw_patches, load_background
    from pipeline.io import write_image

    width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = round(width * 3 / 4)
    scene = cv2.resize(load_background("coffee"), (width, height), interpolation=cv2.INTER_LINEAR)
    faces, _ = lfw_patches()
    side = max(48, width // 8)
    boxes = [Box(x, height // 3, side, side) for x in (width // 10, width // 2)]
    for face, box in zip(faces, boxes, strict=False):
        paste_face(scene, face, box)
    write_image(out / "image.png", scene)
    Manifest("ground_truth", out, [ImageRecord("image.png", width, height, boxes)]).save(
        out / "manifest.json")
    return out / "manifest.json"


def image_sizes(megapixels: list[float], models: Path, max_pixels: int | None) -> None:
    config = load_config()
    detectors = {name: dict(d, max_pixels=max_pixels) for name, d in config["detectors"].items()
                 if all((models / Path(f).name).is_file() for f in model_files(d, str(models)))}
    skipped = sorted(set(config["detectors"]) - set(detectors))
    if skipped:
        print(f"(no trained models in {models} for {', '.join(skipped)}: run snakemake first)")
    print(f"{'megapixels':>10} {'detector':>14} {'peak MiB':>9} {'seconds':>8}")
    for size in megapixels:
        with tempfile.TemporaryDirectory() as tmp:
            manifest = image_of(size, Path(tmp))
            for name, settings in detectors.items():
                files = model_files(settings, str(models))
                args = ["detect", "--settings", json.dumps(settings), "--manifest",
                        str(manifest), "--name", name, "--out", f"{tmp}/det.json",
                        "--timing", f"{tmp}/time.json", *(["--model", *files] if files else [])]
                peak, seconds = _isolated(args)
                print(f"{size:>10g} {name:>14} {peak:>9.0f} {seconds:>8.1f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenes", nargs="*", type=int, help="test set sizes (default 100 1000)")
    parser.add_argument("--megapixels", nargs="+", type=float,
                        help="image sizes to measure instead of test set sizes")
    parser.add_argument("--models", type=Path, default=Path("results/models/seed0"),
                        help="trained models of one seed of a finished run "
                        "(default results/models/seed0)")
    parser.add_argument("--max-pixels", type=int,
                        help="detectors' max_pixels: larger images are downscaled first")
    args = parser.parse_args()
    if args.megapixels:
        image_sizes(args.megapixels, args.models, args.max_pixels)
    else:
        main(args.scenes or [100, 1000])

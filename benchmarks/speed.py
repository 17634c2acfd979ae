r"""Detection speed of every configured detector on the same images, CNN training throughput
per architecture, and the cost of one boosting round of the cascade trainer (prints measured
numbers; not a test).

Run after the default workflow (it reads its variant images and trained models):

    python benchmarks/speed.py                       # embedded test images, 1 and 2 threads
    python benchmarks/speed.py --dataset mitcmu      # any built test set (--variant: original)
    python benchmarks/speed.py --manifest path/to/manifest.json

``--detectors`` picks detectors by name; ``--skip-training`` leaves out the training and
boosting measurements. The reference detectors of the research configuration:

    python benchmarks/speed.py --configfile config/research.yaml --skip-training \
        --detectors haar hog dnn_ssd mtcnn blazeface yunet \
        --dataset mitcmu

Every detector sees the same images with the same smallest face size (``min_size`` of the
config; the reference detectors without one search their own range); times are the median
over images of the wall time of ``detect`` alone (image decoding excluded), after one warm-up
image; each detector's median is also given as a ratio to ``--baseline``'s (default ``haar``,
always run), beside its AP on the same images (one untimed pass scored as the evaluate stage
scores, with the configuration's ``evaluation``; none for a face-free manifest).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from pipeline import paths
from pipeline.boxes import Manifest
from pipeline.config import deep_merge, load_config, load_yaml
from pipeline.detection.detectors import build_detector, model_files
from pipeline.io import read_gray
from pipeline.models.cnn import ARCHITECTURES, build_model, resolve_device


def detector_aps(config: dict, manifest_path: Path, models: Path, only: list[str] | None
                 ) -> dict[str, float | None]:
    """AP of each detector on the manifest's images (one untimed pass, as the detect and
    evaluate stages run and score it: the configuration's ``evaluation``); empty for a
    manifest without faces."""
    from pipeline.detection.detectors import detect_manifest
    from pipeline.evaluation.metrics import evaluate_as_configured

    truth = Manifest.load(manifest_path)
    if not any(r.boxes for r in truth.images):
        return {}
    evaluation = config["evaluation"]
    aps = {}
    for name, settings in config["detectors"].items():
        model_paths = model_files(settings, str(models))
        if (only and name not in only) or not all(Path(p).exists() for p in model_paths):
            continue
        found, _, _ = detect_manifest(settings, truth, name, model_paths)
        aps[name] = evaluate_as_configured(truth, found, evaluation,
                                           settings.get("min_size"))["average_precision"]
    return aps


def detection_speed(config: dict, manifest_path: Path, models: Path, threads: int,
                    only: list[str] | None = None, baseline: str = "haar",
                    aps: dict[str, float | None] | None = None) -> None:
    """Median and mean ms per image of each detector at ``threads``, the median's ratio to the
    ``baseline`` detector's (run first), and each detector's AP on the same images."""
    cv2.setNumThreads(threads)
    torch.set_num_threads(threads)
    manifest = Manifest.load(manifest_path)
    images = [read_gray(manifest.image_path(r)) for r in manifest.images]
    shape = np.median([i.shape for i in images], axis=0).astype(int)
    print(f"\ndetection, {len(images)} images of about {shape[1]}x{shape[0]}, {threads} "
          f"thread(s); ratio: median ms over {baseline}'s:")
    names = [n for n in config["detectors"] if not only or n in only]
    names.sort(key=lambda n: n != baseline)  # the baseline first, for the ratios
    medians: dict[str, float] = {}
    for name in names:
        settings = config["detectors"][name]
        model_paths = model_files(settings, str(models))
        if not all(Path(p).exists() for p in model_paths):
            print(f"  {name:12s} skipped: train its models first ({', '.join(model_paths)})")
            continue
        detector = build_detector(settings, model_paths)
        detector.detect(images[0])
        times = []
        for image in images:
            start = time.perf_counter()
            detector.detect(image)
            times.append(time.perf_counter() - start)
        medians[name] = float(np.median(times))
        min_size = f"{settings['min_size']:3d} px" if "min_size" in settings else "own   "
        ratio = (f"{medians[name] / medians[baseline]:5.2f}x" if baseline in medians
                 else "   - ")
        ap = (aps or {}).get(name)
        ap_text = "   -  " if ap is None else f"{ap:6.3f}"
        print(f"  {name:12s} min face {min_size}: "
              f"{1000 * medians[name]:7.1f} ms per image (median), "
              f"{1000 * np.mean(times):7.1f} ms mean, ratio {ratio}, AP {ap_text}, "
              f"{_live_threads():2d} threads alive")


def _live_threads() -> int:
    """Threads of this process now (Linux), pools of OpenCV, torch and OpenMP included."""
    task = Path("/proc/self/task")
    return len(list(task.iterdir())) if task.is_dir() else -1


def training_throughput(batch: int = 128, steps: int = 30) -> None:
    """Training patches/s of every architecture with box regression, with the trainer's loss
    (:func:`pipeline.training.cnn_loss.batch_loss`), in the default and the channels-last weight
    layout (the trainer's)."""
    from pipeline.training.cnn_loss import PART_FACE, batch_loss

    device = resolve_device("auto")
    settings = {"box_regression": {"faces_per_face": 2, "weight": 0.5}, "aux_weight": 0.3}
    print(f"\ntraining throughput on {device}, batch {batch}, box regression, "
          f"{torch.get_num_threads()} threads (default layout / channels-last):")
    for name in sorted(ARCHITECTURES):
        rates = []
        for layout in (torch.contiguous_format, torch.channels_last):
            torch.manual_seed(0)
            model = build_model(name, 16 if name == "proposal" else 32, box_regression=True)
            model = model.to(device, memory_format=layout).train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            x = torch.rand(batch, 1, model.window, model.window, device=device) * 255
            y = torch.tensor([1.0, PART_FACE, 0.0, 0.0], device=device).repeat(batch // 4 + 1)
            y, targets = y[:batch], torch.rand(batch, 4, device=device) - 0.5
            for step in range(steps + 3):
                if step == 3:  # after warm-up
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                outputs, aux = model.logits_with_aux(x)
                loss = batch_loss(outputs, aux, y, targets, settings)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            rates.append(steps * batch / (time.perf_counter() - start))
        print(f"  {name:10s} {rates[0]:9.0f} / {rates[1]:9.0f} patches/s")


def boosting_round(samples: int = 10_000, features: int = 6_000, rounds: int = 5) -> None:
    """Seconds per best-stump search over all features and thresholds (one boosting round)."""
    from pipeline.training.boosting import SortedFeatures, best_stump, initial_weights

    rng = np.random.default_rng(0)
    values = rng.normal(size=(features, samples)).astype(np.float32)
    labels = (rng.random(samples) < 0.5).astype(int)
    weights = initial_weights(labels)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"\nboosting, {samples} windows x {features} features:")
    for device in devices:
        start = time.perf_counter()
        sorted_features = SortedFeatures.build(values, device)
        sort_seconds = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(rounds):
            best_stump(sorted_features, labels, weights)
        print(f"  {device:4s} sort once {sort_seconds:6.2f} s, "
              f"{(time.perf_counter() - start) / rounds:6.3f} s per round")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/default.yaml")
    parser.add_argument("--configfile", nargs="+", default=[],
                        help="files merged on top of --config, as snakemake --configfile does")
    images = parser.add_mutually_exclusive_group()
    images.add_argument("--dataset", help="a built test set: its variant images "
                        "results/variants/<dataset>/<variant>/ (default: embedded)")
    images.add_argument("--manifest", help="any manifest JSON of images")
    parser.add_argument("--variant", default="original", help="with --dataset")
    parser.add_argument("--models", default="results/models/seed0",
                        help="trained models of one seed (default results/models/seed0)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--detectors", nargs="+", help="detector names (default: all)")
    parser.add_argument("--baseline", default="haar",
                        help="the detector the ratios divide by (default haar)")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    config = load_config(args.config)
    for path in args.configfile:
        config = deep_merge(config, load_yaml(path))
    if args.manifest and args.variant != "original":
        parser.error("--variant picks a variant of --dataset; a --manifest names its images")
    manifest = Path(args.manifest or
                    paths.variant_manifest(args.dataset or "embedded", args.variant))
    if not manifest.is_file():
        parser.error(f"{manifest}: no such manifest; build it first (snakemake {manifest})")
    only = args.detectors and sorted({*args.detectors, args.baseline})
    aps = detector_aps(config, manifest, Path(args.models), only)
    for threads in args.threads:
        detection_speed(config, manifest, Path(args.models), threads, only, args.baseline, aps)
    if not args.skip_training:
        training_throughput()
        boosting_round()


if __name__ == "__main__":
    main()

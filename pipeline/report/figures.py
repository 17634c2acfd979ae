"""The comparison figures, drawn from ``summary.json``, ``statistics.json`` and the files
the figures rule lists (``settings["inputs"]``, see :func:`make_figures`).

Settings (built by the Snakefile from the config): ``detectors``, ``datasets``,
``main_variants``, ``sweep`` (``{"strengths": [...], "names": [...]}``), ``models``,
``example_images`` and ``fp_for_summary``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.boxes import Manifest  # noqa: E402
from pipeline.evaluation.contracts import read_checked  # noqa: E402
from pipeline.evaluation.metrics import curve_from_metrics  # noqa: E402
from pipeline.io import read_gray  # noqa: E402
from pipeline.report.figures_common import COLOURS, grid, number, save  # noqa: E402
from pipeline.report.seed_spread import plot_seed_spread  # noqa: E402

LOG = logging.getLogger(__name__)

FIGURES = ["pr_curves.png", "detection_rate_vs_fp.png", "ap_by_variant.png", "ap_by_seed.png",
           "ap_vs_shadow_strength.png", "ap_vs_light_angle.png", "examples.png",
           "training_curves.png", "learned_vs_haar.png"]


def _runs_by_key(summary: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Runs by (detector, dataset, variant); undefined (null) AP and rates become NaN, which
    matplotlib leaves out."""
    runs = {}
    for r in summary["runs"]:
        r = dict(r, average_precision=number(r["average_precision"]),
                 detection_rate_at_fp={k: number(v) for k, v in r["detection_rate_at_fp"].items()})
        runs[(r["detector"], r["dataset"], r["variant"])] = r
    return runs


def plot_curves(settings: dict[str, Any], runs: dict, out: Path, kind: str) -> None:
    """PR curves (``kind='pr'``) or detection rate vs false positives (``'fp'``) per variant."""
    datasets, variants = settings["datasets"], settings["main_variants"]
    figure, axes = grid(len(datasets), len(variants))
    for i, dataset in enumerate(datasets):
        for j, variant in enumerate(variants):
            axis = axes[i, j]
            if not any((d, dataset, variant) in runs for d in settings["detectors"]):
                axis.set_axis_off()
                axis.set_title(f"{dataset} / {variant}: not run", color="grey")
                continue
            for k, detector in enumerate(settings["detectors"]):
                run = runs.get((detector, dataset, variant))
                if run is None:
                    continue
                curve = curve_from_metrics(run)
                colour = COLOURS[k % len(COLOURS)]
                if kind == "pr":
                    axis.plot(np.r_[0, curve.recall], np.r_[1, curve.precision], color=colour,
                              drawstyle="steps-post",
                              label=f"{detector} (AP {run['average_precision']:.3f}"
                              + (f"; curve of seed {run['curve_seed']})"
                                 if run.get("n_seeds", 1) > 1 else ")"))
                else:
                    axis.plot(np.r_[0, curve.false_positives], np.r_[0, curve.recall],
                              color=colour, drawstyle="steps-post", label=detector)
            if kind == "pr":
                axis.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
            else:
                axis.set(xlabel="false positives (whole variant)", ylabel="detection rate",
                         ylim=(0, 1.02), xscale="symlog")
            axis.set_title(f"{dataset} / {variant}")
            axis.grid(alpha=0.3)
            axis.legend(loc="lower left" if kind == "pr" else "lower right", fontsize=8)
    save(figure, out)


def _intervals(statistics: dict[str, Any], metric: str
               ) -> dict[tuple[str, str, str], dict[str, float]]:
    return {(r["detector"], r["dataset"], r["variant"]): r[metric]
            for r in statistics["runs"] if r[metric] and r[metric]["low"] is not None}


def _error_bars(estimates: list[float], bounds: list[dict[str, float] | None]) -> np.ndarray:
    """Asymmetric error bars (2, N) from interval dicts; zero where there is no interval."""
    low = [e - b["low"] if b else 0.0 for e, b in zip(estimates, bounds, strict=True)]
    high = [b["high"] - e if b else 0.0 for e, b in zip(estimates, bounds, strict=True)]
    return np.nan_to_num(np.array([low, high]))


def plot_ap_by_variant(settings: dict[str, Any], runs: dict, statistics: dict[str, Any],
                       out: Path) -> None:
    """Grouped bars of AP with bootstrap confidence intervals."""
    datasets, variants, detectors = (settings["datasets"], settings["main_variants"],
                                     settings["detectors"])
    intervals = _intervals(statistics, "average_precision")
    figure, axes = grid(1, len(datasets), width=5.0)
    width = 0.8 / max(len(detectors), 1)
    for i, dataset in enumerate(datasets):
        axis = axes[0, i]
        for k, detector in enumerate(detectors):
            values = [runs.get((detector, dataset, v), {}).get("average_precision", np.nan)
                      for v in variants]
            bounds = [intervals.get((detector, dataset, v)) for v in variants]
            positions = np.arange(len(variants)) + (k - (len(detectors) - 1) / 2) * width
            bars = axis.bar(positions, values, width, label=detector,
                            color=COLOURS[k % len(COLOURS)],
                            yerr=_error_bars(values, bounds), capsize=3)
            axis.bar_label(bars, fmt="%.2f", fontsize=7)
        axis.set_xticks(np.arange(len(variants)), variants)
        axis.set(ylabel="average precision", ylim=(0, 1.05), title=dataset)
        axis.legend(fontsize=8)
    save(figure, out)


def plot_shadow_sweep(settings: dict[str, Any], runs: dict, statistics: dict[str, Any],
                      out: Path) -> None:
    """AP and detection rate against shadow strength, with bootstrap confidence bands."""
    sweep, fp = settings["sweep"], str(settings["fp_for_summary"])
    datasets = settings["datasets"]
    bands = {"average_precision": _intervals(statistics, "average_precision"),
             "detection_rate": _intervals(statistics, "detection_rate")}
    figure, axes = grid(len(datasets), 2)
    for i, dataset in enumerate(datasets):
        for k, detector in enumerate(settings["detectors"]):
            found = [runs.get((detector, dataset, n)) for n in sweep["names"]]
            strengths = [s for s, r in zip(sweep["strengths"], found, strict=True) if r]
            ap = [r["average_precision"] for r in found if r]
            rate = [r["detection_rate_at_fp"].get(fp, np.nan) for r in found if r]
            colour = COLOURS[k % len(COLOURS)]
            axes[i, 0].plot(strengths, ap, "o-", color=colour, label=detector)
            axes[i, 1].plot(strengths, rate, "o-", color=colour, label=detector)
            names = [n for n, r in zip(sweep["names"], found, strict=True) if r]
            for column, metric in enumerate(bands):
                band = [bands[metric].get((detector, dataset, n)) for n in names]
                if all(band):
                    axes[i, column].fill_between(strengths, [b["low"] for b in band],
                                                 [b["high"] for b in band], color=colour,
                                                 alpha=0.15, lw=0)
        axes[i, 0].set(xlabel="shadow strength", ylabel="average precision", ylim=(0, 1.05),
                       title=f"{dataset}: AP vs shadow strength")
        axes[i, 1].set(xlabel="shadow strength", ylabel=f"detection rate at {fp} FP",
                       ylim=(0, 1.05), title=f"{dataset}: detection rate at {fp} FP")
        for axis in axes[i]:
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
    save(figure, out)


def plot_light_angle(settings: dict[str, Any], statistics: dict[str, Any], out: Path) -> None:
    """Per grouped test set (e.g. Yale B light-angle bins, in order): AP and detection rate
    of every detector per group, with bootstrap interval bands."""
    runs = statistics.get("groups", {}).get("runs", [])
    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    fp = settings["fp_for_summary"]
    figure, axes = grid(max(len(datasets), 1), 2, width=5.0)
    if not datasets:
        for axis in axes[0]:
            axis.text(0.5, 0.5, "no grouped test set (such as Yale B light-angle bins)\nin "
                      "this configuration", ha="center", va="center", transform=axis.transAxes)
            axis.set_axis_off()
    for i, dataset in enumerate(datasets):
        rows = [r for r in runs if r["dataset"] == dataset]
        groups = list(dict.fromkeys(r["group"] for r in rows))
        where = np.arange(len(groups))
        for k, detector in enumerate(dict.fromkeys(r["detector"] for r in rows)):
            colour = COLOURS[k % len(COLOURS)]
            by_group = {r["group"]: r for r in rows if r["detector"] == detector}
            for column, metric in enumerate(("average_precision", "detection_rate")):
                entries = [by_group[g][metric] for g in groups]
                axes[i, column].plot(where, [number(e["estimate"]) for e in entries], "o-",
                                     color=colour, label=detector)
                axes[i, column].fill_between(where, [number(e["low"]) for e in entries],
                                             [number(e["high"]) for e in entries],
                                             color=colour, alpha=0.15, lw=0)
        for column, label in enumerate(("average precision", f"detection rate at {fp} FP")):
            axes[i, column].set(xticks=where, xlabel="angle between light and camera axis",
                                ylabel=label, ylim=(0, 1.05), title=f"{dataset}: {label}")
            axes[i, column].set_xticklabels(groups)
            axes[i, column].grid(alpha=0.3)
            axes[i, column].legend(fontsize=8)
    save(figure, out)


def operating_threshold(run: dict[str, Any], false_positives: int) -> float:
    """The lowest score threshold at which the run has at most ``false_positives`` FPs."""
    curve = curve_from_metrics(run)
    allowed = curve.false_positives <= false_positives
    return float(curve.thresholds[allowed].min()) if allowed.any() else float("inf")


def plot_examples(settings: dict[str, Any], runs: dict, out: Path) -> None:
    """Test images in each variant with ground truth and each detector's boxes."""
    dataset, variants = settings["datasets"][0], settings["example_variants"]
    inputs = settings["inputs"]
    manifests = {v: Manifest.load(inputs["variants"][v]) for v in variants}
    first = manifests[variants[0]]
    by_faces = sorted(range(len(first.images)), key=lambda k: (-len(first.images[k].boxes), k))
    chosen = sorted(by_faces[: settings["example_images"]])
    detections = {(detector, v): Manifest.load(path)
                  for detector, files in inputs["detections"].items() for v, path in files.items()}
    figure, axes = grid(len(chosen), len(variants), width=3.6, height=2.9)
    fp = settings["fp_for_summary"]
    for j, variant in enumerate(variants):
        for i, index in enumerate(chosen):
            record = manifests[variant].images[index]
            axis = axes[i, j]
            axis.imshow(read_gray(manifests[variant].image_path(record)), cmap="gray",
                        vmin=0, vmax=255)
            for box in record.boxes:
                axis.add_patch(plt.Rectangle((box.x, box.y), box.w, box.h, fill=False,
                                             color="lime", lw=1.5, ls="--"))
            for k, detector in enumerate(settings["detectors"]):
                found = detections.get((detector, variant))
                run = runs.get((detector, dataset, variant))
                if found is None or run is None:
                    continue
                threshold = operating_threshold(run, fp)
                for box in found.images[index].boxes:
                    if box.score >= threshold:
                        axis.add_patch(plt.Rectangle((box.x, box.y), box.w, box.h, fill=False,
                                                     color=COLOURS[k % len(COLOURS)], lw=1.3))
            axis.set_xticks([])
            axis.set_yticks([])
            if i == 0:
                axis.set_title(variant)
    handles = [plt.Line2D([], [], color="lime", ls="--", label="ground truth")] + [
        plt.Line2D([], [], color=COLOURS[k % len(COLOURS)], label=d)
        for k, d in enumerate(settings["detectors"])]
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles))
    save(figure, out)


def plot_training(settings: dict[str, Any], out: Path) -> None:
    from pipeline.models.cnn import load_checkpoint

    models = settings["models"]
    figure, axes = grid(1, max(len(models), 1), width=5.0)
    for i, name in enumerate(models):
        _, checkpoint = load_checkpoint(settings["inputs"]["models"][name])
        history = checkpoint["history"]
        steps = np.arange(1, len(history) + 1)
        axis = axes[0, i]
        axis.plot(steps, [h["train_loss"] for h in history], "o-", label="train loss")
        axis.plot(steps, [h["val_loss"] for h in history], "s-", label="validation loss")
        for boundary in [k + 0.5 for k in range(1, len(history))
                         if history[k]["round"] != history[k - 1]["round"]]:
            axis.axvline(boundary, color="grey", ls=":", lw=1)
        axis.set(xlabel="epoch (dotted: new hard-negative round)", ylabel="BCE loss",
                 yscale="log", title=f"model {name}")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    save(figure, out)


def _mosaic(tiles: np.ndarray, columns: int) -> np.ndarray:
    """(N, h, w) tiles laid out in a grid with one-pixel gaps (NaN), row by row."""
    n, h, w = tiles.shape
    rows = int(np.ceil(n / columns))
    grid = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), np.nan)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        grid[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = tile
    return grid


def example_faces(settings: dict[str, Any], size: int) -> dict[str, np.ndarray]:
    """The largest ground-truth face of the example dataset, cut from each example variant
    (same image, same box) and resized to (size, size)."""
    import cv2

    faces = {}
    where = None
    for variant in settings["example_variants"]:
        manifest = Manifest.load(settings["inputs"]["variants"][variant])
        if where is None:
            where = max(((i, k) for i, r in enumerate(manifest.images)
                         for k in range(len(r.boxes))),
                        key=lambda ik: manifest.images[ik[0]].boxes[ik[1]].area)
        record = manifest.images[where[0]]
        box = record.boxes[where[1]]
        image = read_gray(manifest.image_path(record))
        crop = image[int(box.y):int(box.y + box.h), int(box.x):int(box.x + box.w)]
        faces[variant] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return faces


def first_layer(model: Any, face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First convolution's kernels (C, k, k) and its feature maps after batch norm and ReLU
    (C, H, W) for one face patch."""
    import torch

    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    relu = next(m for m in model.modules() if isinstance(m, torch.nn.ReLU))
    captured = {}
    handle = relu.register_forward_hook(lambda m, i, o: captured.setdefault("maps", o.clone()))
    with torch.no_grad():
        model(torch.from_numpy(face).float()[None, None])
    handle.remove()
    return conv.weight[:, 0].detach().numpy(), captured["maps"][0].numpy()


def plot_learned(settings: dict[str, Any], out: Path) -> None:
    """Per CNN: first-layer filters and the feature maps of one face in each variant; for the
    Haar cascade: the features of its first stage and the first one's response per variant."""
    from pipeline.detection.detectors.haar import cascade_path
    from pipeline.models.cascade import stage_features
    from pipeline.models.cnn import load_checkpoint
    from pipeline.models.haar_features import feature_values

    variants = settings["example_variants"]
    cascades = settings.get("haar_cascades", {})
    rows = len(settings["models"]) + len(cascades)
    figure, axes = grid(max(rows, 1), 1 + len(variants), width=3.4, height=3.2)
    for i, name in enumerate(settings["models"]):
        model, _ = load_checkpoint(settings["inputs"]["models"][name])
        faces = example_faces(settings, model.window)
        kernels, _ = first_layer(model, faces[variants[0]])
        limit = np.abs(kernels).max()
        axes[i, 0].imshow(_mosaic(kernels, 8), cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[i, 0].set_title(f"{name}: first-layer filters", fontsize=9)
        for j, variant in enumerate(variants, start=1):
            _, maps = first_layer(model, faces[variant])
            axes[i, j].imshow(_mosaic(maps[:8], 4), cmap="magma")
            axes[i, j].set_title(f"{name}: feature maps, {variant}", fontsize=9)
    for i, (detector, cascade) in enumerate(cascades.items(), start=len(settings["models"])):
        (width, height), features = stage_features(cascade_path(cascade))
        faces = example_faces(settings, width)
        panel = np.full((len(features), height, width), 0.5)
        for k, feature in enumerate(features):
            for x, y, w, h, weight in feature[feature[:, 4] != 0]:
                panel[k, int(y):int(y + h), int(x):int(x + w)] = 1.0 if weight > 0 else 0.0
        axes[i, 0].imshow(_mosaic(panel, 3), cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_title(f"{detector}: stage-1 Haar features\n(white +, black -)",
                             fontsize=9)
        for j, variant in enumerate(variants, start=1):
            axes[i, j].imshow(faces[variant], cmap="gray", vmin=0, vmax=255)
            for x, y, w, h, weight in features[0][features[0][:, 4] != 0]:
                axes[i, j].add_patch(plt.Rectangle((x - 0.5, y - 0.5), w, h, fill=False,
                                                   color="white" if weight > 0 else "black",
                                                   lw=1.5))
            value = feature_values(faces[variant][None], features[:1])[0, 0]
            axes[i, j].set_title(f"{detector}: feature 1 = {value:+.3g}, {variant}", fontsize=9)
    for axis in axes.ravel():
        axis.set_xticks([])
        axis.set_yticks([])
    save(figure, out)


def make_figures(settings: dict[str, Any], summary_path: str | Path,
                 statistics_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Every figure of FIGURES into ``out_dir``. Besides the tables, ``settings["inputs"]``
    names the files drawn: ``variants`` {variant: manifest} of the example dataset,
    ``detections`` {detector: {variant: detections}} on it, and ``models`` {name: checkpoint};
    ``haar_cascades`` {detector: cascade XML or bundled cascade name}."""
    out_dir = Path(out_dir)
    runs = _runs_by_key(read_checked("summary", summary_path))
    statistics = read_checked("statistics", statistics_path)
    plot_curves(settings, runs, out_dir / "pr_curves.png", "pr")
    plot_curves(settings, runs, out_dir / "detection_rate_vs_fp.png", "fp")
    plot_ap_by_variant(settings, runs, statistics, out_dir / "ap_by_variant.png")
    plot_seed_spread(settings, statistics, out_dir / "ap_by_seed.png")
    plot_shadow_sweep(settings, runs, statistics, out_dir / "ap_vs_shadow_strength.png")
    plot_light_angle(settings, statistics, out_dir / "ap_vs_light_angle.png")
    plot_examples(settings, runs, out_dir / "examples.png")
    plot_training(settings, out_dir / "training_curves.png")
    plot_learned(settings, out_dir / "learned_vs_haar.png")
    LOG.info("figures written to %s", out_dir)
    return [out_dir / name for name in FIGURES]

r"""Are a detector's scores comparable across pyramid levels? (prints measured numbers; not a
test).

Reads a workflow run's detections of one detector on one test set and matches them as the
evaluate stage does. Each detection is put in a size band: its box side (sqrt(w h), pixels)
as a number of pyramid steps above the smallest face searched, ``band_steps`` steps a band.
Per band it prints the detections, true positives and precision above score 0.5. Then the
test: a per-band recalibration of the scores (logistic regression of "true positive" on the
score's logit, or on the score itself where it is no probability, with an intercept and a
slope per band; scikit-learn), fitted on half of the
images and applied to the other half, both ways round. If scores mean the same at every
level, recalibrated scores rank detections no better than the raw ones: the two APs agree.

    python benchmarks/level_scores.py --configfile config/research.yaml \
        --data-root /path/to/data --dataset mitcmu --detector cnn
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from pipeline import paths
from pipeline.boxes import Manifest
from pipeline.config import ConfigError, load_config
from pipeline.detection.detectors import draws
from pipeline.evaluation.metrics import (
    Criterion,
    average_precision,
    face_sizes,
    match_detections,
    pr_curve,
)


def matched_detections(truth: Manifest, detections: Manifest, criterion: Criterion,
                       min_face_size: float | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Every scored detection's score, true-positive flag, size (pixels) and image index (K,)
    each, and the number of scored faces, matched as the evaluate stage matches them
    (:func:`pipeline.evaluation.metrics.match_detections`; faces below ``min_face_size`` not
    scored)."""
    found = {r.file: r.boxes for r in detections.images}
    missing = [r.file for r in truth.images if r.file not in found]
    if missing:
        raise ValueError(f"detections lack {len(missing)} test images, e.g. {missing[0]!r}")
    scores, hits, sizes, images, n_faces = [], [], [], [], 0
    for index, record in enumerate(truth.images):
        ignored = face_sizes(record.boxes) < (min_face_size or 0)
        boxes = found[record.file]
        order, hit, kept = match_detections(record.boxes, boxes, criterion,
                                            record.attributes.get("landmarks"), ignored)
        ranked = [boxes[k] for k in order[kept]]
        scores.append(np.array([b.score for b in ranked], dtype=np.float64))
        hits.append(hit[kept])
        sizes.append(np.array([np.sqrt(b.w * b.h) for b in ranked]))
        images.append(np.full(len(ranked), index))
        n_faces += int((~ignored).sum())
    return (np.concatenate(scores), np.concatenate(hits), np.concatenate(sizes),
            np.concatenate(images), n_faces)


def size_bands(sizes: np.ndarray, min_size: float, scale_factor: float,
               band_steps: int) -> np.ndarray:
    """Band index of each size: pyramid steps above ``min_size``, ``band_steps`` a band."""
    steps = np.log(np.maximum(sizes, 1e-9) / min_size) / np.log(scale_factor)
    return np.maximum(np.floor(steps / band_steps), 0).astype(int)


def score_feature(scores: np.ndarray) -> np.ndarray:
    """The logit of scores that are probabilities (all in [0, 1]); other scores (Haar's level
    weights) as they are."""
    if scores.size and (scores.min() < 0 or scores.max() > 1):
        return scores
    clipped = np.clip(scores, 1e-12, 1 - 1e-12)
    return np.log(clipped / (1 - clipped))


def band_features(scores: np.ndarray, bands: np.ndarray, n_bands: int) -> np.ndarray:
    """The score feature (:func:`score_feature`), and per band an indicator and the feature
    inside that band."""
    feature = score_feature(scores)
    onehot = np.eye(n_bands)[bands]
    return np.c_[feature, onehot, onehot * feature[:, None]]


def recalibrated_scores(scores: np.ndarray, hits: np.ndarray, bands: np.ndarray,
                        images: np.ndarray) -> np.ndarray:
    """Scores recalibrated per band, two-fold by image (even / odd image index)."""
    n_bands = int(bands.max()) + 1
    features = band_features(scores, bands, n_bands)
    out = np.empty_like(scores)
    for fold in (0, 1):
        test = images % 2 == fold
        if len(np.unique(hits[~test])) < 2:
            raise ValueError("one fold has only true or only false positives: too few "
                             "detections to recalibrate")
        model = LogisticRegression(C=1.0, max_iter=1000).fit(features[~test], hits[~test])
        out[test] = model.predict_proba(features[test])[:, 1]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", default="config/default.yaml")
    parser.add_argument("--data-root")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--variant", default="original")
    parser.add_argument("--detector", required=True)
    parser.add_argument("--band-steps", type=int, default=3,
                        help="pyramid steps per size band (default 3)")
    args = parser.parse_args()
    try:
        config = load_config(args.configfile, args.data_root)
        if args.detector not in config["detectors"]:
            raise ValueError(f"no detector {args.detector!r} in the configuration")
        if args.dataset not in config["datasets"]:
            raise ValueError(f"no dataset {args.dataset!r} in the configuration")
        if config["datasets"][args.dataset].get("calibration"):
            raise ValueError(f"{args.dataset} is box-calibrated: use a set without calibration")
        settings = config["detectors"][args.detector]
        truth_path = Path(paths.variant_manifest(args.dataset, args.variant))
        draw = draws(settings, config["seeds"])[0]  # the first training seed's run
        found_path = Path(paths.detections(args.detector, draw, args.dataset, args.variant))
        for path in (truth_path, found_path):
            if not path.is_file():
                raise ValueError(f"{path}: missing; run the workflow for it first "
                                 f"(snakemake {path})")
        scores, hits, sizes, images, n_faces = matched_detections(
            Manifest.load(truth_path), Manifest.load(found_path),
            Criterion.from_settings(config["evaluation"]),
            config["evaluation"].get("min_face_size"))
        bands = size_bands(sizes, settings["min_size"], settings.get("scale_factor", 1.2),
                           args.band_steps)
    except (ValueError, ConfigError) as error:
        sys.exit(f"level_scores: {error}")
    try:
        calibrated, why_not = recalibrated_scores(scores, hits, bands, images), ""
    except ValueError as error:
        calibrated, why_not = None, str(error)
    factor = settings.get("scale_factor", 1.2)
    print(f"\n{args.detector} on {args.dataset}/{args.variant}: {len(scores)} detections, "
          f"{n_faces} faces; bands of {args.band_steps} pyramid steps (x{factor}) from "
          f"{settings['min_size']} px")
    print("band (px) | detections | true positives | precision at score >= 0.5 | "
          "mean score TP / FP")
    for band in np.unique(bands):
        inside = bands == band
        low = settings["min_size"] * factor ** (band * args.band_steps)
        high = low * factor ** args.band_steps
        sure = inside & (scores >= 0.5)
        precision = hits[sure].mean() if sure.any() else float("nan")
        tp_mean = scores[inside & hits].mean() if (inside & hits).any() else float("nan")
        fp_mean = scores[inside & ~hits].mean() if (inside & ~hits).any() else float("nan")
        print(f"{low:5.0f}-{high:5.0f} | {inside.sum():5d} | {hits[inside].sum():4d} | "
              f"{precision:.3f} | {tp_mean:.3f} / {fp_mean:.3f}")
    raw = average_precision(pr_curve(scores, hits, n_faces))
    if calibrated is None:
        print(f"AP with the raw scores {raw:.3f}; not recalibrated: {why_not}")
        return
    recal = average_precision(pr_curve(calibrated, hits, n_faces))
    print(f"AP with the raw scores {raw:.3f}; recalibrated per band (two-fold by image) "
          f"{recal:.3f}; difference {recal - raw:+.3f}")


if __name__ == "__main__":
    main()

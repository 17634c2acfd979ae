"""Training a Viola-Jones attentional cascade of boosted Haar stumps, saved as OpenCV XML.

Positives are the CNN's training faces with the same augmentation and draws
(:func:`cascade_positives`); stage 0's negatives are random windows of the face-free scenes
(and the dataset's face-free patches); every later
stage's negatives are bootstrapped: windows of the face-free scenes that the cascade trained so
far still accepts. Each stage boosts stumps until, with its threshold lowered to keep
``stage_detection_rate`` of the positives, it passes at most ``stage_false_positive_rate`` of
its negatives; stages are added until the product of the stage false positive rates reaches
``target_false_positive_rate``, ``max_stages`` is reached, or the scenes run out of windows
that the cascade accepts.

Speed without changing the result: the positives' feature values are computed and sorted once
(a stage takes the columns of the positives still passing and merges their order with its
sorted negatives', :meth:`SortedFeatures.merged`), and mining remembers, per scene, the windows
the cascade accepted when it last scanned it (:class:`SceneWindows`, within
:data:`REMEMBERED_BYTES`): a cascade only grows, and OpenCV decides which windows it visits from
the first stage alone, so the windows a longer cascade accepts are exactly those remembered that
pass the stages added since, which OpenCV tests on them alone (:func:`opencv_passes`).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.boxes import overlap_matrix
from pipeline.io import progress, read_json, write_json
from pipeline.models.cascade import Cascade, Stage, Stump, stage_sums, stage_threshold
from pipeline.models.haar_features import enumerate_features, feature_values, variance_norm
from pipeline.training.boosting import (
    SortedFeatures,
    best_stump,
    initial_weights,
    reweight,
    stable_order,
    stump_weight,
)
from pipeline.training.resume import load_resume_state, resume_key, resume_path
from pipeline.training.samples import (
    MAX_FACE_OVERLAP,
    Scene,
    cascade_positives,
    load_training_data,
    random_windows,
    resize_patches,
    scan_scenes,
)

LOG = logging.getLogger(__name__)

# Memory for the accepted windows remembered over all scenes of one training (24x24: 466,000)
REMEMBERED_BYTES = 256 * 2**20
# Patches stacked in one image for :func:`opencv_passes` (under OpenCV's 32,767-row limits).
STACKED_PATCHES = 1200


@dataclass
class SceneWindows:
    """The windows of one scene that a cascade of its first ``depth`` stages accepts, as
    :func:`mine_negatives` scans them (OpenCV, away from faces, sorted): rects (K, 4) in scene
    pixels and their window-sized patches (K, h, w) uint8 rebuilt from their pyramid levels."""

    depth: int
    rects: np.ndarray
    patches: np.ndarray


def candidate_features(settings: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """The features boosting chooses from: the grid of ``position_step`` / ``size_step``, then
    a random ``max_features`` of them (0: all), (F, 3, 5)."""
    features = enumerate_features(settings["window"], settings["position_step"],
                                  settings["size_step"])
    limit = settings["max_features"]
    if 0 < limit < len(features):
        features = features[np.sort(rng.choice(len(features), limit, replace=False))]
    return features


def classifiable(patches: np.ndarray) -> np.ndarray:
    """The patches OpenCV classifies at all (std above 10 grey levels)."""
    return patches[variance_norm(patches)[1]]


def opencv_pyramid_scales(window: tuple[int, int], image_size: tuple[int, int], scale_factor: float
                   ) -> dict[int, float]:
    """OpenCV's detectMultiScale pyramid for an image (width, height): detected window width ->
    the float32 scale of the level it came from (factor 1, x scale_factor, ...). Python's
    round() rounds half to even, as OpenCV's cvRound does."""
    scales: dict[int, float] = {}
    factor = 1.0
    while round(window[0] * factor) <= image_size[0] and round(window[1] * factor) <= image_size[1]:
        scale = float(np.float32(factor))
        scales.setdefault(round(window[0] * scale), scale)
        factor *= scale_factor
    return scales


def opencv_windows(image: np.ndarray, rects: np.ndarray, window: tuple[int, int],
                   scale_factor: float) -> np.ndarray:
    """The window-sized patches (M, h, w) that OpenCV classified to report ``rects`` (N, 4):
    each rect's pyramid level rebuilt as OpenCV builds it (INTER_LINEAR_EXACT resize).

    OpenCV clips reported rects to the image, so a rect's level is found from its longer side;
    rects that match no level (clipped on both sides) are left out.
    """
    height, width = image.shape
    scales = opencv_pyramid_scales(window, (width, height), scale_factor)
    levels: dict[float, np.ndarray] = {}
    out = []
    for x, y, w, h in rects.astype(int):
        scale = scales.get(max(w, h))
        if scale is None:
            continue
        if scale not in levels:
            size = (round(width / scale), round(height / scale))
            levels[scale] = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR_EXACT)
        left, top = round(x / scale), round(y / scale)
        patch = levels[scale][top:top + window[1], left:left + window[0]]
        if patch.shape == (window[1], window[0]):
            out.append(patch)
    return np.array(out, np.uint8).reshape(-1, window[1], window[0])


def opencv_classifier(cascade: Cascade) -> cv2.CascadeClassifier:
    """``cv2.CascadeClassifier`` loaded from the cascade's XML."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cascade.xml"
        cascade.write_xml(path)
        return cv2.CascadeClassifier(str(path))


def opencv_passes(cascade: Cascade, patches: np.ndarray) -> np.ndarray:
    """Whether OpenCV's cascade evaluation accepts each window-sized patch (N, h, w) uint8,
    (N,) bool. The patches are stacked in a one-window-wide column and scanned at scale 1
    (rows every 2 pixels): the window at row k * h is patch k; the others are ignored. A blank
    patch (never classified: no variance) ends the column, as OpenCV's scan stops short of a
    level's last window row."""
    width, height = cascade.window
    classifier = opencv_classifier(cascade)
    accepted = np.zeros(len(patches), bool)
    blank = np.zeros((1, height, width), np.uint8)
    for start in range(0, len(patches), STACKED_PATCHES):
        column = np.concatenate([patches[start:start + STACKED_PATCHES], blank]).reshape(-1, width)
        rects = np.asarray(classifier.detectMultiScale(
            column, scaleFactor=1.1, minNeighbors=0, minSize=(width, height),
            maxSize=(width, height)), dtype=np.int64).reshape(-1, 4)
        rects = rects[(rects[:, 0] == 0) & (rects[:, 1] % height == 0)]
        accepted[start + rects[:, 1] // height] = True
    return accepted


def mine_negatives(cascade: Cascade, scenes: list[Scene], count: int, scale_factor: float,
                   rng: np.random.Generator, min_scenes: int = 0, seed: int = 0,
                   stage: int = 0, remembered: dict[int, SceneWindows] | None = None
                   ) -> tuple[np.ndarray, int, int]:
    """Up to ``count`` random windows of ``scenes`` (away from their faces) that ``cascade``
    accepts, (M, h, w) uint8, how many accepted windows the scanned scenes hold, and how many
    scenes were scanned.

    Scenes are scanned in a random order until at least ``min_scenes`` are scanned and they
    hold ``count`` accepted windows (:func:`pipeline.training.samples.scan_scenes`; 0: every scene).
    OpenCV scans each scene with the cascade (no grouping); the accepted windows are rebuilt
    from their pyramid level and kept when the project's own evaluation accepts them too.

    ``remembered`` (scene index -> :class:`SceneWindows`, updated here), kept across the calls
    of one training (same scenes, same ``scale_factor``, each cascade extending the last):
    a scene remembered at a smaller depth is not rescanned; its windows are tested against the
    stages added since (:func:`opencv_passes`), which gives the same windows as a rescan.
    """
    classifier = opencv_classifier(cascade)
    depth, index_of = len(cascade.stages), {id(scene): i for i, scene in enumerate(scenes)}
    added_stages: dict[int, Cascade] = {}  # depth remembered -> the stages added since

    def accepted_windows(scene: Scene) -> np.ndarray:
        known = None if remembered is None else remembered.get(index_of[id(scene)])
        if known is not None and 0 < known.depth <= depth:
            return remembered_windows(index_of[id(scene)], known)
        rects = np.asarray(classifier.detectMultiScale(
            scene.image, scaleFactor=scale_factor, minNeighbors=0,
            minSize=cascade.window), dtype=float).reshape(-1, 4)
        if len(scene.faces) and len(rects):
            rects = rects[overlap_matrix(rects, scene.faces).max(axis=1) < MAX_FACE_OVERLAP]
        rects = rects[np.lexsort(rects.T[::-1])]  # OpenCV's threads return a varying order
        if remembered is not None:
            remember(index_of[id(scene)], scene, rects)
        return rects

    def remembered_windows(index: int, known: SceneWindows) -> np.ndarray:
        if known.depth < depth:
            if known.depth not in added_stages:
                added_stages[known.depth] = Cascade(cascade.window, cascade.features,
                                                    cascade.stages[known.depth:]).compact()
            keep = opencv_passes(added_stages[known.depth], known.patches)
            remembered[index] = SceneWindows(depth, known.rects[keep], known.patches[keep])
        return remembered[index].rects

    def remember(index: int, scene: Scene, rects: np.ndarray) -> None:
        remembered.pop(index, None)
        held = sum(len(known.rects) for known in remembered.values())
        if held + len(rects) <= REMEMBERED_BYTES // (cascade.window[0] * cascade.window[1]):
            patches = opencv_windows(scene.image, rects, cascade.window, scale_factor)
            if len(patches) == len(rects):  # none clipped away
                remembered[index] = SceneWindows(depth, rects, patches)

    scanned = scan_scenes(scenes, accepted_windows, count, min_scenes, seed, stage)
    found = [np.c_[np.full(len(rects), index), rects].astype(np.int64)
             for index, rects in scanned.items()]
    windows = np.concatenate(found) if found else np.zeros((0, 5), np.int64)
    chosen = windows[np.sort(rng.permutation(len(windows))[:count])]
    patches = np.concatenate([
        opencv_windows(scenes[i].image, chosen[chosen[:, 0] == i, 1:], cascade.window,
                       scale_factor) for i in np.unique(chosen[:, 0])
    ]) if len(chosen) else np.zeros((0, cascade.window[1], cascade.window[0]), np.uint8)
    passed, _ = cascade.evaluate(patches)
    accepted = patches[passed == len(cascade.stages)]
    if len(accepted) < len(patches):
        LOG.warning("%d of %d windows OpenCV accepted are rejected by the own evaluation",
                    len(patches) - len(accepted), len(patches))
    return accepted, len(windows), len(scanned)


def stage_zero_negatives(nonfaces: np.ndarray, scenes: list[Scene], count: int, window: int,
                         rng: np.random.Generator) -> np.ndarray:
    """The dataset's face-free patches resized to the window, topped up with random windows of
    the face-free scenes to ``count``."""
    resized = classifiable(resize_patches(nonfaces, window))[:count]
    extra = random_windows(scenes, 2 * (count - len(resized)), window, window, rng)
    return np.concatenate([resized, classifiable(extra)])[:count]


def stage_rates(scores: np.ndarray, labels: np.ndarray, detection_rate: float
                ) -> tuple[float, float, float]:
    """The highest threshold that keeps ``detection_rate`` of the positives, and the detection
    and false positive rates OpenCV will see with it (it compares with threshold - 1e-5)."""
    positive = np.sort(scores[labels == 1])[::-1]
    keep = max(math.ceil(detection_rate * len(positive) - 1e-9), 1)
    threshold = float(positive[keep - 1])
    passes = scores >= stage_threshold(threshold)
    return threshold, float(passes[labels == 1].mean()), float(passes[labels == 0].mean())


def train_stage(values: np.ndarray, labels: np.ndarray, settings: dict[str, Any],
                device: str, desc: str, sorted_features: SortedFeatures | None = None
                ) -> tuple[Stage, dict[str, float]]:
    """Boost stumps on feature values (F, N) until the stage meets its rate targets
    (``sorted_features``: the values already sorted, else sorted here)."""
    if sorted_features is None:
        sorted_features = SortedFeatures.build(values, device)
    weights = initial_weights(labels)
    scores = np.zeros(len(labels))
    stumps: list[Stump] = []
    bar = progress(total=settings["max_weak_per_stage"], desc=desc, unit="stump")
    for _ in range(settings["max_weak_per_stage"]):
        weak = best_stump(sorted_features, labels, weights)
        alpha = stump_weight(weak.error)
        row = values[weak.feature]
        weights = reweight(weights, labels, weak.predict(row), alpha)
        left, right = (-alpha, alpha) if weak.polarity == 1 else (alpha, -alpha)
        stump = Stump(weak.feature, weak.threshold, float(np.float32(left)),
                      float(np.float32(right)))
        stumps.append(stump)
        scores += stump.leaves(row)
        threshold, detection, false_positive = stage_rates(
            scores, labels, settings["stage_detection_rate"])
        bar.update(1)
        bar.set_postfix(DR=f"{detection:.3f}", FPR=f"{false_positive:.3f}", refresh=False)
        if false_positive <= settings["stage_false_positive_rate"]:
            break
    bar.close()
    if false_positive > settings["stage_false_positive_rate"]:
        LOG.warning("%s: false positive rate %.3f after max_weak_per_stage=%d weak "
                    "classifiers, above the target %.3f", desc, false_positive, len(stumps),
                    settings["stage_false_positive_rate"])
    return Stage(stumps, threshold), {"detection_rate": detection,
                                      "false_positive_rate": false_positive}


def save_state(path: Path, key: str, cascade: Cascade,
               history: list[dict[str, Any]], rng: np.random.Generator) -> None:
    """The stages so far (stumps index the candidate features), their record and the random
    state, so that a killed run continues after its last finished stage."""
    stages = [{"threshold": stage.threshold,
               "stumps": [[s.feature, s.threshold, s.left, s.right] for s in stage.stumps]}
              for stage in cascade.stages]
    write_json(path, {"key": key, "stages": stages, "history": history,
                      "rng": rng.bit_generator.state})


def _read_state(path: Path) -> dict[str, Any]:
    state = read_json(path)
    stages = [Stage([Stump(int(f), t, left, right) for f, t, left, right in stage["stumps"]],
                    stage["threshold"]) for stage in state["stages"]]
    return {**state, "stages": stages}


def train_cascade(settings: dict[str, Any], train_npz: str | Path,
                  backgrounds_json: str | Path, out_path: str | Path, device: str = "cpu",
                  on_stage_end: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Train a cascade as ``settings`` (a ``cascades:`` entry) say; write OpenCV XML.

    Returns one row per stage: weak classifiers, its detection and false positive rate on its
    training windows, the cascade's overall rates so far, negatives used and seconds. After
    every stage the state is saved beside ``out_path``; a killed run resumes there and ends
    with the same cascade. ``on_stage_end(stage)`` is called after each save.
    """
    from pipeline.defaults import with_defaults

    settings = with_defaults(settings, "cascades.*")
    rng = np.random.default_rng(settings["seed"])
    window = settings["window"]
    faces, nonfaces, scenes = load_training_data(train_npz, backgrounds_json)
    candidates = candidate_features(settings, rng)
    pool = cascade_positives(faces, scenes, settings, window)
    positives = classifiable(pool)
    LOG.info("training a %dx%d cascade on %s: %d faces -> %d positives (%d too flat for "
             "OpenCV), %d face-free scenes, %d candidate features, device %s", window, window,
             train_npz, len(faces), len(positives), len(pool) - len(positives), len(scenes),
             len(candidates), device)
    trained = Cascade((window, window), candidates)
    history: list[dict[str, Any]] = []
    key = resume_key(settings, train_npz, backgrounds_json)
    state_file = resume_path(out_path)
    state = load_resume_state(state_file, key, _read_state)
    if state is not None:
        trained.stages, history = state["stages"], state["history"]
        rng.bit_generator.state = state["rng"]
        LOG.info("resuming from %s after stage %d", state_file, len(history) - 1)
    count = settings["negatives_per_stage"]
    passing = trained.compact().evaluate(positives)[0] == len(trained.stages)  # next stage's
    positive_values = feature_values(positives, candidates)  # (F, P), every stage's columns
    positive_order = stable_order(positive_values) if device == "cpu" else None  # sorted once
    remembered: dict[int, SceneWindows] = {}
    while len(trained.stages) < settings["max_stages"]:
        overall_fpr = history[-1]["overall_false_positive_rate"] if history else 1.0
        if overall_fpr <= settings["target_false_positive_rate"]:
            LOG.info("target false positive rate %.2e reached",
                     settings["target_false_positive_rate"])
            break
        index, stage_start = len(trained.stages), time.perf_counter()
        scanned: int | None = None
        if index == 0:
            negatives, available = stage_zero_negatives(nonfaces, scenes, count, window, rng), None
        else:
            negatives, available, scanned = mine_negatives(
                trained.compact(), scenes, count, settings["mining_scale_factor"], rng,
                settings["mining_scenes"], settings["seed"], index, remembered)
        if len(negatives) < settings["min_negatives"]:
            LOG.info("stopping before stage %d: %d scanned scenes hold %d windows the cascade "
                     "accepts (%d usable), fewer than min_negatives=%d", index, scanned or 0,
                     available or 0, len(negatives), settings["min_negatives"])
            break
        stage_positives = positives[passing]
        labels = np.r_[np.ones(len(stage_positives), int), np.zeros(len(negatives), int)]
        values = np.concatenate([positive_values[:, passing],
                                 feature_values(negatives, candidates)], axis=1)
        merged = None if positive_order is None else SortedFeatures.merged(
            values, positive_order, np.where(passing, np.cumsum(passing) - 1, -1))
        stage, rates = train_stage(values, labels, settings, device, f"stage {index}", merged)
        trained.stages.append(stage)
        passing[passing] = (stage_sums(stage, values[:, :len(stage_positives)])
                            >= stage_threshold(stage.threshold))
        del values
        overall_dr = float(passing.mean())
        row = {"stage": index, "weak_classifiers": len(stage.stumps), **rates,
               "overall_detection_rate": overall_dr,
               "overall_false_positive_rate": overall_fpr * rates["false_positive_rate"],
               "positives": len(stage_positives), "negatives": len(negatives),
               "accepted_scene_windows": available, "scanned_scenes": scanned,
               "seconds": time.perf_counter() - stage_start}
        history.append(row)
        LOG.info("stage %d: %d features, DR %.4f, FPR %.4f (overall DR %.4f, FPR %.2e), "
                 "%d positives, %d negatives (from %s of %d scenes), %.1f s", index,
                 len(stage.stumps), rates["detection_rate"], rates["false_positive_rate"],
                 overall_dr, row["overall_false_positive_rate"], len(stage_positives),
                 len(negatives), "random windows" if scanned is None else scanned,
                 len(scenes), row["seconds"])
        save_state(state_file, key, trained, history, rng)
        if on_stage_end is not None:
            on_stage_end(index)
    seconds = sum(row["seconds"] for row in history)
    final = trained.compact()
    if not final.stages:
        raise ValueError(f"{train_npz}: not even one stage could be trained (too few "
                         "face-free windows in the scenes?)")
    LOG.info("trained %d stages, %d weak classifiers in %.1f s", len(final.stages),
             final.n_weak, seconds)
    final.write_xml(out_path, {"stages": len(final.stages), "weak": final.n_weak,
                               "train": Path(train_npz).name, "seed": settings["seed"]})
    state_file.unlink(missing_ok=True)
    return history

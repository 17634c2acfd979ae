"""The Viola-Jones trainer: Haar features, the stump booster, cascade XML and OpenCV agreement."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from pipeline.boxes import ImageRecord, Manifest
from pipeline.detection.detectors.haar import cascade_path
from pipeline.io import write_image
from pipeline.models.cascade import Cascade, stage_features
from pipeline.models.haar_features import (
    FEATURE_TYPES,
    enumerate_features,
    feature_values,
    variance_norm,
)
from pipeline.training.boosting import (
    SortedFeatures,
    best_stump,
    initial_weights,
    reweight,
    stump_weight,
)
from pipeline.training.samples import MINING_STREAM
from pipeline.training.train_cascade import mine_negatives, opencv_windows, train_cascade


def opencv_accepts(path: str | Path, patches: np.ndarray) -> np.ndarray:
    """OpenCV's decision on each window-sized patch: one window, scale 1, no grouping."""
    classifier = cv2.CascadeClassifier(str(path))
    size = patches.shape[2], patches.shape[1]
    return np.array([len(classifier.detectMultiScale(p, scaleFactor=1.1, minNeighbors=0,
                                                     minSize=size, maxSize=size)) > 0
                     for p in patches])


def face_and_scene_windows(count: int, seed: int = 0, size: int = 24) -> np.ndarray:
    """(count, size, size) windows: LFW faces at random crops and scales, and windows of a
    sample scene."""
    rng = np.random.default_rng(seed)
    faces = (skimage.data.lfw_subset() * 255).astype(np.uint8)
    scene = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)
    out = []
    for k in range(count):
        if k % 2:
            face = faces[rng.integers(len(faces))]
            side = int(rng.integers(18, 26))
            x, y = rng.integers(0, 26 - side, 2)
            crop = face[y:y + side, x:x + side]
        else:
            side = int(rng.integers(24, 120))
            x, y = rng.integers(0, 512 - side, 2)
            crop = scene[y:y + side, x:x + side]
        out.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
    return np.array(out)


# --- features ------------------------------------------------------------------------------


def test_full_feature_set_has_the_viola_jones_count():
    assert len(enumerate_features(24)) == 162_336


@pytest.mark.parametrize(("window", "step"), [(7, 1), (9, 2), (10, 3)])
def test_feature_count_matches_a_closed_form(window, step):
    expected = 0
    for columns, rows, _ in FEATURE_TYPES.values():
        for w in range(1, window // columns + 1):
            for h in range(1, window // rows + 1):
                expected += (len(range(0, window - columns * w + 1, step))
                             * len(range(0, window - rows * h + 1, step)))
    features = enumerate_features(window, position_step=step)
    assert len(features) == expected
    x, y, w, h, weight = (features[..., k] for k in range(5))
    used = weight != 0
    assert np.all((x[used] + w[used] <= window) & (y[used] + h[used] <= window))
    assert np.all(x[:, 0] % step == 0) and np.all(y[:, 0] % step == 0)
    # Every feature's weights sum to zero over its area: a constant offset never changes it.
    assert np.allclose((weight * w * h).sum(axis=1), 0)


def test_feature_values_equal_direct_rectangle_sums():
    rng = np.random.default_rng(1)
    patches = rng.integers(0, 256, (6, 24, 24)).astype(np.uint8)
    features = enumerate_features(24)[rng.choice(162_336, 300, replace=False)]
    values = feature_values(patches, features)
    assert values.shape == (300, 6) and values.dtype == np.float32
    for n, patch in enumerate(patches.astype(np.float64)):
        inner = patch[1:-1, 1:-1]
        norm = inner.size * inner.std()
        for f, rects in enumerate(features):
            direct = sum(weight * patch[int(y):int(y + h), int(x):int(x + w)].sum()
                         for x, y, w, h, weight in rects) / norm
            assert values[f, n] == pytest.approx(direct, rel=1e-5, abs=1e-7)


def test_variance_normalisation_rejects_flat_windows_like_opencv():
    rng = np.random.default_rng(2)
    flat = np.full((24, 24), 120, np.uint8)
    low = np.clip(120 + rng.normal(0, 4, (24, 24)), 0, 255).astype(np.uint8)
    textured = rng.integers(0, 256, (24, 24)).astype(np.uint8)
    factor, valid = variance_norm(np.array([flat, low, textured]))
    assert valid.tolist() == [False, False, True]
    inner = textured[1:-1, 1:-1].astype(np.float64)
    assert factor[2] == pytest.approx(1 / (inner.size * inner.std()), rel=1e-6)
    # Brightness and contrast changes leave normalised feature values unchanged.
    features = enumerate_features(24, position_step=4)
    brighter = (textured * 0.5 + 60).round().astype(np.uint8)
    values = feature_values(np.array([textured, brighter]), features)
    assert np.allclose(values[:, 0], values[:, 1], atol=0.02 * np.abs(values).max())


# --- cascade XML and OpenCV agreement ----------------------------------------------------


@pytest.mark.parametrize("name", ["default", "alt"])  # alt2 has trees
def test_own_evaluation_of_bundled_cascades_equals_opencv(name):
    path = cascade_path(name)
    cascade = Cascade.read_xml(path)
    windows = face_and_scene_windows(400, size=cascade.window[0])
    passed, _ = cascade.evaluate(windows)
    own = passed == len(cascade.stages)
    assert own.sum() >= 10, "the test windows should include faces OpenCV accepts"
    assert np.array_equal(own, opencv_accepts(path, windows))


def test_last_stage_sum_equals_opencv_level_weight():
    path = cascade_path("default")
    cascade = Cascade.read_xml(path)
    windows = face_and_scene_windows(200)
    passed, score = cascade.evaluate(windows)
    classifier = cv2.CascadeClassifier(str(path))
    for patch, stages, own in zip(windows, passed, score, strict=True):
        if stages != len(cascade.stages):
            continue
        _, _, weights = classifier.detectMultiScale3(
            patch, scaleFactor=1.1, minNeighbors=0, minSize=(24, 24), maxSize=(24, 24),
            outputRejectLevels=True)
        assert float(np.ravel(weights)[0]) == pytest.approx(own, abs=1e-4)


def test_xml_round_trip_keeps_every_decision(tmp_path):
    original = Cascade.read_xml(cascade_path("default"))
    original.stages = original.stages[:6]
    compact = original.compact()
    assert len(compact.features) == len({s.feature for st in original.stages
                                         for s in st.stumps})
    compact.write_xml(tmp_path / "six.xml")
    again = Cascade.read_xml(tmp_path / "six.xml")
    assert np.array_equal(again.features, compact.features)
    windows = face_and_scene_windows(300, seed=3)
    own_original, score_original = original.evaluate(windows)
    own_again, score_again = again.evaluate(windows)
    assert np.array_equal(own_original, own_again)
    assert np.allclose(score_original, score_again)
    assert np.array_equal(own_again == 6, opencv_accepts(tmp_path / "six.xml", windows))


def test_unreadable_cascades_are_named(tmp_path):
    (tmp_path / "bad.xml").write_text("<opencv_storage><cascade/></opencv_storage>")
    with pytest.raises(ValueError, match="bad.xml: not an OpenCV HAAR cascade"):
        Cascade.read_xml(tmp_path / "bad.xml")
    with pytest.raises(ValueError, match="only stump cascades"):
        Cascade.read_xml(cascade_path("alt2"))  # two splits per weak classifier
    window, features = stage_features(cascade_path("alt2"))
    assert window == (20, 20) and len(features) >= 2


# --- boosting --------------------------------------------------------------------------------


def brute_force_stump(values: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """Least weighted error over every feature, threshold between distinct values, polarity."""
    best = math.inf
    truth = np.where(labels == 1, 1, -1)
    for row in values:
        levels = np.unique(row)
        for low, high in zip(levels[:-1], levels[1:], strict=True):
            above = row >= (low + high) / 2
            for polarity in (1, -1):
                guess = np.where(above, polarity, -polarity)
                best = min(best, weights[guess != truth].sum())
    return best


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_best_stump_equals_brute_force(backend):
    rng = np.random.default_rng(4)
    values = rng.integers(0, 12, (40, 60)).astype(np.float32)  # many ties
    labels = (rng.random(60) < 0.4).astype(int)
    values[7] += labels * 3  # one informative feature
    values[9] = 5.0          # one constant feature, never choosable
    weights = rng.random(60)
    weights /= weights.sum()
    features = SortedFeatures.build(values)
    if backend == "torch":  # the GPU code path, run on the CPU
        order, closed = features.unpacked()
        features = SortedFeatures(values, torch.from_numpy(order), torch.from_numpy(closed))
    stump = best_stump(features, labels, weights)
    assert stump.error == pytest.approx(brute_force_stump(values, labels, weights), abs=1e-6)
    assert stump.feature != 9
    guess = stump.predict(values[stump.feature])
    assert weights[guess != np.where(labels == 1, 1, -1)].sum() == pytest.approx(stump.error)


def test_booster_agrees_with_sklearn_adaboost_on_depth_one_trees():
    """scikit-learn's SAMME with depth-1 trees is discrete AdaBoost with votes 2 * alpha.

    Its trees split by Gini impurity, ours by weighted error, so the chosen stumps may differ.
    Replaying sklearn's stumps through our vote and reweighting must reproduce its recorded
    errors and votes round by round, and at every round our search must find a stump at
    least as good as sklearn's under the same weights.
    """
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(5)
    n = 300
    labels = (rng.random(n) < 0.5).astype(int)
    values = rng.normal(size=(25, n)).astype(np.float32)
    values[:6] += labels * rng.uniform(0.3, 1.2, (6, 1)).astype(np.float32)
    booster = AdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=15,
                                 random_state=0).fit(values.T, labels)
    features = SortedFeatures.build(values)
    weights = np.full(n, 1 / n)
    signs = np.where(labels == 1, 1, -1)
    total = np.zeros(n)
    for tree, vote, error in zip(booster.estimators_, booster.estimator_weights_,
                                 booster.estimator_errors_, strict=False):
        if vote == 0:
            break
        predictions = np.where(tree.predict(values.T) == 1, 1, -1)
        ours = weights[predictions != signs].sum()
        assert ours == pytest.approx(error, rel=1e-9)
        assert 2 * stump_weight(ours) == pytest.approx(vote, rel=1e-9)
        assert best_stump(features, labels, weights).error <= ours + 1e-9
        total += stump_weight(ours) * predictions
        weights = reweight(weights, labels, predictions, stump_weight(ours))
    assert np.array_equal(np.where(total >= 0, 1, 0), booster.predict(values.T))


def test_initial_weights_split_half_and_half():
    weights = initial_weights(np.array([1, 1, 0, 0, 0, 0]))
    assert weights[:2].sum() == pytest.approx(0.5) and weights[2:].sum() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="needs faces and non-faces"):
        initial_weights(np.array([1, 1]))


# --- training ---------------------------------------------------------------------------------


def synthetic_face(rng: np.random.Generator, side: int = 24) -> np.ndarray:
    """A bright oval with dark eyes and a dark mouth: the pattern Haar features love."""
    face = np.full((side, side), 90, np.float64)
    cv2.ellipse(face, (side // 2, side // 2), (side // 2 - 2, side // 2 - 1), 0, 0, 360, 190, -1)
    for cx in (side // 3, 2 * side // 3):
        cv2.circle(face, (cx, side * 3 // 8), max(side // 10, 1), 40, -1)
    cv2.rectangle(face, (side // 3, side * 3 // 4), (2 * side // 3, side * 3 // 4 + 1), 60, -1)
    return np.clip(face + rng.normal(0, 15, face.shape), 0, 255).astype(np.uint8)


def write_synthetic_training_set(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """train.npz (synthetic faces, no face-free patches) and a manifest of texture scenes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    faces = np.array([synthetic_face(rng) for _ in range(40)])
    np.savez(folder / "train.npz", faces=faces, nonfaces=np.zeros((0, 24, 24), np.uint8))
    records = []
    for k in range(4):  # textures strewn with bright ovals and dark dots: face parts, no faces
        scene = cv2.GaussianBlur(rng.normal(128, 60, (160, 200)), (0, 0), 1 + k)
        for _ in range(40):
            x, y, r = int(rng.integers(0, 200)), int(rng.integers(0, 160)), int(rng.integers(3, 14))
            if rng.random() < 0.5:
                cv2.ellipse(scene, (x, y), (r, r + 2), 0, 0, 360, float(rng.uniform(150, 230)), -1)
            else:
                cv2.circle(scene, (x, y), max(r // 4, 1), float(rng.uniform(20, 70)), -1)
        scene = np.clip(scene, 0, 255).astype(np.uint8)
        write_image(folder / "scenes" / f"scene{k}.png", scene)
        records.append(ImageRecord(f"scene{k}.png", 200, 160, []))
    Manifest("ground_truth", folder / "scenes", records).save(folder / "scenes.json")
    return folder / "train.npz", folder / "scenes.json"


TINY_CASCADE = {
    "train_dataset": "synthetic", "window": 24, "seed": 0, "device": "cpu",
    "positives_per_face": 10, "negatives_per_stage": 400, "min_negatives": 20,
    "position_step": 3, "size_step": 2, "max_features": 1500, "stage_detection_rate": 0.99,
    "stage_false_positive_rate": 0.5, "target_false_positive_rate": 1e-3, "max_stages": 5,
    "max_weak_per_stage": 30, "mining_scale_factor": 1.2,
}


@pytest.fixture(scope="module")
def tiny_cascade(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, Path]:
    folder = tmp_path_factory.mktemp("synthetic")
    train, scenes = write_synthetic_training_set(folder)
    history = train_cascade(TINY_CASCADE, train, scenes, folder / "cascade.xml")
    return folder / "cascade.xml", history, scenes


def test_trained_cascade_meets_its_stage_targets(tiny_cascade):
    _, history, _ = tiny_cascade
    assert len(history) >= 2
    for row in history:
        assert row["detection_rate"] >= TINY_CASCADE["stage_detection_rate"]
        assert (row["false_positive_rate"] <= TINY_CASCADE["stage_false_positive_rate"]
                or row["weak_classifiers"] == TINY_CASCADE["max_weak_per_stage"])
    rates = [row["false_positive_rate"] for row in history]
    assert history[-1]["overall_false_positive_rate"] == pytest.approx(np.prod(rates))
    assert all(b["negatives"] <= TINY_CASCADE["negatives_per_stage"] for b in history)


def test_opencv_loads_the_trained_cascade_and_decides_like_us(tiny_cascade):
    path, history, _ = tiny_cascade
    cascade = Cascade.read_xml(path)
    assert len(cascade.stages) == len(history)
    assert cv2.CascadeClassifier(str(path)).empty() is False
    rng = np.random.default_rng(9)
    windows = np.concatenate([
        np.array([synthetic_face(rng) for _ in range(150)]),
        np.clip(rng.normal(128, 50, (150, 24, 24)), 0, 255).astype(np.uint8),
        face_and_scene_windows(200, seed=4),
    ])
    passed, _ = cascade.evaluate(windows)
    own = passed == len(cascade.stages)
    assert own[:150].mean() > 0.8, "synthetic faces should mostly pass"
    assert 0 < own.sum() < len(own)
    assert np.array_equal(own, opencv_accepts(path, windows))


def test_trained_cascade_finds_a_pasted_face(tiny_cascade):
    from pipeline.detection.detectors import build_detector

    path, _, _ = tiny_cascade
    rng = np.random.default_rng(10)
    image = np.clip(cv2.GaussianBlur(rng.normal(128, 40, (200, 240)), (0, 0), 2), 0, 255)
    image = image.astype(np.uint8)
    image[60:108, 90:138] = synthetic_face(rng, 48)
    detector = build_detector({"kind": "haar", "trained_cascade": "tiny", "scale_factor": 1.1,
                               "min_neighbors": 2, "min_size": 24, "equalize_hist": False},
                              [str(path)])
    best = max(detector.detect(image), key=lambda b: b.score)
    assert abs(best.x + best.w / 2 - 114) < 12 and abs(best.y + best.h / 2 - 84) < 12


def test_rebuilt_opencv_windows_are_exactly_the_accepted_ones(tmp_path):
    """Every window OpenCV reports, rebuilt from its pyramid level, passes our evaluation."""
    cascade = Cascade.read_xml(cascade_path("default"))
    cascade.stages = cascade.stages[:3]
    cascade = cascade.compact()
    cascade.write_xml(tmp_path / "three.xml")
    image = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)[:300, :260]
    rects = np.asarray(cv2.CascadeClassifier(str(tmp_path / "three.xml")).detectMultiScale(
        image, scaleFactor=1.15, minNeighbors=0, minSize=(24, 24))).reshape(-1, 4)
    patches = opencv_windows(image, rects, (24, 24), 1.15)
    assert len(rects) > 500 and len(patches) >= 0.97 * len(rects)  # clipped corners left out
    assert np.all(cascade.evaluate(patches)[0] == 3)


def test_mined_negatives_pass_the_cascade_and_avoid_faces(tiny_cascade):
    from pipeline.training.samples import Scene

    path, _, _ = tiny_cascade
    cascade = Cascade.read_xml(path)
    cascade.stages = cascade.stages[:1]
    cascade = cascade.compact()
    rng = np.random.default_rng(11)
    image = np.clip(rng.normal(128, 60, (120, 160)), 0, 255).astype(np.uint8)
    mined, available, scanned = mine_negatives(cascade, [Scene(image, np.zeros((0, 4)))], 50,
                                               1.2, rng)
    assert available > 0 and 0 < len(mined) <= 50 and scanned == 1
    assert np.all(cascade.evaluate(mined)[0] == 1)
    everywhere = np.array([[0.0, 0.0, 160.0, 120.0]])  # the whole scene is a face
    mined, available, _ = mine_negatives(cascade, [Scene(image, everywhere)], 50, 1.2, rng)
    assert available == 0 and len(mined) == 0


def test_mining_stops_at_the_scenes_it_needs(tiny_cascade):
    """With ``min_scenes`` the miner scans a seeded random subset once it has enough windows;
    its windows are exactly those of an all-scene scan of that subset."""
    from pipeline.training.samples import Scene

    path, _, _ = tiny_cascade
    cascade = Cascade.read_xml(path)
    cascade.stages = cascade.stages[:1]
    cascade = cascade.compact()
    rng = np.random.default_rng(5)
    scenes = [Scene(np.clip(rng.normal(128, 60, (120, 160)), 0, 255).astype(np.uint8),
                    np.zeros((0, 4))) for _ in range(8)]
    _, every, scanned_all = mine_negatives(cascade, scenes, 50, 1.2, np.random.default_rng(0))
    assert scanned_all == 8
    mined, some, scanned = mine_negatives(cascade, scenes, 50, 1.2, np.random.default_rng(0),
                                          min_scenes=2, seed=3, stage=1)
    assert scanned == 2 and 50 <= some < every and len(mined) == 50
    order = np.random.default_rng([3, MINING_STREAM, 1]).permutation(8)[:2]
    subset = [scenes[i] for i in sorted(order)]
    _, expected, _ = mine_negatives(cascade, subset, 50, 1.2, np.random.default_rng(0))
    assert some == expected
    # More windows wanted than the scenes hold: every scene is scanned.
    _, _, scanned = mine_negatives(cascade, scenes, 10 * every, 1.2, np.random.default_rng(0),
                                   min_scenes=2, seed=3, stage=1)
    assert scanned == 8


def test_interrupted_training_resumes_to_the_same_cascade(tmp_path):
    train, scenes = write_synthetic_training_set(tmp_path / "data", seed=1)
    settings = dict(TINY_CASCADE, max_stages=3, target_false_positive_rate=1e-9)
    whole = train_cascade(settings, train, scenes, tmp_path / "whole.xml")

    def stop_after_first(stage: int) -> None:
        if stage == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_cascade(settings, train, scenes, tmp_path / "resumed.xml",
                      on_stage_end=stop_after_first)
    assert not (tmp_path / "resumed.xml").exists()
    resumed = train_cascade(settings, train, scenes, tmp_path / "resumed.xml")
    assert [r["weak_classifiers"] for r in resumed] == [r["weak_classifiers"] for r in whole]
    assert (tmp_path / "resumed.xml").read_bytes() == (tmp_path / "whole.xml").read_bytes()
    assert not list(tmp_path.glob(".*.resume"))

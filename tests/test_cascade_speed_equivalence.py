"""The cascade trainer's fast paths give exactly the answers of straightforward versions.

Each test runs an optimised piece (the compiled stump search, remembered mining windows, the
stacked OpenCV check, cached positive feature values) beside a plain reference written here,
and asserts equality, not closeness: training must give the same cascade for the same seed.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from pipeline.detection.detectors.haar import cascade_path
from pipeline.models.cascade import Cascade
from pipeline.models.haar_features import enumerate_features, feature_values
from pipeline.training import boosting
from pipeline.training.boosting import SortedFeatures, best_stump, reweight, stump_weight
from pipeline.training.samples import Scene
from pipeline.training.train_cascade import mine_negatives, opencv_passes


def reference_best(values: np.ndarray, labels: np.ndarray, weights: np.ndarray
                   ) -> tuple[int, int, int]:
    """(feature, sorted position, polarity) of the plain search: each chunk's running sums of
    float32 signed weights in a stable order (summed in float64, rounded per prefix), its
    first lowest and first highest sum over positions followed by a different value, chunks
    compared in order with ties kept by the earlier."""
    signed = np.where(labels == 1, weights, -weights).astype(np.float32)
    total_pos, total_neg = weights[labels == 1].sum(), weights[labels != 1].sum()
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    closed = np.ones(values.shape, bool)
    closed[:, :-1] = ordered[:, 1:] == ordered[:, :-1]
    sums = np.cumsum(signed[order].astype(np.float64), axis=1).astype(np.float32)
    best = (math.inf, 0, 0, 1)
    width = values.shape[1]
    for start in range(0, len(values), boosting.CHUNK_FEATURES):
        chunk = sums[start:start + boosting.CHUNK_FEATURES]
        shut = closed[start:start + boosting.CHUNK_FEATURES]
        low = int(np.where(shut, np.float32(np.inf), chunk).argmin())
        high = int(np.where(shut, np.float32(-np.inf), chunk).argmax())
        for error, flat, polarity in [(total_neg + float(chunk.flat[low]), low, 1),
                                      (total_pos - float(chunk.flat[high]), high, -1)]:
            if error < best[0]:
                best = (error, start + flat // width, flat % width, polarity)
    return best[1], best[2], best[3]


@pytest.mark.parametrize("chunk", [2048, 8, 6, 5])
def test_compiled_stump_search_equals_the_plain_search(monkeypatch, chunk):
    """Chunks that split the rows unevenly, ties inside and across features, constant rows."""
    monkeypatch.setattr(boosting, "CHUNK_FEATURES", chunk)
    rng = np.random.default_rng(7)
    values = rng.integers(0, 9, (23, 70)).astype(np.float32)  # many ties
    values[3] = 2.0  # constant: never choosable
    values[11:14] = values[10]  # identical features: the first must win
    labels = (rng.random(70) < 0.45).astype(int)
    weights = boosting.initial_weights(labels)
    features = SortedFeatures.build(values)
    for _ in range(8):
        stump = best_stump(features, labels, weights)
        feature, position, polarity = reference_best(values, labels, weights)
        assert (stump.feature, stump.polarity) == (feature, polarity)
        assert stump.threshold == features.threshold(feature, position)
        weights = reweight(weights, labels, stump.predict(values[stump.feature]),
                           stump_weight(stump.error))


def test_compiled_stump_search_equals_the_whole_chunk_torch_path():
    rng = np.random.default_rng(8)
    values = (rng.normal(size=(70, 300)) * 3).round(1).astype(np.float32)
    labels = (rng.random(300) < 0.6).astype(int)
    weights = rng.random(300) ** 4
    weights /= weights.sum()
    compiled = SortedFeatures.build(values)
    order, closed = compiled.unpacked()
    whole = SortedFeatures(values, torch.from_numpy(order), torch.from_numpy(closed))
    for _ in range(6):
        stump = best_stump(compiled, labels, weights)
        assert stump == best_stump(whole, labels, weights)
        weights = reweight(weights, labels, stump.predict(values[stump.feature]),
                           stump_weight(stump.error))


def test_feature_values_of_a_column_do_not_depend_on_the_others():
    """The trainer computes the positives' values once and takes the passing columns."""
    rng = np.random.default_rng(9)
    patches = rng.integers(0, 256, (40, 24, 24)).astype(np.uint8)
    features = enumerate_features(24, position_step=3)
    everything = feature_values(patches, features)
    some = rng.random(40) < 0.5
    assert np.array_equal(everything[:, some], feature_values(patches[some], features))
    assert np.array_equal(everything[::7], feature_values(patches, features[::7]))


def bundled_stages(count: int, first: int = 0) -> Cascade:
    """Stages ``first`` .. ``first + count`` of OpenCV's bundled frontal-face cascade."""
    cascade = Cascade.read_xml(cascade_path("default"))
    cascade.stages = cascade.stages[first:first + count]
    return cascade.compact()


def test_stacked_opencv_check_equals_one_window_at_a_time(tmp_path):
    cascade = bundled_stages(2, first=1)
    cascade.write_xml(tmp_path / "two.xml")
    classifier = cv2.CascadeClassifier(str(tmp_path / "two.xml"))
    scene = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)
    rng = np.random.default_rng(10)
    patches = np.array([cv2.resize(scene[y:y + s, x:x + s], (24, 24))
                        for s, x, y in zip(rng.integers(24, 200, 300), rng.integers(0, 300, 300),
                                           rng.integers(0, 300, 300), strict=True)])
    patches[5] = 128  # flat: never classified
    single = np.array([len(classifier.detectMultiScale(p, scaleFactor=1.1, minNeighbors=0,
                                                       minSize=(24, 24), maxSize=(24, 24))) > 0
                       for p in patches])
    assert 0 < single.sum() < len(patches) and not single[5]
    assert np.array_equal(opencv_passes(cascade, patches), single)
    assert np.array_equal(opencv_passes(cascade, patches[-1:]), single[-1:])  # last row too
    assert not opencv_passes(cascade, patches[~single][:40]).any()  # OpenCV finds nothing
    assert opencv_passes(cascade, patches[:0]).shape == (0,)


@pytest.mark.parametrize("budget_windows", [10**6, 12_000])
def test_remembered_mining_windows_equal_a_rescan(monkeypatch, budget_windows):
    """Mining a longer cascade from the windows remembered at a shorter one finds exactly the
    windows, counts and negatives of scanning every scene again, whether the memory budget
    holds every scene's windows or only some scenes' (the others are rescanned)."""
    from pipeline.training import train_cascade

    monkeypatch.setattr(train_cascade, "REMEMBERED_BYTES", budget_windows * 24 * 24)
    monkeypatch.setattr(train_cascade, "STACKED_PATCHES", 97)  # several stacks per scene
    image = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)
    scenes = [Scene(image[:260, :300], np.zeros((0, 4))),
              Scene(image[200:, 150:], np.array([[100.0, 80.0, 90.0, 90.0]])),
              Scene(cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2GRAY)[::2, ::2],
                    np.zeros((0, 4)))]
    remembered: dict = {}
    held_by_depth: list[int] = []
    for depth in (2, 3, 5):
        cascade = bundled_stages(depth)
        fresh = mine_negatives(cascade, scenes, 80, 1.2, np.random.default_rng(depth))
        reused = mine_negatives(cascade, scenes, 80, 1.2, np.random.default_rng(depth),
                                remembered=remembered)
        assert fresh[1:] == reused[1:] and fresh[1] > 0
        assert np.array_equal(fresh[0], reused[0])
        assert all(known.depth == depth for known in remembered.values())
        assert sum(len(known.rects) for known in remembered.values()) <= budget_windows
        if budget_windows >= 10**6:
            assert len(remembered) == len(scenes)
        else:  # the budget holds some scenes, not all: both paths are exercised
            held_by_depth.append(len(remembered))
    if budget_windows < 10**6:  # 9-16k windows a scene at depth 2, 1-3k at depth 5
        assert 0 < held_by_depth[0] < len(scenes) == held_by_depth[-1], held_by_depth


@pytest.mark.parametrize(("width", "dtype"), [(300, np.int16), (33_000, np.int32)])
def test_the_packed_order_holds_the_stable_order_and_the_ties(width, dtype):
    """int16 while every sample index fits, int32 beyond; the search on the packed order
    gives the plain search's stump either way."""
    rng = np.random.default_rng(10)
    values = rng.integers(0, 50, (4, width)).astype(np.float32)
    features = SortedFeatures.build(values)
    assert features.order.dtype == dtype and features.closed is None
    order, closed = features.unpacked()
    assert np.array_equal(order, np.argsort(values, axis=1, kind="stable"))
    ordered = np.take_along_axis(values, order, axis=1)
    assert np.array_equal(closed[:, :-1], ordered[:, 1:] == ordered[:, :-1]) and closed[:, -1].all()
    labels = (rng.random(width) < 0.5).astype(int)
    weights = boosting.initial_weights(labels)
    stump = best_stump(features, labels, weights)
    feature, position, polarity = reference_best(values, labels, weights)
    assert (stump.feature, stump.polarity) == (feature, polarity)
    assert stump.threshold == features.threshold(feature, position)


@pytest.mark.parametrize(("positives", "negatives"), [(60, 25), (40_000, 40)])
def test_merging_the_kept_positives_order_equals_sorting_the_stage(positives, negatives):
    """A stage's features sorted from the positives' order kept across stages (some
    positives left out) and its negatives sorted alone: the packed order of sorting the
    whole stage, ties between a positive and a negative included."""
    rng = np.random.default_rng(11)
    first = rng.integers(0, 30, (5, positives)).astype(np.float32)
    passing = rng.random(positives) < 0.9
    new = rng.integers(0, 30, (5, negatives)).astype(np.float32)
    values = np.concatenate([first[:, passing], new], axis=1)
    merged = SortedFeatures.merged(values, boosting.stable_order(first),
                                   np.where(passing, np.cumsum(passing) - 1, -1))
    whole = SortedFeatures.build(values)
    assert merged.order.dtype == whole.order.dtype
    assert np.array_equal(merged.order, whole.order)
    with pytest.raises(ValueError, match="NaN"):
        SortedFeatures.merged(np.full((1, 3), np.nan, np.float32), np.zeros((1, 3), np.int16),
                              np.arange(3))

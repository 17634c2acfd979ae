"""The low-resolution training augmentation (pipeline.training.samples.low_resolution)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.data.datasets import lfw_patches
from pipeline.training.samples import (
    LOW_RESOLUTION_STREAM,
    Scene,
    low_resolution,
    random_windows,
    training_positives,
)

BLUR = {"probability": 1.0, "min_side": 16}


def test_fine_detail_is_lost_and_the_mean_kept():
    """A 1-pixel checkerboard shrunk by area averaging to any side below its own turns
    mostly grey, and stays so when enlarged back (what an enlarged pyramid level shows of fine
    detail); its mean grey level is kept."""
    board = (np.indices((32, 32)).sum(axis=0) % 2 * 200 + 20).astype(np.uint8)
    out = low_resolution(np.repeat(board[None], 20, axis=0), BLUR, np.random.default_rng(0))
    assert np.mean([o.std() for o in out]) < board.std() / 2
    assert np.allclose([o.mean() for o in out], board.mean(), atol=3)


def test_each_patch_equals_shrinking_and_enlarging_by_its_drawn_side():
    """Against OpenCV directly: the same draws (a probability, then a side per altered patch)
    give the same patches; probability 0 and min_side = window leave patches unchanged."""
    faces = lfw_patches()[0][:12]
    patches = np.stack([cv2.resize(f, (32, 32)) for f in faces])
    settings = {"probability": 0.5, "min_side": 20}
    out = low_resolution(patches, settings, np.random.default_rng(4))
    draws = np.random.default_rng(4)
    altered = 0
    for patch, result in zip(patches, out, strict=True):
        if draws.random() >= 0.5:
            assert np.array_equal(result, patch)
            continue
        side = int(draws.integers(20, 33))
        small = cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA)
        assert np.array_equal(result, cv2.resize(small, (32, 32), interpolation=cv2.INTER_LINEAR))
        altered += 1
    assert 0 < altered < len(patches)
    assert np.array_equal(low_resolution(patches, {**BLUR, "probability": 0.0},
                                         np.random.default_rng(0)), patches)
    assert np.array_equal(low_resolution(patches, {"probability": 1.0, "min_side": 32},
                                         np.random.default_rng(0)), patches)
    with pytest.raises(ValueError, match="min_side 40 is larger than the 32 px window"):
        low_resolution(patches, {"probability": 1.0, "min_side": 40}, np.random.default_rng(0))


def test_only_the_positives_change():
    """Its own stream: the positives' geometry and the trainer's later draws are those of the
    run without it; the positives are the plain ones put through it."""
    settings = {"positives_per_face": 2, "seed": 3}
    scenes = [Scene(np.random.default_rng(9).integers(0, 256, (120, 160)).astype(np.uint8),
                    np.zeros((0, 4)))]
    plain_rng, blur_rng = np.random.default_rng(3), np.random.default_rng(3)
    plain, plain_boxes = training_positives(lfw_patches()[0][:10], settings, 32, plain_rng,
                                            round_index=2)
    blurred, blurred_boxes = training_positives(lfw_patches()[0][:10],
                                                {**settings, "low_resolution": BLUR}, 32,
                                                blur_rng, round_index=2)
    assert np.array_equal(plain_boxes, blurred_boxes)
    assert np.array_equal(blurred, low_resolution(
        plain, BLUR, np.random.default_rng([3, LOW_RESOLUTION_STREAM, 2])))
    assert not np.array_equal(plain, blurred)
    assert np.array_equal(random_windows(scenes, 30, 32, 24, plain_rng),
                          random_windows(scenes, 30, 32, 24, blur_rng))


def test_config_errors_name_the_key(default_config):
    import copy

    from pipeline.config import ConfigError, validate_config

    config = copy.deepcopy(default_config)
    config["models"]["proposal"]["low_resolution"] = dict(BLUR)  # no arm's side: no declaration
    validate_config(config)
    config["models"]["proposal"]["low_resolution"]["probability"] = 1.5
    with pytest.raises(ConfigError, match="models.proposal.low_resolution.probability"):
        validate_config(config)

"""The illumination training augmentation (pipeline.training.samples.illuminate)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.datasets import lfw_patches
from pipeline.training.samples import (
    Scene,
    augment_faces,
    illuminate,
    illumination_rng,
    random_windows,
    training_positives,
)

LIGHT = {"probability": 1.0, "shadow_strength": 0.8, "shadow_softness": 0.1, "gradient": 40.0,
         "gamma": 1.8, "local_contrast": 3.0, "shadow_family": "edge"}
NEUTRAL = {"probability": 1.0, "shadow_strength": 0.0, "shadow_softness": 0.1, "gradient": 0.0,
           "gamma": 1.0, "local_contrast": 1.0, "shadow_family": "edge"}


@pytest.fixture(scope="module")
def faces():
    return augment_faces(lfw_patches()[0][:20], 2, 24, np.random.default_rng(0))


def test_deterministic_for_a_seed_and_different_for_another(faces):
    first = illuminate(faces, LIGHT, illumination_rng(5))
    assert np.array_equal(first, illuminate(faces, LIGHT, illumination_rng(5)))
    assert not np.array_equal(first, illuminate(faces, LIGHT, illumination_rng(6)))
    assert not np.array_equal(first, illuminate(faces, LIGHT, illumination_rng(5, round_index=1)))
    assert first.shape == faces.shape and first.dtype == np.uint8


def test_neutral_settings_and_probability_zero_leave_faces_as_they_are(faces):
    assert np.array_equal(illuminate(faces, NEUTRAL, illumination_rng(0)), faces)
    assert np.array_equal(illuminate(faces, {**LIGHT, "probability": 0.0}, illumination_rng(0)),
                          faces)


def test_a_cast_shadow_only_darkens(faces):
    shadowed = illuminate(faces, {**NEUTRAL, "shadow_strength": 1.0}, illumination_rng(1))
    assert np.all(shadowed.astype(int) <= faces.astype(int) + 1)  # +1: rounding
    assert shadowed.mean() < faces.mean() - 5


def test_only_the_positives_change(faces):
    """The augmentation draws from its own generator: the positives' geometry and every later
    draw of the trainer (its negative windows) are those of the run without it."""
    settings = {"positives_per_face": 2, "seed": 3}
    image = np.random.default_rng(9).integers(0, 256, (120, 160)).astype(np.uint8)
    scenes = [Scene(image, np.array([[40.0, 40.0, 30.0, 30.0]]))]
    plain_rng, lit_rng = np.random.default_rng(3), np.random.default_rng(3)
    plain, plain_boxes = training_positives(lfw_patches()[0][:10], settings, 24, plain_rng)
    lit, lit_boxes = training_positives(lfw_patches()[0][:10],
                                        {**settings, "illumination": LIGHT}, 24, lit_rng)
    assert np.array_equal(plain_boxes, lit_boxes)
    assert not np.array_equal(plain, lit)
    assert np.array_equal(illuminate(plain, LIGHT, illumination_rng(3)), lit)
    assert np.array_equal(random_windows(scenes, 30, 24, 24, plain_rng),
                          random_windows(scenes, 30, 24, 24, lit_rng))


def test_one_illumination_block_is_valid_for_a_model_and_a_cascade(default_config):
    import copy

    from pipeline.config import ConfigError, validate_config

    config = copy.deepcopy(default_config)
    config["models"]["cnn"]["illumination"] = dict(LIGHT)
    config["cascades"]["haar_trained"]["illumination"] = dict(LIGHT)
    validate_config(config)
    config["cascades"]["haar_trained"]["illumination"]["gamma"] = 0.5
    with pytest.raises(ConfigError, match="cascades.haar_trained.illumination.gamma"):
        validate_config(config)


@pytest.mark.parametrize("family", ["edge", "occluder"])
def test_training_shadows_come_from_the_test_variants_generator(faces, family):
    """With the light's other parts neutral, each face is darkened by exactly the variants'
    shadow mask of the configured family over the whole patch (the same draws, in order)."""
    from pipeline.boxes import Box
    from pipeline.data.shadows import shadow_mask

    settings = {**NEUTRAL, "shadow_strength": 0.9, "shadow_softness": 0.02,
                "shadow_family": family}
    lit = illuminate(faces[:5], settings, illumination_rng(4))
    rng = illumination_rng(4)
    side = faces.shape[1]
    for face, out in zip(faces[:5], lit, strict=True):
        rng.random()  # the probability draw
        mask = shadow_mask((side, side), [Box(0, 0, side, side)], 0.02, 0.25, rng, family)
        expected = face * (1 - rng.uniform(0, 0.9) * mask)
        rng.uniform(0, 2 * np.pi), rng.uniform(0, 0), rng.uniform(-1, 1), rng.uniform(1, 1)
        assert np.array_equal(out, np.clip(np.rint(expected), 0, 255).astype(np.uint8))

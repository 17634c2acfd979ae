"""Shared fixtures: a tiny configuration, and the dataset and model it builds (once per run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.config import deep_merge, load_config

TINY_OVERRIDES: dict[str, Any] = {
    # the second shadow family and cartoon style are left to tests/test_variants.py: the same
    # kinds, so the workflow runs them as it runs these
    "datasets": {"embedded": {"n_scenes": 6, "empty_scene_fraction": 0.2,
                              "variants": ["original", "shadow", "cartoon",
                                           "shadow_sweep_0.00", "shadow_sweep_0.50"]}},
    "shadow_sweep": {"strengths": [0.0, 0.5]},
    "models": {
        name: {"positives_per_face": 8, "negatives_per_round": 800, "hard_negative_rounds": 1,
               "hard_negatives_per_round": 200, "epochs": 2, "batch_size": 64}
        for name in ("cnn", "proposal")
    },
    "cascades": {
        "haar_trained": {"positives_per_face": 8, "negatives_per_stage": 400,
                         "max_features": 1500, "max_stages": 4, "max_weak_per_stage": 30}
    },
    "statistics": {"bootstrap_samples": 200},
    "execution": {"detection_shards": 2},
    "report": {"example_images": 2},
}


@pytest.fixture(scope="session")
def default_config() -> dict[str, Any]:
    return load_config()


@pytest.fixture(scope="session")
def tiny_config(default_config: dict[str, Any]) -> dict[str, Any]:
    return deep_merge(default_config, TINY_OVERRIDES)


@pytest.fixture(scope="session")
def tiny_dataset(tiny_config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded dataset built with the tiny settings: folder with test.json, train.npz."""
    from pipeline.data.datasets import build_dataset

    out = tmp_path_factory.mktemp("data") / "embedded"
    build_dataset(tiny_config["datasets"]["embedded"], out)
    return out


def _train_tiny(name: str, config: dict[str, Any], dataset: Path,
                factory: pytest.TempPathFactory) -> Path:
    from pipeline.training.train_cnn import train_cnn

    out = factory.mktemp("models") / f"{name}.pt"
    train_cnn(dict(config["models"][name], seed=0), dataset / "train.npz",
              dataset / "train_backgrounds.json", out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_config: dict[str, Any], tiny_dataset: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CNN checkpoint trained for a few seconds on the tiny dataset."""
    return _train_tiny("cnn", tiny_config, tiny_dataset, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_proposal_model(tiny_config: dict[str, Any], tiny_dataset: Path,
                        tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cascade's proposal net trained for a few seconds on the tiny dataset."""
    return _train_tiny("proposal", tiny_config, tiny_dataset, tmp_path_factory)


# Box regression trained on the tiny dataset: 32 scene faces per face besides the positives,
# so that a few seconds of training learn where the face lies in a shifted window.
BOX_REGRESSION_OVERRIDES: dict[str, Any] = {
    "positives_per_face": 8, "hard_negative_rounds": 0, "epochs": 6,
    "box_regression": {"faces_per_face": 32, "weight": 1.0},
}


@pytest.fixture(scope="session")
def tiny_box_model(tiny_config: dict[str, Any], tiny_dataset: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny CNN with box regression (:data:`BOX_REGRESSION_OVERRIDES`)."""
    config = deep_merge(tiny_config, {"models": {"cnn": BOX_REGRESSION_OVERRIDES}})
    return _train_tiny("cnn", config, tiny_dataset, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_output_model(tiny_config: dict[str, Any], tiny_dataset: Path,
                      tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cascade's optional third stage (architecture output, 48x48, with box regression)
    trained for a few seconds on the tiny dataset."""
    config = deep_merge(tiny_config, {"models": {"cnn": {
        "architecture": "output", "window": 48, "hard_negative_rounds": 0,
        "box_regression": {"faces_per_face": 4, "weight": 1.0}}}})
    return _train_tiny("cnn", config, tiny_dataset, tmp_path_factory)

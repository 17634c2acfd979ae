import copy

import pytest

from pipeline.config import ConfigError, load_config, validate_config


def test_default_config_is_valid(default_config):
    validate_config(default_config)


@pytest.mark.parametrize("mutate, key", [
    (lambda c: c["detectors"]["haar"].__setitem__("scale_factor", 0.9),
     "detectors.haar.scale_factor"),
    (lambda c: c["variants"]["shadow"].__setitem__("strength", 1.5), "variants.shadow.strength"),
    (lambda c: c["variants"]["shadow"].__setitem__("strenght", 0.5), "variants.shadow"),
    (lambda c: c["evaluation"].pop("iou_threshold"), "evaluation"),
    (lambda c: c["detectors"]["cnn"].__setitem__("model", "nosuch"), "detectors.cnn.model"),
    (lambda c: c["report"].__setitem__("fp_for_summary", 7), "report.fp_for_summary"),
    (lambda c: c["models"]["cnn"].__setitem__("optimizer", "rmsprop"), "models.cnn.optimizer"),
    (lambda c: c.__setitem__("extra", 1), "<top level>"),
    (lambda c: c["detectors"]["haar_trained"].__setitem__("trained_cascade", "nosuch"),
     "detectors.haar_trained.trained_cascade"),
    (lambda c: c["detectors"]["haar_trained"].__setitem__("cascade", "default"),
     "detectors.haar_trained"),
    (lambda c: c["cascades"]["haar_trained"].__setitem__("train_dataset", "nosuch"),
     "cascades.haar_trained.train_dataset"),
    (lambda c: c["cascades"]["haar_trained"].__setitem__("stage_false_positive_rate", 1.0),
     "cascades.haar_trained.stage_false_positive_rate"),
    (lambda c: c["models"]["cnn"].__setitem__("box_regression", {"faces_per_face": 2}),
     "models.cnn.box_regression"),
    (lambda c: c["models"]["cnn"].__setitem__("box_regression",
                                              {"faces_per_face": -1, "weight": 0.5}),
     "models.cnn.box_regression.faces_per_face"),
    (lambda c: c["detectors"]["cnn_cascade"].__setitem__("output_model", "nosuch"),
     "detectors.cnn_cascade.output_model"),
    (lambda c: c["models"]["cnn"].__setitem__("architecture", "output"), "models.cnn.window"),
    (lambda c: c["models"]["proposal"].__setitem__("window", 48), "models.proposal.window"),
    (lambda c: c["variants"].pop("original"), "variants.original"),
    (lambda c: c["variants"].__setitem__("original", dict(c["variants"]["cartoon"])),
     "variants.original"),
])
def test_errors_name_the_key(default_config, mutate, key):
    config = copy.deepcopy(default_config)
    mutate(config)
    with pytest.raises(ConfigError) as error:
        validate_config(config, source="my.yaml")
    assert f"{key}:" in str(error.value) and "my.yaml" in str(error.value)


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("!!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="evil.yaml"):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="none.yaml"):
        load_config(tmp_path / "none.yaml")

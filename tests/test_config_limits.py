"""Values that cannot be meant are refused before anything runs, naming the key: NaN and
infinity, pyramid steps that make no progress, huge integers, YAML alias bombs, and cascade
paths that OpenCV cannot load."""

from __future__ import annotations

import copy
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import (
    DEFAULT_CONFIG_PATH,
    MAX_EXPANDED_VALUES,
    SCHEMA_PATH,
    ConfigError,
    deep_merge,
    expanded_size,
    load_config,
    load_yaml,
    resolve_data_paths,
    validate_config,
    validate_section,
)
from pipeline.detection.detectors.haar import cascade_path

CONFIG = Path(__file__).resolve().parents[1] / "config"
NAN, INF = float("nan"), float("inf")


def config_error(config: dict[str, Any]) -> str:
    """The message of the :class:`ConfigError` that ``validate_config`` raises."""
    with pytest.raises(ConfigError) as error:
        validate_config(config, source="my.yaml")
    assert "my.yaml" in str(error.value)
    return str(error.value)


def mutated(config: dict[str, Any], keys: str, value: Any) -> dict[str, Any]:
    """A copy of ``config`` with the dotted ``keys`` (list indices as numbers) set."""
    config = copy.deepcopy(config)
    *parents, last = [int(k) if k.isdigit() else k for k in keys.split(".")]
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    return config


def write(tmp_path: Path, text: str, name: str = "overlay.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def alias_bomb(levels: int = 9, leaf: str = "x") -> str:
    """Billion laughs: lists a, b, ... i, each of nine ``leaf`` (a) or of nine aliases to the
    list before it: 9**levels leaves."""
    names = "abcdefghi"[:levels]
    lines = [f"{names[0]}: &{names[0]} [{', '.join([leaf] * 9)}]"]
    lines += [f"{name}: &{name} [{', '.join([f'*{below}'] * 9)}]"
              for below, name in zip(names[:-1], names[1:], strict=True)]
    return "\n".join(lines) + "\n"


# --- 1. NaN and infinity ------------------------------------------------------------------

@pytest.mark.parametrize("keys, value, text", [
    ("evaluation.iou_threshold", NAN, "NaN"),
    ("variants.shadow.strength", NAN, "NaN"),
    ("shadow_sweep.strengths.1", INF, "infinity"),
    ("models.cnn.learning_rate", INF, "infinity"),
    ("evaluation.min_face_size", -INF, "-infinity"),
    ("variants.cartoon.outline_high", NAN, "NaN"),
])
def test_non_finite_numbers_are_refused_naming_the_key(default_config, keys, value, text):
    message = config_error(mutated(default_config, keys, value))
    assert f"{keys}: {text} is not a finite number" in message
    assert message.count(f"{keys}:") == 1  # not also the schema's own complaint


def test_non_finite_numbers_in_a_yaml_file(tmp_path):
    path = write(tmp_path, "evaluation: {iou_threshold: .nan}\n"
                           "variants: {shadow: {strength: .NaN, offset: -.inf}}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message
    assert "evaluation.iou_threshold: NaN is not a finite number" in message
    assert "variants.shadow.strength: NaN is not a finite number" in message
    assert "variants.shadow.offset: -infinity is not a finite number" in message


def test_non_finite_numbers_in_a_section(default_config):
    settings = dict(default_config["detectors"]["cnn"], score_threshold=NAN)
    with pytest.raises(ConfigError) as error:
        validate_section(settings, "detectors.*", "--settings")
    assert "detectors.<name>.score_threshold: NaN is not a finite number" in str(error.value)
    with pytest.raises(ConfigError) as error:
        validate_section(dict(default_config["evaluation"], iou_threshold=NAN), "evaluation")
    assert "evaluation.iou_threshold: NaN is not a finite number" in str(error.value)


# --- 2. Pyramid steps that make no progress -----------------------------------------------

@pytest.mark.parametrize("keys", [
    "detectors.haar.scale_factor", "detectors.haar_trained.scale_factor",
    "detectors.cnn.scale_factor", "detectors.cnn_cascade.scale_factor",
    "cascades.haar_trained.mining_scale_factor",
])
@pytest.mark.parametrize("value", [1.000001, 1.005])
def test_pyramid_steps_below_1_01_are_refused(default_config, keys, value):
    message = config_error(mutated(default_config, keys, value))
    assert f"{keys}: {value} is less than the minimum of 1.01" in message


def test_a_pyramid_step_of_1_01_is_accepted(default_config):
    config = copy.deepcopy(default_config)
    for detector in config["detectors"].values():
        detector["scale_factor"] = 1.01
    config["cascades"]["haar_trained"]["mining_scale_factor"] = 1.01
    validate_config(config)


@pytest.mark.parametrize("value, text", [
    (0.999999, "0.999999 is greater than the maximum of 0.99"),
    (0.01, "0.01 is less than the minimum of 0.1"),
])
def test_mtcnn_shrink_factor_is_bounded_away_from_1_and_0(value, text):
    settings = load_yaml(CONFIG / "research.yaml")["detectors"]["mtcnn"]
    assert settings["scale_factor"] == 0.709
    validate_section(settings, "detectors.*", "mtcnn")
    with pytest.raises(ConfigError) as error:
        validate_section(dict(settings, scale_factor=value), "detectors.*", "mtcnn")
    assert f"detectors.<name>.scale_factor: {text}" in str(error.value)


def _schema_keys(node: Any, name: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(key, its schema) of every property anywhere in the schema."""
    found = []
    if isinstance(node, dict):
        for key, child in node.items():
            if isinstance(child, dict) and "type" in child:
                found.append((key, child))
            found += _schema_keys(child, key)
    elif isinstance(node, list):
        for child in node:
            found += _schema_keys(child, name)
    return found


def test_every_scale_factor_in_the_schema_is_bounded_away_from_1():
    factors = [(key, spec) for key, spec in _schema_keys(load_yaml(SCHEMA_PATH))
               if key.endswith("scale_factor")]
    assert len(factors) == 6  # haar, cnn_cascade, cnn, mtcnn, cascades' and models' mining
    for key, spec in factors:
        assert spec.get("minimum", 0) >= 1.01 or spec.get("maximum", 1) <= 0.99, (key, spec)


# --- 3. Huge integers ---------------------------------------------------------------------

OUT_OF_RANGE = "is out of range (integers are at most 2147483647 in absolute value)"


@pytest.mark.parametrize("keys, value, text", [
    ("datasets.embedded.n_scenes", 10**23, OUT_OF_RANGE),
    ("statistics.bootstrap_samples", 10**13, OUT_OF_RANGE),
    ("statistics.bootstrap_samples", 2_000_000, "is greater than the maximum of 1000000"),
    ("datasets.embedded.n_scenes", 1_000_000, "is greater than the maximum of 100000"),
    ("variants.shadow.seed", 2**31, OUT_OF_RANGE),
    ("variants.cartoon.seed", -(2**40), OUT_OF_RANGE),
    ("evaluation.false_positive_points.2", 10**12, OUT_OF_RANGE),
    ("models.cnn.epochs", 100_000, "is greater than the maximum of 1000"),
    ("models.cnn.negatives_per_round", 10**7, "is greater than the maximum of 1000000"),
    ("cascades.haar_trained.max_stages", 1000, "is greater than the maximum of 100"),
    ("cascades.haar_trained.max_features", 10**8, "is greater than the maximum of 10000000"),
    ("datasets.embedded.scene_size.0", 100_000, "is greater than the maximum of 8192"),
    ("execution.detection_shards", 10**6, "is greater than the maximum of 10000"),
])
def test_huge_integers_are_refused_naming_the_key(default_config, keys, value, text):
    message = config_error(mutated(default_config, keys, value))
    assert f"{keys}: {value} {text}" in message
    assert message.count(f"{keys}:") == 1


def test_huge_integers_in_a_yaml_file_and_a_section(tmp_path, default_config):
    path = write(tmp_path, "datasets: {embedded: {n_scenes: 100000000000000000000000}}\n"
                           "statistics: {bootstrap_samples: 10000000000000}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(path) in str(error.value)
    assert "datasets.embedded.n_scenes: 100000000000000000000000 is out of range" in str(
        error.value)
    assert "statistics.bootstrap_samples: 10000000000000 is out of range" in str(error.value)
    with pytest.raises(ConfigError, match=r"statistics\.bootstrap_samples: 10000000000000 is "):
        validate_section(dict(default_config["statistics"], bootstrap_samples=10**13),
                         "statistics")


def test_an_integer_too_long_to_read_names_the_file(tmp_path):
    path = write(tmp_path, "statistics: {seed: " + "9" * 5000 + "}\n")
    with pytest.raises(ConfigError, match="overlay.yaml: not valid YAML"):
        load_yaml(path)


def test_every_integer_setting_has_a_maximum_unless_none_is_natural():
    """Seeds and false-positive counts have only the generic 2**31 - 1 backstop."""
    unbounded = {key for key, spec in _schema_keys(load_yaml(SCHEMA_PATH))
                 if "integer" in spec["type"] and "maximum" not in spec and "enum" not in spec}
    assert unbounded <= {"seed", "items", "fp_for_summary"}
    items = load_yaml(SCHEMA_PATH)["properties"]["evaluation"]["properties"]
    assert "maximum" not in items["false_positive_points"]["items"]


@pytest.mark.parametrize("overlays", [
    ["research.yaml"], ["fddb.yaml"], ["wider.yaml"], ["research.yaml", "output_stage.yaml"],
    ["architectures.yaml"],
])
def test_shipped_configurations_are_within_the_bounds(overlays):
    config = load_yaml(DEFAULT_CONFIG_PATH)
    for name in overlays:
        config = deep_merge(config, load_yaml(CONFIG / name))
    validate_config(config, source=" + ".join(overlays))


# --- 4. YAML alias bombs ------------------------------------------------------------------

def test_an_alias_bomb_file_is_refused_quickly(tmp_path):
    path = write(tmp_path, alias_bomb() + "statistics: {bootstrap_samples: *i}\n", "bomb.yaml")
    start = time.perf_counter()
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert time.perf_counter() - start < 5
    assert f"{path}: expands to more than 100,000 values" in str(error.value)


def test_an_alias_bomb_in_a_loaded_config_names_its_top_level_key(default_config):
    """As Snakemake passes validate_config a --configfile it loaded itself: the size is
    checked before jsonschema walks (and reprs) the data."""
    bomb = yaml.safe_load(alias_bomb())["i"]
    assert expanded_size(bomb) > 9**9
    start = time.perf_counter()
    message = config_error(mutated(default_config, "shadow_sweep.strengths", bomb))
    assert "shadow_sweep: expands to more than 100,000 values" in message
    with pytest.raises(ConfigError, match="shadow_sweep.strengths: expands to more than"):
        validate_section({"variant": "shadow", "strengths": bomb}, "shadow_sweep")
    assert time.perf_counter() - start < 5


def test_aliases_of_a_long_string_count_by_length(tmp_path):
    text = f"s: &s {'x' * 10000}\n" + alias_bomb(4, leaf="*s")  # 6561 copies: 65 MB
    with pytest.raises(ConfigError, match="strings.yaml: expands to more than"):
        load_yaml(write(tmp_path, text, "strings.yaml"))


def test_a_recursive_alias_is_refused(tmp_path):
    path = write(tmp_path, "report: &r {example_images: 2, again: *r}\n", "loop.yaml")
    with pytest.raises(ConfigError, match="loop.yaml: expands to more than"):
        load_yaml(path)


def test_research_anchors_still_load_and_are_far_below_the_bound():
    research = load_yaml(CONFIG / "research.yaml")
    models, cascades = research["models"], research["cascades"]
    assert models["cnn_lit"]["illumination"] is cascades["haar_lit"]["illumination"]
    assert models["cnn"]["box_regression"] is models["cnn_cartoon"]["box_regression"]
    assert research["datasets"]["louie_train"]["sources"][3]["images"].endswith("tommy")
    merged = deep_merge(load_yaml(DEFAULT_CONFIG_PATH), research)
    validate_config(merged, source="research.yaml")
    assert expanded_size(merged) < MAX_EXPANDED_VALUES / 100


# --- 5. Cascade paths that are not cascades -----------------------------------------------

@pytest.mark.parametrize("content", [
    b"root:x:0:0:root:/root:/bin/bash\n",
    b"<?xml version=\"1.0\"?>\n<opencv_storage>\n</opencv_storage>\n",
    bytes(range(256)),
    b"",
])
def test_a_file_that_is_not_a_cascade_is_refused(default_config, tmp_path, content):
    path = tmp_path / "not_a_cascade.xml"
    path.write_bytes(content)
    config = mutated(default_config, "detectors.haar.cascade", str(path))
    with pytest.raises(ConfigError) as error:
        resolve_data_paths(config)
    assert (f"detectors.haar.cascade: {path} is not an OpenCV cascade XML (OpenCV could not "
            "load it)") in str(error.value)


def test_etc_passwd_is_not_a_cascade(default_config):
    if not Path("/etc/passwd").is_file():
        pytest.skip("no /etc/passwd here")
    config = mutated(default_config, "detectors.haar.cascade", "/etc/passwd")
    with pytest.raises(ConfigError, match="detectors.haar.cascade: /etc/passwd is not an "
                                          "OpenCV cascade XML"):
        resolve_data_paths(config)


def test_real_cascade_files_and_bundled_names_pass(default_config, tmp_path):
    copied = tmp_path / "mine.xml"
    shutil.copy(cascade_path("alt2"), copied)
    config = mutated(default_config, "detectors.haar.cascade", str(copied))
    resolve_data_paths(config)
    for name in ("default", "alt", "alt2", "alt_tree"):
        resolve_data_paths(mutated(default_config, "detectors.haar.cascade", name))

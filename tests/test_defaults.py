"""Defaults once: the schema's ``default:`` values, filled in when a configuration loads or a
stage gets its settings (pipeline.defaults)."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from pipeline.config import SCHEMA_PATH, load_config, load_yaml, validate_section
from pipeline.defaults import apply_defaults, with_defaults

SCHEMA = load_yaml(SCHEMA_PATH)

TINY = {
    "$defs": {"unit": {"type": "string", "default": "image"}},
    "type": "object",
    "properties": {
        "things": {"type": "object", "additionalProperties": {
            "type": "object", "properties": {"kind": {"enum": ["a", "b"]}},
            "allOf": [
                {"if": {"properties": {"kind": {"const": "a"}}},
                 "then": {"properties": {"size": {"type": "integer", "default": 3},
                                         "unit": {"$ref": "#/$defs/unit"}}}},
                {"if": {"properties": {"kind": {"const": "b"}}},
                 "then": {"properties": {
                     "rule": {"type": "object", "properties": {
                         "patience": {"type": "integer"},
                         "delta": {"type": "number", "default": 0.0}}}}}}]}},
        "shares": {"type": "object", "default": {}},
        "points": {"type": "array", "items": {"type": "object", "properties": {
            "w": {"type": "number", "default": 1.0}}}},
    },
}


def test_defaults_fill_each_kind_its_own_and_leave_given_values():
    config = {"things": {"x": {"kind": "a"}, "y": {"kind": "a", "size": 7}, "z": {"kind": "b"},
                         "w": {"kind": "b", "rule": {"patience": 2}}},
              "points": [{}, {"w": 2.0}]}
    apply_defaults(config, TINY, TINY["$defs"])
    assert config == {
        "things": {"x": {"kind": "a", "size": 3, "unit": "image"},
                   "y": {"kind": "a", "size": 7, "unit": "image"},
                   "z": {"kind": "b"},  # an optional object absent stays absent
                   "w": {"kind": "b", "rule": {"patience": 2, "delta": 0.0}}},
        "shares": {}, "points": [{"w": 1.0}, {"w": 2.0}]}
    config["shares"]["mine"] = "other"
    assert TINY["properties"]["shares"]["default"] == {}  # a copy, not the schema's own


def _defaults(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(where, subschema) of every subschema with a ``default`` in the schema."""
    found = []
    if isinstance(node, dict):
        if "default" in node and isinstance(node.get("type", node.get("enum")), (str, list)):
            found.append((path, node))
        for key, value in node.items():
            found += _defaults(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _defaults(value, f"{path}[{index}]")
    return found


def test_every_default_in_the_schema_is_a_valid_value_of_its_key():
    found = _defaults(SCHEMA)
    assert len(found) >= 15
    for where, node in found:
        schema = {"$defs": SCHEMA["$defs"], **{k: v for k, v in node.items() if k != "default"}}
        assert jsonschema.Draft202012Validator(schema).is_valid(node["default"]), where


def test_a_loaded_configuration_holds_every_default():
    config = load_config()
    assert config["evaluation"]["criterion"] == "iou"
    assert config["evaluation"]["min_face_size"] is None
    assert config["statistics"]["cross_set_shares"] == {}
    assert config["datasets"]["embedded"]["evaluate"] is True
    assert config["datasets"]["embedded"]["resample_unit"] == "image"
    assert config["detectors"]["cnn_cascade"]["tile_size"] == 1024
    assert config["variants"]["original"]["seed"] == 0


def test_the_code_s_constants_are_the_schema_s_defaults():
    """Library functions keep keyword defaults for calls without settings; they must be the
    schema's, so that a stage and a direct call agree."""
    from pipeline.detection.detectors.cnn import SOFT_NMS_SIGMA, CnnDetector
    from pipeline.models.cnn_scoring import TILE_SIZE

    filled = with_defaults({"kind": "cnn"}, "detectors.*")
    assert filled["tile_size"] == TILE_SIZE and filled["nms_sigma"] == SOFT_NMS_SIGMA
    assert filled["nms_method"] == CnnDetector.nms_method


def test_a_stage_s_settings_get_their_defaults_when_checked():
    settings = copy.deepcopy(load_config()["evaluation"])
    for key in ("criterion", "landmark_size_factor", "min_face_size"):
        del settings[key]
    validate_section(settings, "evaluation")
    assert settings["criterion"] == "iou" and settings["landmark_size_factor"] == 2.0


@pytest.mark.parametrize("kind, key", [("face_folders", "evaluate"), ("yale_b", "evaluate")])
def test_dataset_defaults_depend_on_the_kind(kind, key):
    assert with_defaults({"kind": kind}, "datasets.*")[key] is (kind != "face_folders")

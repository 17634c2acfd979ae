"""Defaults, read from the schema: every optional setting's ``default:`` in
``config/schema.yaml`` is its one definition, filled in when a configuration loads
(:func:`pipeline.config.validate_config`) or a stage gets its settings
(:func:`pipeline.config.validate_section`, :func:`pipeline.config.with_defaults`)."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"


@functools.cache
def _schema() -> dict[str, Any]:
    """``config/schema.yaml``, read once (the project's own file: plain ``safe_load``)."""
    with open(SCHEMA_PATH) as handle:
        return yaml.safe_load(handle)


def section_schema(section: str) -> dict[str, Any]:
    """The part of the schema for ``section``: a top-level key (``evaluation``) or an entry of
    a named collection (``detectors.*``: any one detector); a fresh copy."""
    schema = _schema()
    top, _, entry = section.partition(".")
    node = schema["properties"][top]
    if entry:
        node = node["additionalProperties"]
    return copy.deepcopy({"$defs": schema["$defs"], **node})


def with_defaults(settings: dict[str, Any], section: str) -> dict[str, Any]:
    """A copy of one stage's ``settings`` with the defaults of its part of the schema filled
    in (for stage functions called from Python with settings that may omit them)."""
    schema = section_schema(section)
    return apply_defaults(copy.deepcopy(settings), schema, schema["$defs"])


def apply_defaults(instance: Any, schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """``instance`` with, in place, every key that ``schema`` gives a ``default`` and the
    instance lacks: in objects' ``properties``, in the entries of named collections
    (``additionalProperties``), in list items, and in the ``then`` block of each ``allOf``
    ``if`` the instance matches (the block of its ``kind``); ``$ref`` resolved in ``defs``.
    Call it on a valid instance."""
    schema = _resolved(schema, defs)
    if isinstance(instance, dict):
        properties = schema.get("properties", {})
        for key, child in properties.items():
            child = _resolved(child, defs)
            if key not in instance and "default" in child:
                instance[key] = copy.deepcopy(child["default"])
            if key in instance:
                apply_defaults(instance[key], child, defs)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, value in instance.items():
                if key not in properties:
                    apply_defaults(value, extra, defs)
        for block in schema.get("allOf", []):
            test = {"$defs": defs, **block.get("if", {})}
            if "then" in block and jsonschema.Draft202012Validator(test).is_valid(instance):
                apply_defaults(instance, block["then"], defs)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            apply_defaults(item, schema["items"], defs)
    return instance


def _resolved(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a local ``$ref`` (``#/$defs/NAME``) replaced by its target, keys
    written beside the ``$ref`` winning."""
    reference = schema.get("$ref")
    if not reference:
        return schema
    target = _resolved(defs[reference.removeprefix("#/$defs/")], defs)
    return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}

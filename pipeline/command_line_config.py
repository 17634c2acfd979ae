"""Values given on Snakemake's command line, typed as the schema asks.

``snakemake --config seeds=[0,1]`` reads a list with YAML's base loader, so its items arrive as
text (``['0', '1']``); a number, a boolean or a null inside a list or mapping does too. Under
the keys given with ``--config`` only, where the schema asks for an integer, a number, a
boolean or null and the text spells exactly one, the value is replaced by it; anything else is
left for validation to report. Values read from config files keep their YAML types.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema

from pipeline.config import SCHEMA_PATH, load_yaml
from pipeline.config_limits import StrictValidator, oversized_key

_WORDS = {"true": True, "false": False, "null": None}
_UNTYPED = object()


def _typed(text: str, wanted: list[str]) -> Any:
    """``text`` as the first of ``wanted`` JSON types it spells exactly, else ``_UNTYPED``."""
    for kind in wanted:
        try:
            if kind == "integer":
                return int(text)
            if kind == "number":
                return float(text)
        except ValueError:
            continue
        word = _WORDS.get(text.lower(), _UNTYPED)
        if (kind == "boolean" and isinstance(word, bool)) or (kind == "null" and word is None):
            return word
    return _UNTYPED


def _all_errors(errors: Any) -> Iterator[jsonschema.ValidationError]:
    """The errors and, below each (a ``oneOf`` or ``anyOf``), its alternatives' errors."""
    for error in errors:
        yield error
        yield from _all_errors(error.context or [])


def _given(path: tuple[Any, ...], given: Mapping[str, Any]) -> bool:
    """Whether ``path`` lies under a key of ``given`` (the ``--config`` entries, nested)."""
    node: Any = given
    for key in path:
        if not isinstance(node, Mapping):
            return True  # inside a list or value given whole
        if key not in node:
            return False
        node = node[key]
    return True


def typed_command_line_values(config: dict[str, Any], given: Mapping[str, Any]) -> list[str]:
    """Type, in place, each text value of ``config`` under the keys of ``given`` (Snakemake's
    ``--config`` entries) where the schema asks for an integer, number, boolean or null;
    return the dotted keys changed. A config too large to walk is left to validation."""
    if not given or oversized_key(config, ()) is not None:
        return []
    validator = StrictValidator(load_yaml(SCHEMA_PATH))
    changed: list[str] = []
    while True:
        fixes = []
        for error in _all_errors(validator.iter_errors(config)):
            path = tuple(error.absolute_path)
            name = ".".join(map(str, path))
            if (error.validator != "type" or not isinstance(error.instance, str) or not path
                    or name in changed or not _given(path, given)):
                continue
            wanted = error.validator_value
            value = _typed(error.instance, [wanted] if isinstance(wanted, str) else wanted)
            if value is not _UNTYPED:
                fixes.append((path, name, value))
        if not fixes:
            return changed
        for path, name, value in fixes:
            parent = config
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = value
            changed.append(name)

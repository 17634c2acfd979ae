"""Values given on Snakemake's command line, typed as the schema asks.

``snakemake --config seeds=[0,1]`` reads a list with YAML's base loader, so its items arrive as
text (``['0', '1']``); a number or a boolean inside a list or mapping does too. Where the schema
asks for an integer, a number or a boolean and the text spells exactly one, the value is
replaced by it; anything else is left for validation to report.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema

from pipeline.config import SCHEMA_PATH, load_yaml
from pipeline.config_limits import StrictValidator

_BOOLEANS = {"true": True, "false": False}


def _typed(text: str, wanted: list[str]) -> Any:
    """``text`` as the first of ``wanted`` types it spells exactly, else None."""
    for kind in wanted:
        try:
            if kind == "integer":
                return int(text)
            if kind == "number":
                return float(text)
        except ValueError:
            continue
        if kind == "boolean" and text.lower() in _BOOLEANS:
            return _BOOLEANS[text.lower()]
    return None


def _all_errors(errors: Any) -> Iterator[jsonschema.ValidationError]:
    """The errors and, below each (a ``oneOf`` or ``anyOf``), its alternatives' errors."""
    for error in errors:
        yield error
        yield from _all_errors(error.context or [])


def typed_command_line_values(config: dict[str, Any]) -> list[str]:
    """Type, in place, every text value of ``config`` where the schema asks for an integer,
    number or boolean; return the dotted keys changed (for the log)."""
    validator = StrictValidator(load_yaml(SCHEMA_PATH))
    changed: list[str] = []
    while True:
        fixes = []
        for error in _all_errors(validator.iter_errors(config)):
            wanted = error.validator_value if error.validator == "type" else None
            if isinstance(error.instance, str) and wanted is not None:
                wanted = [wanted] if isinstance(wanted, str) else list(wanted)
                value = _typed(error.instance, wanted)
                path = tuple(error.absolute_path)
                if value is not None and path and ".".join(map(str, path)) not in changed:
                    fixes.append((path, value))
        if not fixes:
            return changed
        for path, value in fixes:
            parent = config
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = value
            changed.append(".".join(map(str, path)))

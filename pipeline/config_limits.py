"""Bounds every configuration value must keep, whatever its key: no NaN or infinity, no
integer beyond 32 bits, no float where the schema says integer (:data:`StrictValidator`), and
no YAML alias bomb (a block repeated by aliases until the loaded data, walked, would take
minutes and gigabytes)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import jsonschema


def _is_integer(_checker: Any, instance: Any) -> bool:
    """JSON Schema's ``integer`` admits 6.0; here a count must be written as an integer."""
    return isinstance(instance, int) and not isinstance(instance, bool)


# Draft 2020-12 with a strict ``integer`` type: ``n_scenes: 6.0`` is an error, not a float
# that crashes a stage later.
StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


# Values a configuration may expand to, counting every repeat of a YAML alias (research.yaml
# merged over the default: about 460): a bound on "billion laughs" alias bombs.
MAX_EXPANDED_VALUES = 100_000
# The backstop on every integer setting: no count, size or seed here needs more than 32 bits.
MAX_INTEGER = 2**31 - 1


def expanded_size(node: Any, sizes: dict[int, int | None] | None = None) -> int:
    """How many values ``node`` holds, a container shared by YAML aliases counted wherever it
    appears, a string as one value per 100 characters: linear time (``sizes`` memoises by
    ``id``); a container inside itself counts as more than :data:`MAX_EXPANDED_VALUES`."""
    if isinstance(node, str | bytes):
        return 1 + len(node) // 100
    if not isinstance(node, dict | list):
        return 1
    sizes = {} if sizes is None else sizes
    if id(node) in sizes:
        known = sizes[id(node)]
        return MAX_EXPANDED_VALUES + 1 if known is None else known
    sizes[id(node)] = None  # in progress: met again below, it contains itself
    children = node.values() if isinstance(node, dict) else node
    sizes[id(node)] = size = 1 + sum(expanded_size(child, sizes) for child in children)
    return size


TOO_LARGE = f"expands to more than {MAX_EXPANDED_VALUES:,} values (YAML aliases repeating a block?)"


def oversized_key(instance: Any, prefix: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The key path (the largest key under ``prefix``) of an ``instance`` that expands past
    :data:`MAX_EXPANDED_VALUES`, else None: check it before anything else walks it."""
    sizes: dict[int, int | None] = {}
    if expanded_size(instance, sizes) <= MAX_EXPANDED_VALUES:
        return None
    if isinstance(instance, dict) and instance:
        return (*prefix, max(instance, key=lambda k: expanded_size(instance[k], sizes)))
    return prefix


def value_errors(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(key path, message) of every non-finite number and every integer larger than
    :data:`MAX_INTEGER` in absolute value in ``node``, whatever its key."""
    if isinstance(node, dict | list):
        for key, child in (node.items() if isinstance(node, dict) else enumerate(node)):
            yield from value_errors(child, (*path, key))
    elif isinstance(node, float) and not math.isfinite(node):
        name = "NaN" if math.isnan(node) else "infinity" if node > 0 else "-infinity"
        yield path, f"{name} is not a finite number"
    elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > MAX_INTEGER:
        yield path, (f"{node} is out of range (integers are at most {MAX_INTEGER} in "
                     "absolute value)")

"""The configuration reference (docs/configuration.md), generated from config/schema.yaml.

``python -m pipeline.config_reference`` writes it; ``--check`` exits 1 when the file differs from
what the schema gives (tests/test_config_reference.py keeps the two in step).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipeline.config import SCHEMA_PATH, load_yaml

DOC_PATH = SCHEMA_PATH.parents[1] / "docs" / "configuration.md"
COMMAND = "python -m pipeline.config_reference"
NAME = "<name>"  # in a key path: a name the user chooses (an entry of a named collection)
ITEM = "[]"  # in a key path: any item of a list
COLUMNS = ("key", "type", "required", "default", "allowed", "description")
NONE = "—"

Schema = dict[str, Any]
Row = tuple[str, str, str, str, str, str]
Subsection = tuple[str, list[Row]]


def _resolve(node: Any, root: Schema) -> Any:
    """``node`` with its ``$ref`` (``#/...`` in ``root``) replaced by the target; siblings win."""
    seen: set[str] = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/") or ref in seen:
            raise ValueError(f"cannot resolve $ref {ref!r} (only acyclic '#/...' pointers)")
        seen.add(ref)
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = {**target, **{key: value for key, value in node.items() if key != "$ref"}}
    return node


def _text(text: Any) -> str:
    """``text`` on one line, runs of whitespace as one space."""
    return " ".join(str(text).split())


def _code(text: str) -> str:
    """``text`` as a Markdown code span."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _plain(value: Any) -> str:
    """A schema value (enum member, const, default) as text: strings bare, the rest as JSON."""
    plain = isinstance(value, str) and value != "" and value == value.strip()
    return value if plain else json.dumps(value)


def _json_type(value: Any) -> str:
    """The JSON Schema type name of a value."""
    kinds = ((type(None), "null"), (bool, "boolean"), (int, "integer"), (float, "number"),
             (str, "string"), (list, "array"), (dict, "object"))
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


def _type(node: Any, root: Schema) -> str:
    """The type column: JSON types joined by "or", arrays as "array of T"."""
    node = _resolve(node, root)
    if "enum" in node or "const" in node:
        values = node["enum"] if "enum" in node else [node["const"]]
        return " or ".join(dict.fromkeys(_json_type(value) for value in values))
    types = node.get("type")
    if types is None:
        types = ("object" if "properties" in node or "additionalProperties" in node
                 else "array" if "items" in node else "any")
    items = node.get("items")
    array = f"array of {_type(items, root)}" if isinstance(items, dict) else "array"
    names = [types] if isinstance(types, str) else types
    return " or ".join(array if name == "array" else name for name in names)


def _bounds(node: Schema) -> str:
    """Numeric bounds as ``low ≤ x < high``, ``x ≥ low``, ..."""
    low = (("≤", node["minimum"]) if "minimum" in node
           else ("<", node["exclusiveMinimum"]) if "exclusiveMinimum" in node else None)
    high = (("≤", node["maximum"]) if "maximum" in node
            else ("<", node["exclusiveMaximum"]) if "exclusiveMaximum" in node else None)
    if low and high:
        return f"{json.dumps(low[1])} {low[0]} x {high[0]} {json.dumps(high[1])}"
    if low:
        return f"x {'≥' if low[0] == '≤' else '>'} {json.dumps(low[1])}"
    return f"x {high[0]} {json.dumps(high[1])}" if high else ""


def _count(node: Schema, word: str, noun: str) -> str:
    """A ``min<word>``/``max<word>`` pair as text, e.g. ``exactly 2 items``."""
    low, high = node.get(f"min{word}"), node.get(f"max{word}")
    if low is None:
        return "" if high is None else f"≤ {high} {noun}"
    if high is None:
        return f"≥ {low} {noun}"
    return f"exactly {low} {noun}" if low == high else f"{low}–{high} {noun}"


def _allowed(node: Any, root: Schema) -> str:
    """The allowed column: const, enum, bounds, sizes, patterns, and the same for list items."""
    node = _resolve(node, root)
    parts = []
    if "const" in node:
        parts.append(f"must be {_code(_plain(node['const']))}")
    if "enum" in node:
        parts.append("one of " + ", ".join(_code(_plain(value)) for value in node["enum"]))
    parts += [_bounds(node), _count(node, "Length", "characters"), _count(node, "Items", "items"),
              _count(node, "Properties", "entries")]
    if "pattern" in node:
        parts.append(f"matches {_code(node['pattern'])}")
    names = node.get("propertyNames")
    if isinstance(names, dict) and "pattern" in names:
        parts.append(f"names match {_code(names['pattern'])}")
    if isinstance(node.get("items"), dict) and (each := _allowed(node["items"], root)) != NONE:
        parts.append(f"each {each}")
    return "; ".join(part for part in parts if part) or NONE


def _groups(node: Schema) -> dict[str, str]:
    """Required-column text for keys that a ``oneOf``/``anyOf`` of ``required`` lists asks for."""
    labels: dict[str, str] = {}
    for word, keyword in (("exactly one of", "oneOf"), ("at least one of", "anyOf")):
        branches = node.get(keyword, [])
        if branches and all(set(branch) == {"required"} for branch in branches):
            text = f"{word} " + ", ".join(" + ".join(_code(key) for key in branch["required"])
                                          for branch in branches)
            for branch in branches:
                for key in branch["required"]:
                    labels.setdefault(key, text)
    return labels


def _row(path: str, node: Any, root: Schema, required: str) -> Row:
    """One table row of the key at ``path``."""
    node = _resolve(node, root)
    default = _code(_plain(node["default"])) if "default" in node else NONE
    return (_code(path), _type(node, root), required, default, _allowed(node, root),
            _text(node.get("description", "")))


def _walk(path: str, node: Any, root: Schema, required: str, rows: list[Row],
          subsections: list[Subsection]) -> None:
    """The row of ``path`` and the rows (and kind subsections) of what it holds."""
    rows.append(_row(path, node, root, required))
    _children(path, _resolve(node, root), root, rows, subsections)


def _children(prefix: str, node: Schema, root: Schema, rows: list[Row],
              subsections: list[Subsection]) -> None:
    """Rows of the keys under ``prefix``: properties, named entries (``<name>``), list items
    (``[]``); one subsection per ``if: {properties: {K: {const: V}}} then:`` block."""
    required, groups = node.get("required", []), _groups(node)
    for key, child in node.get("properties", {}).items():
        status = "required" if key in required else groups.get(key, "optional")
        _walk(f"{prefix}.{key}", child, root, status, rows, subsections)
    entry = _resolve(node.get("additionalProperties"), root)
    if isinstance(entry, dict):
        if "properties" in entry or "allOf" in entry:
            _children(f"{prefix}.{NAME}", entry, root, rows, subsections)
        else:
            _walk(f"{prefix}.{NAME}", entry, root, "optional", rows, subsections)
    items = _resolve(node.get("items"), root)
    if isinstance(items, dict):
        _children(f"{prefix}{ITEM}", items, root, rows, subsections)
    for block in node.get("allOf", []):
        if not ("if" in block and "then" in block):
            continue
        condition = block["if"].get("properties", {})
        picks = [f"{key}: {_text(_plain(value['const']))}" for key, value in condition.items()
                 if isinstance(value, dict) and "const" in value]
        when = ", ".join(picks) if picks else _text(json.dumps(block["if"], sort_keys=True))
        kind_rows: list[Row] = []
        subsections.append((f"{_code(prefix)} with {_code(when)}", kind_rows))
        then = _resolve(block["then"], root)  # the entry's own required keys hold in every kind
        then = {**then, "required": [*required, *then.get("required", [])]}
        _children(prefix, then, root, kind_rows, subsections)


def _table(rows: list[Row]) -> list[str]:
    """Markdown table lines (``|`` in cells escaped), then a blank line."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for row in rows:
        cells = [" " + cell.replace("|", "\\|") + " " if cell else " " for cell in row]
        lines.append("|" + "|".join(cells) + "|")
    return [*lines, ""]


def render(schema: Schema) -> str:
    """The Markdown reference of ``schema``: one section per top-level key, in schema order."""
    sections = list(schema.get("properties", {}))
    lines = [
        "# Configuration reference", "",
        "For anyone writing or reviewing a configuration file (config/*.yaml): every key the "
        "schema accepts, with its type, bounds and meaning.", "",
        f"Generated from config/schema.yaml by `{COMMAND}`; do not edit by hand.", "",
    ]
    if "description" in schema:
        lines += [_text(schema["description"]), ""]
    lines += [
        f"Keys are dotted paths; {_code(NAME)} stands for a name you choose, {_code(ITEM)} for "
        "each item of a list. A key marked required inside an optional object is required only "
        "when that object is given. Collections whose entries pick a kind list each kind's keys "
        "in a subsection of their own.", "",
        "Sections: " + ", ".join(f"[{_code(key)}](#{key.lower()})" for key in sections) + ".", "",
    ]
    required = schema.get("required", [])
    for key in sections:
        rows: list[Row] = []
        subsections: list[Subsection] = []
        status = "required" if key in required else "optional"
        _walk(key, schema["properties"][key], schema, status, rows, subsections)
        lines += [f"## {_code(key)}", "", *_table(rows)]
        for title, kind_rows in subsections:
            lines += [f"### {title}", "", *_table(kind_rows)]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the reference to ``--out``, or with ``--check`` report whether it is up to date."""
    parser = argparse.ArgumentParser(prog=COMMAND.removeprefix("python -m "),
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the file differs from what the schema gives")
    parser.add_argument("--out", type=Path, default=DOC_PATH,
                        help="the Markdown file (default: docs/configuration.md)")
    args = parser.parse_args(argv)
    text = render(load_yaml(SCHEMA_PATH))
    if args.check:
        if not args.out.is_file() or args.out.read_bytes() != text.encode("utf-8"):
            rerun = COMMAND if args.out == DOC_PATH else f"{COMMAND} --out {args.out}"
            print(f"{args.out} is out of step with config/schema.yaml; run `{rerun}` to "
                  "regenerate it", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""docs/configuration.md stays in step with config/schema.yaml (pipeline.config_reference)."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.config import SCHEMA_PATH, deep_merge, load_yaml
from pipeline.config_reference import DOC_PATH, main, render

CONFIG_DIR = SCHEMA_PATH.parent
REPO = SCHEMA_PATH.parents[1]


@pytest.fixture(scope="module")
def reference() -> str:
    return render(load_yaml(SCHEMA_PATH))


def row_keys(markdown: str) -> list[str]:
    """The key (first cell) of every table row."""
    return re.findall(r"^\| `([^`]+)` \|", markdown, flags=re.MULTILINE)


def table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| `")]


def leaf_paths(node: Any, path: str = "") -> Iterator[str]:
    """Dotted paths of a configuration's leaves; items of a list of mappings as ``[]``."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaf_paths(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list) and node and all(isinstance(item, dict) for item in node):
        for item in node:
            yield from leaf_paths(item, f"{path}[]")
    else:
        yield path


def documented(path: str, keys: list[str]) -> bool:
    """Whether a concrete path (``detectors.haar.scale_factor``) is a row of the reference
    (``detectors.<name>.scale_factor``)."""
    name = re.escape("<name>")
    return any(re.fullmatch(re.escape(key).replace(name, r"[A-Za-z][A-Za-z0-9_]*"), path)
               for key in keys)


def test_docs_are_in_step_with_the_schema(reference):
    assert DOC_PATH.read_text(encoding="utf-8") == reference, (
        "docs/configuration.md is out of step with config/schema.yaml: "
        "run `python -m pipeline.config_reference` and commit the result")


def test_render_is_deterministic_and_escapes_pipes(reference):
    schema = load_yaml(SCHEMA_PATH)
    assert render(copy.deepcopy(schema)) == reference
    haar_cascade = next(row for row in table_rows(reference)
                        if row.startswith("| `detectors.<name>.cascade` |"))
    assert "default \\| alt \\| alt2 \\| alt_tree" in haar_cascade
    for row in table_rows(reference):  # every row has its six cells, no stray pipe
        assert len(re.split(r"(?<!\\)\|", row)) == 8, row


@pytest.mark.parametrize("layers", [
    ["default.yaml"],
    ["default.yaml", "research.yaml"],
    ["default.yaml", "research.yaml", "output_stage.yaml"],
    ["default.yaml", "architectures.yaml"],
    ["default.yaml", "fddb.yaml"],
    ["default.yaml", "wider.yaml"],
])
def test_every_shipped_key_is_documented(reference, layers):
    config: dict[str, Any] = {}
    for layer in layers:
        config = deep_merge(config, load_yaml(CONFIG_DIR / layer))
    keys = row_keys(reference)
    paths = sorted(set(leaf_paths(config)))
    assert len(paths) > 50
    missing = [path for path in paths if not documented(path, keys)]
    assert not missing, f"keys of {' + '.join(layers)} with no row in the reference: {missing}"


def test_the_key_matcher_is_not_vacuous(reference):
    keys = row_keys(reference)
    assert documented("detectors.haar.scale_factor", keys)
    assert documented("datasets.mitcmu.sources[].annotations", keys)
    assert not documented("detectors.haar.scale_factr", keys)
    assert not documented("detectors.scale_factor", keys)


TINY: dict[str, Any] = {
    "description": "A tiny schema.",
    "type": "object",
    "required": ["shapes"],
    "properties": {
        "shapes": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "required": ["kind"],
                "properties": {"kind": {"enum": ["circle", "square"]}},
                "allOf": [
                    {"if": {"properties": {"kind": {"const": "circle"}}},
                     "then": {"additionalProperties": False,
                              "properties": {
                                  "kind": {"const": "circle"},
                                  "radius": {"type": "number", "exclusiveMinimum": 0,
                                             "maximum": 10, "default": 1.5,
                                             "description": "radius | diameter / 2"}}}},
                    {"if": {"properties": {"kind": {"const": "square"}}},
                     "then": {"additionalProperties": False, "required": ["kind", "side"],
                              "properties": {"kind": {"const": "square"},
                                             "side": {"$ref": "#/$defs/side"},
                                             "corners": {"type": "array", "minItems": 4,
                                                         "maxItems": 4,
                                                         "items": {"type": "boolean"}}}}},
                ],
            },
        },
        "mode": {"enum": ["fast", "slow"], "default": "fast"},
        "tags": {"type": "object", "additionalProperties": {"type": "string",
                                                            "pattern": "^[a-z]+$"}},
    },
    "$defs": {"side": {"type": ["integer", "null"], "minimum": 1, "maximum": 99,
                       "description": "edge length"}},
}


def test_known_answer_on_a_tiny_schema():
    text = render(TINY)
    assert "\nA tiny schema.\n" in text
    assert re.findall(r"^#+ .*$", text, flags=re.MULTILINE) == [
        "# Configuration reference",
        "## `shapes`",
        "### `shapes.<name>` with `kind: circle`",
        "### `shapes.<name>` with `kind: square`",
        "## `mode`",
        "## `tags`",
    ]
    assert table_rows(text) == [
        "| `shapes` | object | required | — | ≥ 1 entries | |",
        "| `shapes.<name>.kind` | string | required | — | one of `circle`, `square` | |",
        "| `shapes.<name>.kind` | string | required | — | must be `circle` | |",
        "| `shapes.<name>.radius` | number | optional | `1.5` | 0 < x ≤ 10 "
        "| radius \\| diameter / 2 |",
        "| `shapes.<name>.kind` | string | required | — | must be `square` | |",
        "| `shapes.<name>.side` | integer or null | required | — | 1 ≤ x ≤ 99 | edge length |",
        "| `shapes.<name>.corners` | array of boolean | optional | — | exactly 4 items | |",
        "| `mode` | string | optional | `fast` | one of `fast`, `slow` | |",
        "| `tags` | object | optional | — | — | |",
        "| `tags.<name>` | string | optional | — | matches `^[a-z]+$` | |",
    ]


def test_check_fails_on_a_stale_file_and_passes_on_a_fresh_one(tmp_path, capsys):
    out = tmp_path / "configuration.md"
    assert main(["--check", "--out", str(out)]) == 1  # missing
    out.write_text("# Configuration reference\n\nstale\n", encoding="utf-8")
    assert main(["--check", "--out", str(out)]) == 1
    assert "python -m pipeline.config_reference" in capsys.readouterr().err
    assert main(["--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render(load_yaml(SCHEMA_PATH))
    assert main(["--check", "--out", str(out)]) == 0


def test_check_from_the_command_line_exits_non_zero_on_a_stale_file(tmp_path):
    out = tmp_path / "configuration.md"
    out.write_text(DOC_PATH.read_text(encoding="utf-8") + "\nedited by hand\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.config_reference", "--check", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 1, result.stderr
    assert "out of step" in result.stderr and "pipeline.config_reference" in result.stderr
    assert out.read_text(encoding="utf-8").endswith("edited by hand\n")  # --check writes nothing

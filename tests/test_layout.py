"""The package mirrors the workflow: one subpackage per rules/*.smk file, each rule file calling
only its own subpackage's commands, shared primitives at the bottom, no import cycles."""

import ast
import re
from pathlib import Path

import pytest

from pipeline.cli import STAGES, build_parser

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pipeline"
RULE_FILES = sorted(p.stem for p in (REPO / "rules").glob("*.smk") if p.stem != "common")
# Modules every layer may import: they import no stage subpackage.
PRIMITIVES = {"pipeline.boxes", "pipeline.io", "pipeline.paths", "pipeline.commands"}
LARGEST_MODULE = 400  # lines


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> set[str]:
    """The pipeline modules ``path`` imports (at any depth, lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipeline"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pipeline")}
    return found & set(MODULES)


def rule_commands(stage: str) -> list[tuple[str, str]]:
    """(subpackage, command) of every ``python -m pipeline.<x> <command>`` in a rule file."""
    text = (REPO / "rules" / f"{stage}.smk").read_text()
    return re.findall(r"-m (pipeline(?:\.\w+)?) ([a-z-]+)", text)


def test_one_subpackage_per_rule_file():
    assert list(STAGES) == ["data", "training", "tuning", "detection", "evaluation", "report"]
    assert sorted(STAGES) == RULE_FILES
    for stage in STAGES:
        assert (PACKAGE / stage / "cli.py").is_file()
        assert (PACKAGE / stage / "__main__.py").is_file()


@pytest.mark.parametrize("stage", RULE_FILES)
def test_each_rule_file_calls_only_its_own_subpackage(stage):
    calls = rule_commands(stage)
    assert calls, f"rules/{stage}.smk calls no command"
    owned = set(build_stage_parser(stage)._subparsers._group_actions[0].choices)
    for package, command in calls:
        assert package == f"pipeline.{stage}", f"rules/{stage}.smk calls {package}"
        assert command in owned, f"rules/{stage}.smk: {command} is not a pipeline.{stage} command"


def build_stage_parser(stage: str):
    from pipeline import commands

    return commands.build_parser(f"python -m pipeline.{stage}", "", STAGES[stage])


def test_the_stage_commands_partition_the_one_cli():
    """Every command of ``python -m pipeline`` belongs to exactly one stage subpackage."""
    everything = set(build_parser()._subparsers._group_actions[0].choices)
    owned = [set(build_stage_parser(s)._subparsers._group_actions[0].choices) for s in STAGES]
    assert sum(len(o) for o in owned) == len(everything) == len(set().union(*owned))


def test_primitives_import_no_stage_subpackage():
    for name in PRIMITIVES:
        stages = {m for m in imports(MODULES[name]) if m.split(".")[1] in STAGES}
        assert not stages, f"{name} imports {stages}"


def test_no_import_cycles():
    graph = {name: imports(path) - {name} for name, path in MODULES.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for child in sorted(graph[node]):
            if state.get(child) == 1:
                cycle = trail[trail.index(child):] + [child] if child in trail else [node, child]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if child not in state:
                visit(child, trail + [child])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_no_module_is_longer_than_the_limit():
    lengths = {name: len(p.read_text().splitlines()) for name, p in MODULES.items()}
    too_long = {name: n for name, n in lengths.items() if n > LARGEST_MODULE}
    assert not too_long, f"modules over {LARGEST_MODULE} lines: {too_long}"

"""Each list of kinds has one source, the Python registry; the schema's lists must equal it.

A new kind needs its registry entry (the code) and its schema entry (what settings it takes);
these tests fail when one is added without the other. ``config/schema.yaml`` keeps the lists
so that the Snakefile can validate a configuration without importing torch.
"""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.config import SCHEMA_PATH, load_yaml

SCHEMA = load_yaml(SCHEMA_PATH)


def _kind_blocks(section: str) -> tuple[list[str], list[str]]:
    """A kind-keyed section's ``kind`` enum and the kinds its ``if``/``then`` blocks cover."""
    entry = SCHEMA["properties"][section]["additionalProperties"]
    blocks = [block["if"]["properties"]["kind"]["const"] for block in entry["allOf"]]
    return entry["properties"]["kind"]["enum"], blocks


def _registries() -> dict[str, tuple[list[Any], Any]]:
    """Registry name -> (the schema's list, the registry's keys)."""
    from pipeline.data.datasets import BACKGROUNDS, DATASETS
    from pipeline.data.real_datasets import ANNOTATION_FORMATS
    from pipeline.data.variants import VARIANTS
    from pipeline.detection.detectors import DETECTORS
    from pipeline.models.cnn import ARCHITECTURES

    defs, properties = SCHEMA["$defs"], SCHEMA["properties"]
    annotated = next(block["then"] for block in
                     properties["datasets"]["additionalProperties"]["allOf"]
                     if block["if"]["properties"]["kind"]["const"] == "annotated")
    return {
        "dataset kinds": (_kind_blocks("datasets")[0], DATASETS),
        "variant kinds": (_kind_blocks("variants")[0], VARIANTS),
        "detector kinds": (_kind_blocks("detectors")[0], DETECTORS),
        "architectures": (properties["models"]["additionalProperties"]["properties"]
                          ["architecture"]["enum"], ARCHITECTURES),
        "backgrounds": (defs["background_list"]["items"]["enum"], BACKGROUNDS),
        "annotation formats": (annotated["properties"]["format"]["enum"], ANNOTATION_FORMATS),
    }


@pytest.mark.parametrize("name", sorted(_registries()))
def test_schema_lists_exactly_the_registered_kinds(name):
    listed, registry = _registries()[name]
    assert len(listed) == len(set(listed)), f"{name}: the schema lists a kind twice"
    assert set(listed) == set(registry), (
        f"{name}: schema only {sorted(set(listed) - set(registry))}, "
        f"registry only {sorted(set(registry) - set(listed))}")


@pytest.mark.parametrize("section", ["datasets", "variants", "detectors"])
def test_every_kind_has_exactly_one_settings_block(section):
    kinds, blocks = _kind_blocks(section)
    assert sorted(blocks) == sorted(kinds)


def test_a_registered_variant_without_a_schema_entry_is_caught(monkeypatch):
    """The check above is what tells a contributor that the schema needs the new kind too."""
    from pipeline.data import variants

    monkeypatch.setitem(variants.VARIANTS, "fog", variants.original)
    listed, registry = _registries()["variant kinds"]
    assert set(registry) - set(listed) == {"fog"}


def test_configuration_knows_each_architectures_window():
    """The window table that validates ``models:`` entries (torch-free) is the one the
    architectures are built for, and the schema's window enum holds every one of them."""
    from pipeline.config import ARCHITECTURE_WINDOWS
    from pipeline.models.cnn import ARCHITECTURES

    assert set(ARCHITECTURE_WINDOWS) == set(ARCHITECTURES)
    for name, build in ARCHITECTURES.items():
        assert build().window == ARCHITECTURE_WINDOWS[name], name
    windows = SCHEMA["properties"]["models"]["additionalProperties"]["properties"]["window"]
    assert set(windows["enum"]) == set(ARCHITECTURE_WINDOWS.values())


def test_every_detector_kind_says_its_role_trainer_and_model_keys():
    """The one table of detector kinds: each role is known, each trainer is a training rule
    with a config section, and each model key is a setting of that kind in the schema."""
    from pipeline.detection.detectors import DETECTORS, ROLES, TRAINERS

    blocks = {block["if"]["properties"]["kind"]["const"]: block["then"]
              for block in SCHEMA["properties"]["detectors"]["additionalProperties"]["allOf"]}
    rules = (SCHEMA_PATH.parents[1] / "rules/training.smk").read_text()
    for kind, entry in DETECTORS.items():
        assert entry.role in ROLES, kind
        assert (entry.trainer is None) == (not entry.model_keys) == (entry.role == "reference")
        if entry.trainer:
            assert f"rule {entry.trainer}:" in rules and TRAINERS[entry.trainer][0] in (
                SCHEMA["properties"])
        assert set(entry.model_keys) <= set(blocks[kind]["properties"]), kind


def test_model_files_follow_the_kinds_table():
    from pipeline.detection.detectors import draws, model_files, model_names, role, trained_models

    cascade = {"kind": "haar", "trained_cascade": "mine", "scale_factor": 1.1}
    three = {"kind": "cnn_cascade", "proposal_model": "p", "model": "v", "output_model": "o"}
    assert model_files(cascade, "m") == ["m/mine.xml"] and model_names(cascade) == []
    assert trained_models(three) == [("models", "p"), ("models", "v"), ("models", "o")]
    assert model_files(three, "m") == ["m/p.pt", "m/v.pt", "m/o.pt"]
    assert model_files({"kind": "haar", "cascade": "default"}, "m") == []
    assert model_files({"kind": "hog"}, "m") == [] and role({"kind": "hog"}) == "reference"
    assert draws(cascade, [0, 3]) == ["seed0", "seed3"] and draws(three, [1]) == ["seed1"]
    assert draws({"kind": "hog"}, [0, 3]) == draws({"kind": "haar", "cascade": "alt"}, [1]) == [
        "fixed"]
    assert role(three) == "cnn" and role(cascade) == "cascade"

"""Every difference between an arm's two sides besides the features is declared
(pipeline.config_arms): the shipped configurations declare exactly their differences, an
undeclared or a stale declaration is refused, and the report lists them."""

from __future__ import annotations

import copy

import pytest

from pipeline.config import ConfigError, deep_merge, load_yaml, validate_config
from pipeline.config_arms import ASPECTS, arm_differences
from pipeline.defaults import SCHEMA_PATH
from tests.test_workflow import REPO


def shipped(name):
    """A shipped configuration, layered on the default one as Snakemake layers it."""
    config = load_yaml(REPO / "config" / "default.yaml")
    if name != "default":
        config = deep_merge(config, load_yaml(REPO / "config" / f"{name}.yaml"))
    config["data_root"] = "/data"
    validate_config(config)
    return config


@pytest.mark.parametrize("name", ["default", "research", "fddb", "wider"])
def test_shipped_arms_declare_exactly_their_differences(name):
    config = shipped(name)
    for arm_name, arm in config["report"]["arms"].items():
        actual = {d.aspect for d in arm_differences(config, arm)}
        assert set(arm["differences"]) == actual, arm_name
        assert "smallest_face" not in actual and "mining_scenes" not in actual


def test_research_arms_are_matched_where_the_issue_asks():
    """Issue 29's primary arm: the same positives (copies, scene-blended faces, no redraw),
    the same smallest face and pyramid step; what stays declared is the negative budget, the
    window, the merge and the CNN's box regressor."""
    research = shipped("research")
    for arm in research["report"]["arms"].values():
        differences = {d.aspect: d for d in arm_differences(research, arm)}
        assert set(differences) == {"negative_budget", "window", "post_processing",
                                    "box_regression"}
        assert "neighbour grouping" in differences["post_processing"].haar


def test_an_undeclared_difference_is_refused(default_config):
    config = copy.deepcopy(default_config)
    config["models"]["cnn"]["illumination"] = {
        "probability": 0.5, "shadow_strength": 0.8, "shadow_softness": 0.08, "gradient": 40,
        "gamma": 1.8, "local_contrast": 3.0, "shadow_family": "edge"}
    with pytest.raises(ConfigError, match=r"report.arms.photo.differences: 'illumination' "
                                          r"\(illumination augmentation of the positives\) "
                                          r"differs .* and is not declared"):
        validate_config(config)
    config["report"]["arms"]["photo"]["differences"]["illumination"] = "on purpose"
    validate_config(config)


def test_a_stale_declaration_is_only_a_warning(default_config, caplog):
    """A declaration of an aspect in which the two sides are the same (an overlay may make
    them equal) runs; it is logged and the report does not list it."""
    from pipeline.report.families import declared_differences

    config = copy.deepcopy(default_config)
    config["report"]["arms"]["photo"]["differences"]["copies_per_face"] = "kept on purpose"
    validate_config(config)
    assert "differences.copies_per_face: declared, but both sides are the same" in caplog.text
    assert all(row[1] != ASPECTS["copies_per_face"] for row in declared_differences(config))


def test_schema_lists_the_aspects():
    schema = load_yaml(SCHEMA_PATH)
    arm = schema["properties"]["report"]["properties"]["arms"]["additionalProperties"]
    assert arm["properties"]["differences"]["propertyNames"]["enum"] == list(ASPECTS)


def test_the_report_lists_each_declared_difference_with_its_reason():
    from pipeline.report.families import declared_differences

    research = shipped("research")
    rows = declared_differences(research)
    assert len(rows) == sum(len(a["differences"]) for a in research["report"]["arms"].values())
    photo = {row[1]: row for row in rows if row[0] == "photo"}
    assert photo[ASPECTS["window"]][2:4] == ["32", "24"]
    assert photo[ASPECTS["window"]][4].startswith("each architecture's input")


def test_copies_or_redrawn_positives_on_one_side_are_differences(default_config):
    """Undoing the match on the CNN side (more copies, redrawn each round, scene-blended
    faces the cascade lacks) is refused until declared."""
    for change, aspect in [({"positives_per_face": 60}, "copies_per_face"),
                           ({"redraw_positives": True}, "positives_redrawn"),
                           ({"box_regression": {"faces_per_face": 1, "weight": 0.5}},
                            "scene_blended_faces")]:
        config = copy.deepcopy(default_config)
        config["models"]["cnn"].update(change)
        with pytest.raises(ConfigError, match=f"'{aspect}'"):
            validate_config(config)
    config = copy.deepcopy(default_config)
    config["models"]["cnn"]["box_regression"] = {"faces_per_face": 1, "weight": 0.5}
    config["cascades"]["haar_trained"]["scene_faces"] = {"faces_per_face": 1}
    config["report"]["arms"]["photo"]["differences"]["box_regression"] = "no regressor"
    validate_config(config)


def test_an_overlay_withdraws_a_declaration_with_null(default_config):
    """Making two sides equal in an overlay: the overlay sets the stale declaration to null
    (deep_merge cannot remove a key), and the illumination blocks compare as values, whatever
    order their keys are written in."""
    config = copy.deepcopy(default_config)
    config["report"]["arms"]["photo"]["differences"]["illumination"] = None
    light = {"probability": 0.5, "shadow_strength": 0.8, "shadow_softness": 0.08,
             "gradient": 40, "gamma": 1.8, "local_contrast": 3.0, "shadow_family": "edge"}
    config["models"]["cnn"]["illumination"] = light
    config["cascades"]["haar_trained"]["illumination"] = dict(reversed(light.items()))
    validate_config(config)
    assert "illumination" not in {d.aspect for d in arm_differences(
        config, config["report"]["arms"]["photo"])}


def test_a_low_resolution_augmentation_on_one_side_is_a_difference(default_config):
    config = copy.deepcopy(default_config)
    config["models"]["cnn"]["low_resolution"] = {"probability": 0.5, "min_side": 12}
    with pytest.raises(ConfigError, match="'low_resolution'"):
        validate_config(config)


def test_settings_tuned_on_each_side_are_differences_even_from_one_grid():
    """Two detectors tuned from the same grid may choose differently: a tuned pyramid step or
    smallest face is a difference, named with the detector; so is each mining pyramid step."""
    research = shipped("research")
    arm = research["report"]["arms"]["photo"]
    grid = {"scale_factor": [1.1, 1.2]}
    tuned = deep_merge(research, {"tuning": {arm["cnn"]: {"grid": grid},
                                             arm["haar"]: {"grid": grid}}})
    step = {d.aspect: d for d in arm_differences(tuned, arm)}["pyramid_step"]
    assert step.cnn == f"chosen for {arm['cnn']} on tune data from 1.1, 1.2"
    assert step.haar == f"chosen for {arm['haar']} on tune data from 1.1, 1.2"
    smallest = deep_merge(research, {"tuning": {arm["haar"]: {"grid": {"min_size": [24, 30]}}}})
    assert "smallest_face" in {d.aspect for d in arm_differences(smallest, arm)}
    budget = {d.aspect: d for d in arm_differences(research, arm)}["negative_budget"]
    assert "pyramid step 1.25" in budget.cnn and "pyramid step 1.1" in budget.haar

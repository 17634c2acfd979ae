"""Stimulus families in the report (pipeline.report.families): what each variant is, which
shadow family an augmented arm trained on, and the cells whose verdict changes between two
families of one question."""

from __future__ import annotations

import copy

import pytest

from pipeline.evaluation.contracts import Interval
from pipeline.report.families import (
    families_compared,
    family_disagreements,
    family_notes,
    trained_shadow_families,
    variant_family,
)
from pipeline.report.verdicts import Condition, VerdictCell, VerdictRow

LIGHT = {"probability": 0.5, "shadow_family": "edge", "shadow_strength": 0.8,
         "shadow_softness": 0.08, "gradient": 40, "gamma": 1.8, "local_contrast": 3.0}


@pytest.fixture
def config(default_config):
    """The default configuration with an augmented arm, photo_lit, trained under edge shadows."""
    config = copy.deepcopy(default_config)
    config["models"]["cnn_lit"] = dict(config["models"]["cnn"], illumination=LIGHT)
    config["cascades"]["haar_lit"] = dict(config["cascades"]["haar_trained"],
                                          illumination=LIGHT)
    config["detectors"]["cnn_lit"] = dict(config["detectors"]["cnn"], model="cnn_lit")
    config["detectors"]["haar_lit"] = dict(config["detectors"]["haar_trained"],
                                           trained_cascade="haar_lit")
    config["report"]["arms"]["photo_lit"] = {"cnn": "cnn_lit", "haar": "haar_lit",
                                             "augments": "photo"}
    return config


def cell(verdict, **questions):
    share = Interval(0.8, 0.7, 0.9)
    return VerdictCell(share, share, Interval(0.1, 0.0, 0.2), verdict, "",
                       {"haar_breaks": "yes", "cnn_holds": "open", "cnn_better": "yes",
                        **questions})


def rows(verdicts):
    """Verdict rows of the embedded set, one per variant: {variant: {arm: cell}}."""
    return [VerdictRow(Condition("embedded", variant), cells) for variant, cells in
            verdicts.items()]


def test_variants_name_their_family(default_config):
    assert variant_family(default_config, "shadow") == ("shadow", "edge")
    assert variant_family(default_config, "shadow_occluder") == ("shadow", "occluder")
    assert variant_family(default_config, "cartoon") == ("cartoon", "posterise")
    assert variant_family(default_config, "cartoon_lab") == ("cartoon", "lab")
    assert variant_family(default_config, "original") is None
    assert variant_family(default_config, "shadow_sweep_0.50") is None


def test_an_arm_trained_under_shadows_names_its_family_and_its_held_out_variants(config):
    assert trained_shadow_families(config, config["report"]["arms"]["photo_lit"]) == {"edge"}
    assert trained_shadow_families(config, config["report"]["arms"]["photo"]) == set()
    judged = rows({"shadow": {"photo_lit": cell("supported")},
                   "shadow_occluder": {"photo_lit": cell("supported")}})
    notes = family_notes(config, judged)
    assert "shadow_occluder: shadow family 'occluder', the curved rim of a nearby elliptical " \
           "occluder" in notes
    assert ("arm photo_lit trained on shadow family edge: held out shadow_occluder; "
            "trained-on family shadow (not a held-out test)") in notes
    assert not any(n.startswith("arm photo ") for n in notes)  # photo trains without shadows


def test_an_occluder_trained_arm_holds_out_the_edge_family(config):
    for section, name in (("models", "cnn_lit"), ("cascades", "haar_lit")):
        config[section][name]["illumination"] = dict(LIGHT, shadow_family="occluder")
    judged = rows({"shadow": {"photo_lit": cell("supported")},
                   "shadow_occluder": {"photo_lit": cell("supported")}})
    assert ("arm photo_lit trained on shadow family occluder: held out shadow; trained-on "
            "family shadow_occluder (not a held-out test)") in family_notes(config, judged)


def test_cells_that_change_between_families_are_listed_with_the_questions_that_changed(config):
    judged = rows({
        "shadow": {"photo": cell("partly supported"), "photo_lit": cell("supported")},
        "shadow_occluder": {"photo": cell("contradicted", haar_breaks="no", cnn_better="no"),
                            "photo_lit": cell("supported")},
        "cartoon": {"photo": cell("not resolved", cnn_better="open")},
        "cartoon_lab": {"photo": cell("not resolved", cnn_better="open")},
    })
    assert families_compared(config, judged) == ["shadow", "cartoon"]
    assert family_disagreements(config, judged) == [
        "arm photo, embedded, shadow: shadow partly supported; shadow_occluder contradicted "
        "(changed: Haar breaks: shadow yes, shadow_occluder no; CNN better: shadow yes, "
        "shadow_occluder no)"]


def test_one_family_per_question_compares_nothing(config):
    judged = rows({"shadow": {"photo": cell("supported")},
                   "cartoon": {"photo": cell("contradicted")}})
    assert families_compared(config, judged) == []
    assert family_disagreements(config, judged) == []


def test_two_variants_of_one_family_are_not_two_families(config):
    config["variants"]["shadow_hard"] = dict(config["variants"]["shadow"], softness=0.01)
    judged = rows({"shadow": {"photo": cell("supported")},
                   "shadow_hard": {"photo": cell("contradicted", haar_breaks="no")}})
    assert families_compared(config, judged) == []
    assert family_disagreements(config, judged) == []

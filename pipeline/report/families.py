"""What a verdict cell may hang on besides the features: the declared differences between
each arm's two sides, which shadow family and cartoon style each variant is, which family each
augmented arm trained on, and the verdict cells that change between two families of one
question (shadow, cartoon).

Pure functions of the configuration and the verdict rows (no HTML).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pipeline.config_arms import ASPECTS, arm_differences, configured_models, declarations
from pipeline.data.shadows import SHADOW_SHAPES
from pipeline.detection.detectors import trained_models
from pipeline.report.verdicts import VerdictRow

# Variant kind -> the setting that names its family, and the question the family answers.
FAMILY_SETTING = {"shadow": "family", "cartoon": "style"}
QUESTION_WORDS = {"haar_breaks": "Haar breaks", "cnn_holds": "CNN holds up",
                  "cnn_better": "CNN better"}


def declared_differences(config: dict[str, Any]) -> list[list[str]]:
    """Rows (arm, aspect, CNN side, cascade side, why kept) of every arm's declared
    differences (:mod:`pipeline.config_arms`; the configuration check makes them all)."""
    rows = []
    for name, arm in config["report"].get("arms", {}).items():
        if not configured_models(config, arm):
            continue
        why = declarations(arm)
        for difference in arm_differences(config, arm):
            rows.append([name, ASPECTS[difference.aspect], difference.cnn, difference.haar,
                         why.get(difference.aspect, "not declared")])
    return rows


def variant_family(config: dict[str, Any], variant: str) -> tuple[str, str] | None:
    """(kind, family) of a configured variant with families, e.g. ("shadow", "occluder");
    None for the baseline and for sweep instances."""
    settings = config["variants"].get(variant)
    if settings is None or settings["kind"] not in FAMILY_SETTING:
        return None
    return settings["kind"], settings[FAMILY_SETTING[settings["kind"]]]


def trained_shadow_families(config: dict[str, Any], arm: dict[str, str]) -> set[str]:
    """The shadow families an arm's trainers drew (their ``illumination`` blocks); empty when
    neither trains with shadows."""
    families = set()
    for detector in (arm["cnn"], arm["haar"]):
        for section, name in trained_models(config["detectors"][detector]):
            light = config[section][name].get("illumination")
            if light and light["probability"] > 0 and light["shadow_strength"] > 0:
                families.add(light["shadow_family"])
    return families


def family_notes(config: dict[str, Any], rows: list[VerdictRow]) -> list[str]:
    """One line per judged variant with a family (what it is), and per arm trained under
    shadows, which judged shadow variants are its own family and which are held out."""
    judged = list(dict.fromkeys(r.condition.variant for r in rows))
    notes = []
    for variant in judged:
        family = variant_family(config, variant)
        if family is None:
            continue
        kind, name = family
        what = SHADOW_SHAPES.get(name, name) if kind == "shadow" else f"the {name} style"
        notes.append(f"{variant}: {kind} family '{name}', {what}")
    shadows = {}  # judged shadow variant -> its family
    for variant in judged:
        family = variant_family(config, variant)
        if family is not None and family[0] == "shadow":
            shadows[variant] = family[1]
    for arm_name, arm in config["report"].get("arms", {}).items():
        trained = trained_shadow_families(config, arm)
        if not trained:
            continue
        seen = sorted(v for v, f in shadows.items() if f in trained)
        held = sorted(v for v, f in shadows.items() if f not in trained)
        notes.append(f"arm {arm_name} trained on shadow family {', '.join(sorted(trained))}: "
                     f"held out {', '.join(held) or 'none'}; trained-on family "
                     f"{', '.join(seen) or 'none'} (not a held-out test)")
    return notes


def family_disagreements(config: dict[str, Any], rows: list[VerdictRow]) -> list[str]:
    """Cells whose verdict differs between families of one question: per arm, test set and
    question, each family's verdict and the answers to the three questions that differ."""
    by_question: dict[tuple[str, Any, Any, str], list[VerdictRow]] = defaultdict(list)
    for row in rows:
        family = variant_family(config, row.condition.variant)
        if family is not None:
            c = row.condition
            by_question[c.dataset, c.group, c.reference_dataset, family[0]].append(row)
    lines = []
    for (dataset, image_group, reference, kind), group in by_question.items():
        if len({variant_family(config, r.condition.variant) for r in group}) < 2:
            continue  # one family, however many variants of it
        where = dataset + (f" light {image_group}" if image_group else "") + (
            f" against {reference}" if reference else "")
        for arm in config["report"].get("arms", {}):
            cells = {r.condition.variant: r.cells[arm] for r in group if arm in r.cells}
            if len({c.verdict for c in cells.values()}) < 2:
                continue
            changed = [q for q in QUESTION_WORDS
                       if len({c.questions.get(q, "open") for c in cells.values()}) > 1]
            verdicts = "; ".join(f"{v} {c.verdict}" for v, c in cells.items())
            answers = "; ".join(
                f"{QUESTION_WORDS[q]}: " + ", ".join(f"{v} {c.questions.get(q, 'open')}"
                                                     for v, c in cells.items())
                for q in changed)
            lines.append(f"arm {arm}, {where}, {kind}: {verdicts} (changed: {answers})")
    return lines


def families_compared(config: dict[str, Any], rows: list[VerdictRow]) -> list[str]:
    """The questions judged under two or more families, e.g. ['shadow', 'cartoon']."""
    kinds = defaultdict(set)
    for row in rows:
        family = variant_family(config, row.condition.variant)
        if family is not None:
            kinds[family[0]].add(family[1])
    return [kind for kind, names in kinds.items() if len(names) > 1]

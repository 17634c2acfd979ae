"""Configuration: safe YAML loading and validation against ``config/schema.yaml``.

Errors name the offending key as a dotted path (``detectors.haar.scale_factor``) so a user sees
at once which line of which file to fix.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pipeline.config_arms import declaration_errors
from pipeline.config_limits import (
    MAX_EXPANDED_VALUES,
    TOO_LARGE,
    StrictValidator,
    expanded_size,
    oversized_key,
    value_errors,
)
from pipeline.defaults import SCHEMA_PATH, apply_defaults, section_schema

DEFAULT_CONFIG_PATH = SCHEMA_PATH.parent / "default.yaml"


class ConfigError(ValueError):
    """The configuration does not satisfy the schema or a cross-section rule."""


def load_yaml(path: str | Path) -> Any:
    """The YAML file at ``path``, safely loaded; :class:`ConfigError` when it is not valid
    YAML or its aliases expand to more than :data:`MAX_EXPANDED_VALUES` values."""
    path = Path(path)
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: configuration file not found") from None
    except (yaml.YAMLError, ValueError) as error:  # ValueError: an integer of 4300+ digits
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    if expanded_size(data) > MAX_EXPANDED_VALUES:
        raise ConfigError(f"{path}: {TOO_LARGE}")
    return data


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``overrides`` merged in, nested dicts key by key (how Snakemake
    merges a ``--configfile`` over the default)."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(path: str | Path = DEFAULT_CONFIG_PATH, data_root: str | None = None
                ) -> dict[str, Any]:
    """Read a configuration as the Snakefile sees it: a file other than the default is an
    overlay merged over ``config/default.yaml``; ``data_root`` (when given) is set; the result
    is validated and ``{data_root}`` in dataset paths is resolved (see
    :func:`resolve_data_paths`)."""
    overlay = load_yaml(path)
    if overlay is None:
        overlay = {}
    if not isinstance(overlay, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    config = (overlay if Path(path).resolve() == DEFAULT_CONFIG_PATH.resolve()
              else deep_merge(load_yaml(DEFAULT_CONFIG_PATH), overlay))
    if data_root is not None:
        config["data_root"] = data_root
    validate_config(config, source=str(path))
    resolve_data_paths(config)
    return config


def _key_path(parts: Any) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def _schema_errors(instance: Any, schema: dict[str, Any], prefix: tuple[Any, ...] = ()
                   ) -> list[str]:
    """Every bad key of ``instance``: an alias bomb alone (before anything walks it), else
    non-finite numbers and huge integers, and the schema's errors at the other keys."""
    where = oversized_key(instance, prefix)
    if where is not None:
        return [f"{_key_path(where)}: {TOO_LARGE}"]
    found = list(value_errors(instance, prefix))
    flagged = {path for path, _ in found}
    errors = _leaf_errors(list(StrictValidator(schema).iter_errors(instance)))
    # absolute_path: an error under a oneOf alternative keeps the path of the key it is about
    found += [((*prefix, *e.absolute_path), _hint(e.message, (*prefix, *e.absolute_path)))
              for e in errors if (*prefix, *e.absolute_path) not in flagged]
    found.sort(key=lambda item: list(map(str, item[0])))
    return [f"{_key_path(path)}: {message}" for path, message in found]


def _hint(message: str, path: tuple[Any, ...]) -> str:
    """A schema message, with what to do where a key has moved."""
    moved = path[:1] in (("models",), ("cascades",)) and len(path) == 2 and "'seed'" in message
    return message + ("; training seeds are the top-level `seeds:` list" if moved else "")


def validate_config(config: Any, source: str = "config") -> None:
    """Raise :class:`ConfigError` naming every bad key; when all is well, fill in, in place,
    every default the schema gives (:mod:`pipeline.defaults`)."""
    schema = load_yaml(SCHEMA_PATH)
    messages = _schema_errors(config, schema)
    if not messages:
        apply_defaults(config, schema, schema["$defs"])
        messages = _cross_section_errors(config)
    if messages:
        raise ConfigError(f"{source}: invalid configuration:\n  " + "\n  ".join(messages))


def validate_section(settings: Any, section: str, source: str = "--settings") -> None:
    """Check one stage's settings against its part of the schema (:func:`section_schema`);
    :class:`ConfigError` naming every bad key. Valid settings get their defaults, in place."""
    prefix = tuple(section.replace("*", "<name>").split("."))
    schema = section_schema(section)
    messages = _schema_errors(settings, schema, prefix)
    if messages:
        raise ConfigError(f"{source}: invalid {section.replace('.*', '')} settings:\n  "
                          + "\n  ".join(messages))
    apply_defaults(settings, schema, schema["$defs"])


def _leaf_errors(errors: list[jsonschema.ValidationError]) -> list[jsonschema.ValidationError]:
    """Replace if/then wrapper errors by the specific errors underneath them."""
    leaves: list[jsonschema.ValidationError] = []
    for error in errors:
        if error.context:
            leaves.extend(_leaf_errors(list(error.context)))
        else:
            leaves.append(error)
    return leaves


# Window side (pixels) each CNN architecture is built for (pipeline.models.cnn.ARCHITECTURES, whose
# constructors tests/test_registries.py checks against it); here so that validating a
# configuration does not import torch.
ARCHITECTURE_WINDOWS = {"lenet5": 32, "vgg": 32, "googlenet": 32, "proposal": 16, "output": 48}


def _cross_section_errors(config: dict[str, Any]) -> list[str]:
    """Rules that link sections: names one section uses must exist in another."""
    from pipeline.data.roles import (
        dataset_role,
        evaluated_datasets,
        role_conflicts,
        scene_conflicts,
    )
    from pipeline.detection.detectors import DETECTORS, TRAINERS
    from pipeline.tuning.operating_point import tuning_conflicts

    messages = []
    for name, detector in config["detectors"].items():
        kind = DETECTORS[detector["kind"]]
        section = TRAINERS[kind.trainer][0] if kind.trainer else None
        for key in kind.model_keys:
            if key in detector and detector[key] not in config[section]:
                messages.append(f"detectors.{name}.{key}: '{detector[key]}' is not a key of "
                                f"{section} ({', '.join(config[section]) or 'none defined'})")
    for name, model in config["models"].items():
        expected = ARCHITECTURE_WINDOWS[model["architecture"]]
        if model["window"] != expected:
            messages.append(f"models.{name}.window: {model['architecture']} takes "
                            f"{expected}x{expected} windows, not {model['window']}")
    messages += (role_conflicts(config["datasets"]) + scene_conflicts(config["datasets"])
                 + tuning_conflicts(config))
    for section in ("models", "cascades"):
        for name, model in config[section].items():
            if model["train_dataset"] not in config["datasets"]:
                messages.append(
                    f"{section}.{name}.train_dataset: '{model['train_dataset']}' is not a key "
                    f"of datasets ({', '.join(config['datasets'])})"
                )
    sweep = config["shadow_sweep"]
    if sweep["strengths"]:
        base = config["variants"].get(sweep["variant"])
        if base is None or base["kind"] != "shadow":
            messages.append(
                f"shadow_sweep.variant: '{sweep['variant']}' must name a variant of kind shadow"
            )
    points = config["evaluation"]["false_positive_points"]
    if config["report"]["fp_for_summary"] not in points:
        messages.append(
            f"report.fp_for_summary: {config['report']['fp_for_summary']} must be one of "
            f"evaluation.false_positive_points {points}"
        )
    from pipeline.data.variants import BASELINE_VARIANT, variant_instances

    if config["variants"].get(BASELINE_VARIANT, {}).get("kind") != "original":
        messages.append(f"variants.{BASELINE_VARIANT}: the baseline variant, of kind original, "
                        "is required (shares of AP kept and calibrations are relative to it)")
    instances = set(variant_instances(config))
    for name, dataset in config["datasets"].items():
        for variant in dataset.get("variants", []):
            if variant not in instances:
                messages.append(f"datasets.{name}.variants: '{variant}' is not a variant "
                                f"({', '.join(sorted(instances))})")
    arm_messages = _arm_errors(config)
    messages += arm_messages or declaration_errors(config)
    evaluated = evaluated_datasets(config)
    tested = [n for n in evaluated if dataset_role(config["datasets"][n]) == "test"]
    for name, dataset in config["datasets"].items():
        source = dataset.get("calibration")
        if source is None:
            continue
        if source not in config["datasets"]:
            messages.append(f"datasets.{name}.calibration: '{source}' is not a dataset")
        elif source in tested:
            messages.append(f"datasets.{name}.calibration: '{source}' is a test set; fit "
                            "calibrations on a tune set (role: tune) or on development data "
                            "(evaluate: false)")
    if not evaluated:
        messages.append("datasets: no dataset is evaluated (all have evaluate: false)")
    elif not tested:
        messages.append("datasets: no evaluated dataset has role test: nothing would be "
                        "judged")
    messages += _cross_set_errors(config, tested)
    for name, dataset in config["datasets"].items():
        if dataset["kind"] != "embedded":
            continue
        low, high = dataset["face_size"]
        if low > high:
            messages.append(f"datasets.{name}.face_size: minimum {low} exceeds maximum {high}")
        if max(dataset["face_size"]) > min(dataset["scene_size"]):
            messages.append(f"datasets.{name}.face_size: faces larger than the scene")
        if dataset["faces_per_scene"][0] > dataset["faces_per_scene"][1]:
            messages.append(f"datasets.{name}.faces_per_scene: minimum exceeds maximum")
    return messages


def arm_training_sets(config: dict[str, Any], arm: dict[str, str]) -> set[str]:
    """The training datasets of an arm's two detectors' trained models."""
    from pipeline.detection.detectors import trained_models

    sets = set()
    for name in (arm["haar"], arm["cnn"]):
        detector = config["detectors"].get(name)
        for section, model in trained_models(detector) if detector else []:
            if model in config[section]:
                sets.add(config[section][model]["train_dataset"])
    return sets


def _arm_errors(config: dict[str, Any]) -> list[str]:
    """An arm pairs a trained cascade and a CNN detector whose models share a training set
    (roles from :data:`pipeline.detection.detectors.DETECTORS`)."""
    from pipeline.detection.detectors import role, trained_models

    messages = []
    detectors = config["detectors"]
    for name, arm in config["report"]["arms"].items():
        where = f"report.arms.{name}"
        haar, cnn = detectors.get(arm["haar"]), detectors.get(arm["cnn"])
        wrong = []
        if haar is None or role(haar) != "cascade" or not trained_models(haar):
            wrong.append(f"{where}.haar: '{arm['haar']}' is not a cascade detector with a "
                         "trained_cascade")
        if cnn is None or role(cnn) != "cnn" or not trained_models(cnn):
            wrong.append(f"{where}.cnn: '{arm['cnn']}' is not a CNN detector with trained "
                         "models (kind cnn or cnn_cascade)")
        if not wrong and len(arm_training_sets(config, arm)) != 1:
            wrong.append(f"{where}: not matched: its models learn from different training "
                         f"datasets {sorted(arm_training_sets(config, arm))}")
        base = arm.get("augments")
        if not wrong and base is not None:
            arms = config["report"]["arms"]
            if base not in arms or base == name:
                wrong.append(f"{where}.augments: '{base}' is not another arm")
            elif arms[base].get("augments") is not None:
                wrong.append(f"{where}.augments: '{base}' augments an arm itself; name the arm "
                             "without augmentation")
            elif {arms[base]["haar"], arms[base]["cnn"]} & {arm["haar"], arm["cnn"]}:
                wrong.append(f"{where}.augments: '{base}' shares a detector with it; an "
                             "augmented arm has its own trained models")
            elif arm_training_sets(config, arms[base]) != arm_training_sets(config, arm):
                wrong.append(f"{where}.augments: '{base}' learns from other images "
                             f"{sorted(arm_training_sets(config, arms[base]))}; an augmented "
                             "arm adds augmentation to the same training set")
        messages += wrong
    return messages


def _scored_set_errors(where: str, dataset: str, config: dict[str, Any],
                       tested: list[str]) -> list[str]:
    """Why ``dataset`` has no baseline-variant AP to compare (empty: it has one)."""
    from pipeline.data.variants import BASELINE_VARIANT

    if dataset not in tested:
        return [f"{where}: '{dataset}' is not a test set (an evaluated dataset with role test)"]
    if config["datasets"][dataset].get("negatives_only", False):
        return [f"{where}: '{dataset}' is face-free (negatives_only): it has no AP to compare"]
    if BASELINE_VARIANT not in config["datasets"][dataset].get("variants", [BASELINE_VARIANT]):
        return [f"{where}: '{dataset}' has no {BASELINE_VARIANT} variant"]
    return []


def _cross_set_errors(config: dict[str, Any], tested: list[str]) -> list[str]:
    """Each cross-set share divides one test set's AP by another's baseline-variant AP; each
    arm's ``domain`` is a test set with a baseline variant."""
    messages = []
    for name, reference in config["statistics"]["cross_set_shares"].items():
        where = f"statistics.cross_set_shares.{name}"
        for dataset in (name, reference):
            messages += _scored_set_errors(where, dataset, config, tested)
        if name == reference:
            messages.append(f"{where}: a test set cannot be a condition of itself")
    for name, arm in config["report"]["arms"].items():
        if "domain" in arm:
            messages += _scored_set_errors(f"report.arms.{name}.domain", arm["domain"], config,
                                           tested)
    return messages


# Path keys of dataset settings, with what each must hold (for error messages).
PATH_KEYS = {
    "root": "the folder that image names are relative to",
    "annotations": "an annotation file in the dataset's format",
    "images": "the folder of the images this annotation file names",
    "image_list": "a list of image file names, one a line",
    "landmarks": "a landmark list: '<file>' then 6 x y points per face",
    "faces": "a folder of face crop images",
    "scenes": "a folder of face-free scene images",
    "folder": "a folder of Extended Yale B crops named yaleBNN_P00A+000E+00.pgm",
}


def resolve_data_paths(config: dict[str, Any]) -> None:
    """Replace ``{data_root}`` in dataset paths, in place, and check that every path the
    configuration names exists: dataset files and folders, and detectors' cascade XML files.

    Raises one :class:`ConfigError` listing every missing path with the key that names it and
    what it should hold, and every cascade path that OpenCV cannot load.
    """
    root = config.get("data_root")
    messages: list[str] = []
    uses_root = "{data_root}" in json.dumps(config["datasets"])
    if uses_root and not root:
        raise ConfigError("data_root: this configuration reads real datasets under "
                          "{data_root}; give their folder with --config data_root=PATH "
                          "(snakemake) or --data-root PATH (python -m pipeline)")
    if uses_root and not Path(root).is_dir():
        raise ConfigError(f"data_root: {root} is not a folder (expected the folder holding "
                          "the datasets this configuration names)")

    def visit(node: Any, key_path: str) -> Any:
        if isinstance(node, dict):
            return {k: visit(v, f"{key_path}.{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [visit(v, f"{key_path}[{i}]") for i, v in enumerate(node)]
        if isinstance(node, str):
            node = node.replace("{data_root}", str(root))
        key = key_path.rsplit(".", 1)[-1].split("[")[0]
        if isinstance(node, str) and key in PATH_KEYS and not Path(node).exists():
            messages.append(f"{key_path}: {node} does not exist (expected "
                                f"{PATH_KEYS[key]})")
        return node

    config["datasets"] = visit(config["datasets"], "datasets")
    from pipeline.detection.detectors.haar import BUNDLED_CASCADES, cascade_file, load_cascade

    for name, detector in config["detectors"].items():
        cascade = cascade_file(detector)
        if cascade is None:
            continue
        if not Path(cascade).is_file():
            messages.append(f"detectors.{name}.cascade: {cascade} is not a file (expected "
                            f"one of {', '.join(BUNDLED_CASCADES)} or an OpenCV cascade XML)")
            continue
        try:
            load_cascade(cascade)
        except ValueError:
            messages.append(f"detectors.{name}.cascade: {cascade} is not an OpenCV cascade "
                            "XML (OpenCV could not load it)")
    if messages:
        raise ConfigError("missing or unreadable data:\n  " + "\n  ".join(messages))

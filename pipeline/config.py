"""Configuration: safe YAML loading and validation against ``config/schema.yaml``.

Errors name the offending key as a dotted path (``detectors.haar.scale_factor``) so a user sees
at once which line of which file to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"
DEFAULT_CONFIG_PATH = SCHEMA_PATH.parent / "default.yaml"


class ConfigError(ValueError):
    """The configuration does not satisfy the schema or a cross-section rule."""


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        with open(path) as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: configuration file not found") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error


def load_config(path: str | Path = DEFAULT_CONFIG_PATH) -> dict[str, Any]:
    """Read and validate a configuration file."""
    config = load_yaml(path)
    validate_config(config, source=str(path))
    return config


def _key_path(parts: Any) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def validate_config(config: Any, source: str = "config") -> None:
    """Raise :class:`ConfigError` naming every bad key; return silently when all is well."""
    schema = load_yaml(SCHEMA_PATH)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path)))
    messages = [f"{_key_path(e.path)}: {e.message}" for e in _leaf_errors(errors)]
    if not messages:
        messages = _cross_section_errors(config)
    if messages:
        raise ConfigError(f"{source}: invalid configuration:\n  " + "\n  ".join(messages))


def _leaf_errors(errors: list[jsonschema.ValidationError]) -> list[jsonschema.ValidationError]:
    """Replace if/then wrapper errors by the specific errors underneath them."""
    leaves: list[jsonschema.ValidationError] = []
    for error in errors:
        if error.context:
            leaves.extend(_leaf_errors(list(error.context)))
        else:
            leaves.append(error)
    return leaves


def _cross_section_errors(config: dict[str, Any]) -> list[str]:
    """Rules that link sections: names one section uses must exist in another."""
    messages = []
    for name, detector in config["detectors"].items():
        if detector["kind"] == "cnn" and detector["model"] not in config["models"]:
            messages.append(
                f"detectors.{name}.model: '{detector['model']}' is not a key of models "
                f"({', '.join(config['models']) or 'none defined'})"
            )
    for name, model in config["models"].items():
        if model["train_dataset"] not in config["datasets"]:
            messages.append(
                f"models.{name}.train_dataset: '{model['train_dataset']}' is not a key of "
                f"datasets ({', '.join(config['datasets'])})"
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

"""What each evaluated dataset is for: ``test`` (its results enter the verdict) or ``tune``
(it may choose settings; its results are development, never judged), and deterministic splits
that let one folder give both.

A split keeps one part of a set's test images: an image (or, for a set resampled by units, a
whole unit such as a Yale B subject) is in part ``a`` when the BLAKE2b hash of its name, as a
share of 2**64, is below ``fraction``, else in part ``b``; the same name always lands in the
same part, whichever other images the folder holds.
"""

from __future__ import annotations

import hashlib
import os
from itertools import product
from pathlib import Path
from typing import Any

from pipeline.boxes import ImageRecord, Manifest


def is_evaluated(dataset: dict[str, Any]) -> bool:
    """Whether detectors are tested on a dataset (``evaluate``; default true, false for
    training-only face folders)."""
    return dataset["evaluate"]


def evaluated_datasets(config: dict[str, Any]) -> list[str]:
    """Names of the datasets the detectors are evaluated on."""
    return [name for name, d in config["datasets"].items() if is_evaluated(d)]


def dataset_role(dataset: dict[str, Any]) -> str:
    """``tune`` or ``test`` (the schema's default) of an evaluated dataset entry."""
    return dataset.get("role", "test")


def split_key(record: ImageRecord, unit: str) -> str:
    """The name a record is split by: its unit attribute (``subject``), or its source file."""
    if unit != "image":
        if unit not in record.attributes:
            raise ValueError(f"{record.file}: no attribute '{unit}' to split by (resample_unit; "
                             f"its attributes: {', '.join(sorted(record.attributes)) or 'none'})")
        return str(record.attributes[unit])
    return str(record.attributes.get("source_file", record.file))


def in_part(key: str, split: dict[str, Any]) -> bool:
    """Whether the image or unit named ``key`` is in the split's ``part``."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    in_a = int.from_bytes(digest, "big") / 2**64 < split.get("fraction", 0.5)
    return in_a == (split["part"] == "a")


def keep_part(manifest: Manifest, split: dict[str, Any], unit: str = "image") -> Manifest:
    """The manifest with only the images of the split's part (a new manifest); ValueError
    naming the image when ``unit`` is not one of its attributes."""
    kept = [r for r in manifest.images if in_part(split_key(r, unit), split)]
    return Manifest(manifest.kind, manifest.root, kept,
                    meta={**manifest.meta, "split": {**split, "by": unit,
                                                     "of_images": len(manifest.images)}})


def _paths(values: Any) -> set[str]:
    """Normalised path strings of a setting (a path, or annotation sources)."""
    if isinstance(values, list):
        return {p for v in values for p in _paths(v)}
    if isinstance(values, dict):
        return {p for v in values.values() for p in _paths(v)}
    return {os.path.normpath(str(values))} if values else set()


def _same_images(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two entries can read a same test image: same kind and folder, and (annotated
    sets) an annotation source in common, or (Yale B) a subject in common."""
    if a["kind"] != b["kind"]:
        return False
    if _paths(a.get("root") or a.get("folder")) != _paths(b.get("root") or b.get("folder")):
        return False
    if "sources" in a and "sources" in b and not _paths(a["sources"]) & _paths(b["sources"]):
        return False
    return not ("subjects" in a and "subjects" in b
                and not set(a["subjects"]) & set(b["subjects"]))


def _disjoint_parts(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two splits of the same images keep no image in common: different parts, split
    by the same unit, part a's fraction at most part b's."""
    split_a, split_b = a.get("split"), b.get("split")
    if not split_a or not split_b or split_a["part"] == split_b["part"]:
        return False
    if a.get("resample_unit", "image") != b.get("resample_unit", "image"):
        return False
    first, second = (split_a, split_b) if split_a["part"] == "a" else (split_b, split_a)
    return first.get("fraction", 0.5) <= second.get("fraction", 0.5)


def role_conflicts(datasets: dict[str, dict[str, Any]]) -> list[str]:
    """Messages for images that would be both chosen on and tested on: a set that chooses
    (an evaluated ``tune`` set, or a set a box calibration is fitted on, evaluated or not) and
    a ``test`` set over the same images."""
    tested = {n: d for n, d in datasets.items()
              if d.get("evaluate", True) and dataset_role(d) == "test"}
    fitting = {d["calibration"] for d in datasets.values() if d.get("calibration")}
    choosing = {n: d for n, d in datasets.items()
                if n in fitting or (d.get("evaluate", True) and dataset_role(d) == "tune")}
    messages = []
    for (tune, a), (test, b) in product(sorted(choosing.items()), sorted(tested.items())):
        if tune != test and _same_images(a, b) and not _disjoint_parts(a, b):
            what = "tune" if tune not in fitting else "box calibration"
            messages.append(
                f"datasets.{tune} ({what}) and datasets.{test} (test) hold the same images: "
                "a set that chose anything cannot be judged; give them a split with "
                "different parts by the same unit (split: {part: a} and {part: b}, part a's "
                "fraction at most part b's)")
    return messages


def scene_conflicts(datasets: dict[str, dict[str, Any]]) -> list[str]:
    """Messages for test canvases drawn from the face-free scenes a training set mines its
    negatives from (a Yale B set's ``scenes`` = a face folder set's ``scenes``) without a
    ``scene_split`` that keeps the two parts apart: a detector would be tested on backgrounds
    it was trained to reject."""
    messages = []
    for name, test in sorted(datasets.items()):
        if test["kind"] == "yale_b" and test.get("scene_split") and not test.get("scenes"):
            messages.append(f"datasets.{name}.scene_split: no scenes to split (scenes:)")
        if test["kind"] != "yale_b" or not test.get("scenes"):
            continue
        for source, train in sorted(datasets.items()):
            if (train["kind"] == "face_folders"
                    and _paths(train["scenes"]) == _paths(test["scenes"])
                    and not _disjoint_parts({"split": train.get("scene_split")},
                                            {"split": test.get("scene_split")})):
                messages.append(
                    f"datasets.{name}.scenes: the face-free scenes datasets.{source} trains on; "
                    "give both a scene_split with different parts (scene_split: {part: a} "
                    "for training, {part: b} for the canvases, part a's fraction at most "
                    "part b's)")
    return messages


def scene_part(root: str | Path, split: dict[str, Any] | None) -> list[Path]:
    """The image files under ``root`` in the split's part (all of them without a split),
    split by a hash of each file's path relative to ``root``."""
    from pipeline.data.formats import image_files

    files = image_files(root)
    if split is None:
        return files
    return [p for p in files if in_part(Path(p).relative_to(root).as_posix(), split)]


def dataset_roles(config: dict[str, Any]) -> dict[str, str]:
    """Role (``tune`` or ``test``) of every evaluated dataset, by name."""
    return {name: dataset_role(d) for name, d in config["datasets"].items()
            if d.get("evaluate", True)}

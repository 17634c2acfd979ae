"""What each evaluated dataset is for: ``test`` (its results enter the verdict) or ``tune``
(it may choose settings; its results are development, never judged), and deterministic splits
that let one folder give both.

A split keeps one part of a set's test images: an image (or, for a set resampled by units, a
whole unit such as a Yale B subject) is in part ``a`` when the CRC-32 of its name, as a share
of 2**32, is below ``fraction``, else in part ``b``; the same name always lands in the same
part, whichever other images the folder holds.
"""

from __future__ import annotations

import zlib
from itertools import combinations
from typing import Any

from pipeline.boxes import ImageRecord, Manifest

ROLES = ("tune", "test")


def role(dataset: dict[str, Any]) -> str:
    """``tune`` or ``test`` (the schema's default) of an evaluated dataset entry."""
    return dataset.get("role", "test")


def split_key(record: ImageRecord, unit: str) -> str:
    """The name a record is split by: its unit attribute (``subject``), or its source file."""
    if unit != "image":
        return str(record.attributes[unit])
    return str(record.attributes.get("source_file", record.file))


def in_part(key: str, split: dict[str, Any]) -> bool:
    """Whether the image or unit named ``key`` is in the split's ``part``."""
    in_a = zlib.crc32(key.encode("utf-8")) / 2**32 < split.get("fraction", 0.5)
    return in_a == (split["part"] == "a")


def keep_part(manifest: Manifest, split: dict[str, Any], unit: str = "image") -> Manifest:
    """The manifest with only the images of the split's part (a new manifest)."""
    kept = [r for r in manifest.images if in_part(split_key(r, unit), split)]
    return Manifest(manifest.kind, manifest.root, kept,
                    meta={**manifest.meta, "split": {**split, "by": unit,
                                                     "of_images": len(manifest.images)}})


SOURCE_KEYS = ("kind", "root", "folder", "sources", "image_list", "images")


def _source(dataset: dict[str, Any]) -> str:
    """What a dataset entry reads its test images from (entries that agree read the same)."""
    return repr({k: dataset.get(k) for k in SOURCE_KEYS})


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two entries over the same source can hold a same image."""
    split_a, split_b = a.get("split"), b.get("split")
    if split_a and split_b and split_a["part"] != split_b["part"] and (
            split_a.get("fraction", 0.5) == split_b.get("fraction", 0.5)):
        return False
    disjoint_subjects = ("subjects" in a and "subjects" in b
                         and not set(a["subjects"]) & set(b["subjects"]))
    return not disjoint_subjects


def role_conflicts(datasets: dict[str, dict[str, Any]]) -> list[str]:
    """Messages for evaluated datasets that would be both tuned and tested on: two entries
    over the same images, one ``tune`` and one ``test``."""
    evaluated = {n: d for n, d in datasets.items() if d.get("evaluate", True)}
    messages = []
    for (name_a, a), (name_b, b) in combinations(sorted(evaluated.items()), 2):
        if role(a) != role(b) and _source(a) == _source(b) and _overlap(a, b):
            tune, test = (name_a, name_b) if role(a) == "tune" else (name_b, name_a)
            messages.append(
                f"datasets.{tune} (tune) and datasets.{test} (test) hold the same images: "
                "a set that chose anything cannot be judged; give them a split with "
                "different parts (split: {part: a} and {part: b})")
    return messages


def roles(config: dict[str, Any]) -> dict[str, str]:
    """Role of every evaluated dataset, by name."""
    return {name: role(d) for name, d in config["datasets"].items() if d.get("evaluate", True)}

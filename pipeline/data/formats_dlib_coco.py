"""Structured annotation files: dlib imglab XML and COCO JSON (read, and written as ground
truth or as a results list).

Boxes are ``x, y, w, h`` in pixels (COCO's ``bbox``; dlib's ``left, top, width, height``).
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from pipeline.boxes import Box, ImageRecord
from pipeline.data.formats import (
    AnnotationError,
    box_from_corners,
    finite_numbers,
    image_size,
    records_from_boxes,
)
from pipeline.io import atomic_open

LOG = logging.getLogger(__name__)


def read_dlib_xml(path: str | Path, image_root: str | Path, check_images: bool = True
                  ) -> list[ImageRecord]:
    """dlib imglab XML: ``<image file=...><box top= left= width= height= [ignore='1']/>``.

    Boxes marked ``ignore`` are left out (logged).
    """
    path, image_root = Path(path), Path(image_root)
    try:
        tree = ET.parse(path)
    except ET.ParseError as error:
        raise AnnotationError(f"{path}: not valid XML ({error})") from error
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: annotation file not found") from None
    boxes: dict[str, list[Box]] = {}
    where: dict[str, str] = {}
    for image in tree.getroot().iter("image"):
        file = image.get("file")
        if not file:
            raise AnnotationError(f"{path}: an <image> element has no file attribute")
        boxes.setdefault(file, [])
        where[file] = f"{path}: image {file}"
        for element in image.iter("box"):
            fields = [element.get(key) for key in ("top", "left", "width", "height")]
            if None in fields:
                raise AnnotationError(f"{path}: image {file}: a box lacks top/left/width/"
                                      "height numbers")
            top, left, width, height = finite_numbers(fields, f"{path}: image {file}")
            if element.get("ignore") == "1":
                LOG.info("%s: %s: ignored box skipped", path, file)
                continue
            boxes[file].append(box_from_corners(left, top, left + width, top + height,
                                                f"{path}: image {file}"))
    if not boxes:
        raise AnnotationError(f"{path}: no <image> elements")
    return records_from_boxes(boxes, image_root, where, check_images=check_images)


def read_coco(path: str | Path, image_root: str | Path,
              category: str | None = "face", check_images: bool = True) -> list[ImageRecord]:
    """COCO JSON: ``images``, ``annotations`` with ``bbox`` [x, y, w, h]; crowd boxes dropped.

    ``category`` keeps the annotations of that category name (``None``: all categories).
    With ``check_images``, every image is decoded (as the other formats' are) and must have
    the size the JSON gives; an image id used twice, or an annotation naming no image, is an
    ``AnnotationError``.
    """
    path, image_root = Path(path), Path(image_root)
    from pipeline.io import read_json

    data = read_json(path)
    try:
        categories = {c["id"]: c["name"] for c in data.get("categories", [])}
        images: dict[Any, ImageRecord] = {}
        for entry in data["images"]:
            if entry["id"] in images:
                raise AnnotationError(f"{path}: image id {entry['id']!r} is used twice, for "
                                      f"{images[entry['id']].file!r} and "
                                      f"{entry['file_name']!r}")
            images[entry["id"]] = ImageRecord(entry["file_name"], int(entry["width"]),
                                              int(entry["height"]))
        for index, annotation in enumerate(data.get("annotations", [])):
            here = f"{path}: annotations[{index}]"
            if category is not None and categories.get(annotation["category_id"]) != category:
                continue
            if annotation.get("iscrowd", 0):
                continue
            x, y, w, h = finite_numbers([str(v) for v in annotation["bbox"]], here)
            box = box_from_corners(x, y, x + w, y + h, here)
            score = annotation.get("score")
            if score is not None:
                box = Box(box.x, box.y, box.w, box.h, float(score))
            if annotation["image_id"] not in images:
                raise AnnotationError(f"{here}: image_id {annotation['image_id']!r} is not "
                                      "the id of an image in the file")
            images[annotation["image_id"]].boxes.append(box)
    except (KeyError, TypeError) as error:
        raise AnnotationError(f"{path}: not a COCO file (missing {error})") from error
    for record in images.values() if check_images else []:
        size = image_size(image_root / record.file, str(path))
        if size != (record.width, record.height):
            raise AnnotationError(f"{path}: image {record.file} is {size[0]}x{size[1]} pixels, "
                                  f"the file gives {record.width}x{record.height}: its boxes "
                                  "may be for another image")
    return list(images.values())


def write_coco(records: list[ImageRecord], path: str | Path, detections: bool = False) -> None:
    """Write records as a COCO dataset (ground truth) or, with ``detections``, as a COCO
    results list ``[{image_id, category_id, bbox, score}]`` whose image ids follow the
    order of ``records``."""
    annotations = []
    for image_id, record in enumerate(records):
        for box in record.boxes:
            entry: dict[str, Any] = {"image_id": image_id, "category_id": 1,
                                     "bbox": [box.x, box.y, box.w, box.h]}
            if detections:
                entry["score"] = box.score
            else:
                entry.update(id=len(annotations) + 1, area=box.area, iscrowd=0)
            annotations.append(entry)
    data: Any = annotations if detections else {
        "images": [{"id": i, "file_name": r.file, "width": r.width, "height": r.height}
                   for i, r in enumerate(records)],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "face"}],
    }
    with atomic_open(path) as handle:
        json.dump(data, handle)

"""Annotation formats: one reader per format, each returning the project's ImageRecords.

Readers take the annotation file and the folder its image names are relative to. Errors name
the file and line: malformed lines, missing images, boxes of zero or negative size. Boxes that
reach past the image are clipped with a warning (by :class:`~pipeline.boxes.Manifest`).
Image sizes are read from the image files, so a missing or unreadable image is found here,
before any detector runs.
"""

from __future__ import annotations

import json
import logging
import math
import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.boxes import Box, ImageRecord
from pipeline.io import atomic_open, read_gray

LOG = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".bmp", ".tif", ".tiff", ".gif",
                  ".webp"}


class AnnotationError(ValueError):
    """A malformed annotation, reported with its file and line."""


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; a UTF-8 byte-order mark, CRLF and trailing
    spaces removed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    if not text.strip():
        raise AnnotationError(f"{path}: annotation file is empty")
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line:
            yield number, line


def image_size(path: Path, where: str) -> tuple[int, int]:
    """(width, height) of an image file, decoded in full exactly as the later stages read it
    (:func:`~pipeline.io.read_gray`), so a truncated or corrupt image stops the dataset build
    instead of a later stage; ``AnnotationError`` naming ``where`` and the image."""
    if not path.is_file():
        raise AnnotationError(f"{where}: image {path} not found")
    try:
        image = read_gray(path)
    except ValueError as error:
        reason = str(error).removeprefix(f"{path}: ")
        raise AnnotationError(f"{where}: image {path} is not a readable image ({reason})"
                              ) from None
    return image.shape[1], image.shape[0]


def _numbers(fields: list[str], where: str) -> list[float]:
    """The fields as finite floats; ``AnnotationError`` at ``where`` for text, NaN or inf."""
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise AnnotationError(f"{where}: expected numbers, got {' '.join(fields)!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise AnnotationError(f"{where}: expected finite numbers, got {' '.join(fields)!r}")
    return values


def _box_from_corners(x1: float, y1: float, x2: float, y2: float, where: str) -> Box:
    if x2 <= x1 or y2 <= y1:
        raise AnnotationError(f"{where}: box {x1:g} {y1:g} {x2:g} {y2:g} has zero or negative "
                              "size (x_max <= x_min or y_max <= y_min)")
    return Box(x1, y1, x2 - x1, y2 - y1)


def _records(boxes_by_file: dict[str, list[Box]], image_root: Path, where: dict[str, str],
             extra: dict[str, dict[str, Any]] | None = None, check_images: bool = True
             ) -> list[ImageRecord]:
    """One record per file; sizes read from the images (0 x 0 without ``check_images``)."""
    records = []
    for file, boxes in boxes_by_file.items():
        width, height = (image_size(image_root / file, where[file]) if check_images
                         else (0, 0))
        records.append(ImageRecord(file, width, height, boxes,
                                   attributes=(extra or {}).get(file, {})))
    return records


def read_box_list(path: str | Path, image_root: str | Path, prefix: str = "",
                  image_list: str | Path | None = None, check_images: bool = True
                  ) -> list[ImageRecord]:
    """``<file> x_min y_min x_max y_max [label]`` per face (MIT+CMU, cartoon frame lists).

    ``prefix`` is put before each file name (e.g. ``andy/`` for per-folder lists);
    ``image_list`` (one file name a line) adds the listed images that have no face.
    An optional fifth field is the face's label (a character name), kept in the attributes.
    Without ``check_images`` the images are not read (width and height 0): names only.
    """
    path, image_root = Path(path), Path(image_root)
    boxes: dict[str, list[Box]] = {}
    labels: dict[str, dict[str, Any]] = {}
    where: dict[str, str] = {}
    for number, line in _lines(path):
        fields = line.split()
        here = f"{path}:{number}"
        if len(fields) not in (5, 6):
            raise AnnotationError(f"{here}: expected '<file> x_min y_min x_max y_max [label]', "
                                  f"got {len(fields)} fields")
        file = join_image_name(prefix, fields[0])
        box = _box_from_corners(*_numbers(fields[1:5], here), where=here)
        boxes.setdefault(file, []).append(box)
        labels.setdefault(file, {"labels": []})["labels"].append(
            fields[5] if len(fields) == 6 else None)
        where.setdefault(file, here)
    if image_list is not None:
        for number, line in _lines(Path(image_list)):
            file = join_image_name(prefix, line.split()[0])
            boxes.setdefault(file, [])
            where.setdefault(file, f"{image_list}:{number}")
    return _records(boxes, image_root, where, labels, check_images)


def join_image_name(prefix: str, file: str) -> str:
    """``file`` under the folder ``prefix`` (``""`` or ending in ``/``); an absolute ``file``
    stays as it is."""
    return file if Path(file).is_absolute() else prefix + file


# The points of one face in the MIT+CMU landmark list, in their order in the file.
LANDMARK_NAMES = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_centre", "mouth_right"]


def read_landmarks(path: str | Path, prefix: str = "") -> dict[str, list[list[float]]]:
    """MIT+CMU landmark list: ``<file>`` then the (x y) points of LANDMARK_NAMES per face ->
    file -> [2 * len(LANDMARK_NAMES) numbers]."""
    path = Path(path)
    faces: dict[str, list[list[float]]] = {}
    n_numbers = 2 * len(LANDMARK_NAMES)
    for number, line in _lines(path):
        fields = line.split()
        if len(fields) != n_numbers + 1:
            raise AnnotationError(f"{path}:{number}: expected '<file>' and {n_numbers} numbers "
                                  f"({len(LANDMARK_NAMES)} x y points), got {len(fields)} "
                                  "fields")
        points = _numbers(fields[1:], f"{path}:{number}")
        known = faces.setdefault(_same_name(join_image_name(prefix, fields[0])), [])
        if points in known:  # a duplicated line, as in the box lists: one face
            LOG.warning("%s:%d: landmarks listed more than once; counted once", path, number)
        else:
            known.append(points)
    return faces


def _same_name(file: str) -> str:
    """``file`` as one spelling per path (``./a.jpg`` and ``a.jpg`` alike)."""
    return posixpath.normpath(file)


def attach_landmarks(records: list[ImageRecord], landmarks: dict[str, list[list[float]]],
                     source: str) -> None:
    """Give each box the landmark set that lies inside it (stored per box in attributes)."""
    for record in records:
        points = [np.array(p).reshape(len(LANDMARK_NAMES), 2)
                  for p in landmarks.get(_same_name(record.file), [])]
        assigned: list[list[float] | None] = []
        for box in record.boxes:
            inside = [p for p in points if np.all((p[:, 0] >= box.x) & (p[:, 0] <= box.x + box.w)
                                                   & (p[:, 1] >= box.y)
                                                   & (p[:, 1] <= box.y + box.h))]
            if len(inside) != 1:
                LOG.warning("%s: %s: box %s holds %d landmark sets; no landmarks for it",
                            source, record.file, box.to_list(), len(inside))
            assigned.append(inside[0].reshape(-1).tolist() if len(inside) == 1 else None)
        record.attributes["landmarks"] = assigned


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
            top, left, width, height = _numbers(fields, f"{path}: image {file}")
            if element.get("ignore") == "1":
                LOG.info("%s: %s: ignored box skipped", path, file)
                continue
            boxes[file].append(_box_from_corners(left, top, left + width, top + height,
                                                 f"{path}: image {file}"))
    if not boxes:
        raise AnnotationError(f"{path}: no <image> elements")
    return _records(boxes, image_root, where, check_images=check_images)


def ellipse_to_box(major: float, minor: float, angle: float, cx: float, cy: float) -> Box:
    """Axis-aligned bounding box of an ellipse (radii in pixels, angle in radians)."""
    half_w = math.sqrt((major * math.cos(angle)) ** 2 + (minor * math.sin(angle)) ** 2)
    half_h = math.sqrt((major * math.sin(angle)) ** 2 + (minor * math.cos(angle)) ** 2)
    return Box(cx - half_w, cy - half_h, 2 * half_w, 2 * half_h)


def read_fddb(path: str | Path, image_root: str | Path, suffix: str = ".jpg",
              check_images: bool = True) -> list[ImageRecord]:
    """FDDB ellipse fold: name, face count, then ``ra rb theta cx cy 1`` per face.

    Ellipses become their bounding boxes; the ellipse is kept in the record's attributes.
    With ``check_images=False`` (annotations without images) width and height are 0.
    """
    path, image_root = Path(path), Path(image_root)
    lines = list(_lines(path))
    records, k = [], 0
    while k < len(lines):
        number, name = lines[k]
        if k + 1 >= len(lines):
            raise AnnotationError(f"{path}:{number}: '{name}' has no face count line")
        count_number, count_text = lines[k + 1]
        if not count_text.isdigit():
            raise AnnotationError(f"{path}:{count_number}: expected a face count, "
                                  f"got {count_text!r}")
        count = int(count_text)
        boxes, ellipses = [], []
        for j in range(count):
            if k + 2 + j >= len(lines):
                raise AnnotationError(f"{path}: '{name}' announces {count} faces, file ends")
            face_number, face = lines[k + 2 + j]
            fields = face.split()
            here = f"{path}:{face_number}"
            if len(fields) < 5:
                raise AnnotationError(f"{here}: expected 'ra rb theta cx cy 1', got {face!r}")
            values = _numbers(fields[:5], here)
            if values[0] <= 0 or values[1] <= 0:
                raise AnnotationError(f"{here}: ellipse radii must be positive")
            boxes.append(ellipse_to_box(*values))
            ellipses.append(values)
        file = name + suffix
        if check_images:
            width, height = image_size(image_root / file, f"{path}:{number}")
        else:
            width = height = 0
        records.append(ImageRecord(file, width, height, boxes,
                                   attributes={"ellipses": ellipses}))
        k += 2 + count
    return records


def write_fddb_detections(records: list[ImageRecord], path: str | Path,
                          suffix: str = ".jpg") -> None:
    """Detections in FDDB's output format: name, count, ``left top width height score``."""
    with atomic_open(path) as handle:
        for record in records:
            name = record.file[: -len(suffix)] if record.file.endswith(suffix) else record.file
            handle.write(f"{name}\n{len(record.boxes)}\n")
            for b in record.boxes:
                handle.write(f"{b.x:.2f} {b.y:.2f} {b.w:.2f} {b.h:.2f} {b.score:.6f}\n")


def read_wider(path: str | Path, image_root: str | Path, check_images: bool = True
               ) -> list[ImageRecord]:
    """WIDER FACE ``wider_face_*_bbx_gt.txt``: file, count, ``x y w h blur expr illum invalid
    occlusion pose`` per face (a count of 0 is followed by one line of zeros). Faces flagged
    invalid, and faces of zero width or height (with a warning), are left out."""
    path, image_root = Path(path), Path(image_root)
    degenerate: list[str] = []
    lines = list(_lines(path))
    boxes: dict[str, list[Box]] = {}
    where: dict[str, str] = {}
    k = 0
    while k < len(lines):
        number, file = lines[k]
        if k + 1 >= len(lines) or not lines[k + 1][1].isdigit():
            raise AnnotationError(f"{path}:{number}: '{file}' is not followed by a face count")
        count = int(lines[k + 1][1])
        rows = max(count, 1)  # a count of 0 still has one placeholder row
        if k + 2 + rows > len(lines):
            raise AnnotationError(f"{path}:{number}: '{file}' announces {count} faces, "
                                  "file ends")
        boxes[file], where[file] = [], f"{path}:{number}"
        for face_number, face in lines[k + 2 : k + 2 + rows] if count else []:
            fields = face.split()
            here = f"{path}:{face_number}"
            if len(fields) < 4:
                raise AnnotationError(f"{here}: expected 'x y w h ...', got {face!r}")
            x, y, w, h = _numbers(fields[:4], here)
            if len(fields) >= 8 and fields[7] == "1":
                continue  # invalid face
            if w <= 0 or h <= 0:  # the official files hold a few of these
                degenerate.append(here)
                continue
            boxes[file].append(Box(x, y, w, h))
        k += 2 + rows
    if degenerate:
        LOG.warning("%s: %d faces of zero width or height left out (not scored), e.g. line %s",
                    path, len(degenerate), degenerate[0].rsplit(":", 1)[1])
    return _records(boxes, image_root, where, check_images=check_images)


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
            x, y, w, h = _numbers([str(v) for v in annotation["bbox"]], here)
            box = _box_from_corners(x, y, x + w, y + h, here)
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


def image_files(folder: str | Path) -> list[Path]:
    """The image files of a folder tree, sorted; other files are skipped and logged."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder not found")
    files, skipped = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        (files if path.suffix.lower() in IMAGE_SUFFIXES else skipped).append(path)
    if skipped:
        LOG.info("%s: skipped %d non-image files (e.g. %s)", folder, len(skipped),
                 skipped[0].name)
    return files


YALE_NAME = re.compile(r"yaleB(?P<subject>\d+)_P(?P<pose>\d+)A(?P<azimuth>[+-]\d+)"
                       r"E(?P<elevation>[+-]\d+)\.pgm$")


def read_yale_b(folder: str | Path) -> list[tuple[Path, dict[str, int]]]:
    """Extended Yale B crops with the light direction parsed from each file name.

    Returns (path, {subject, pose, azimuth, elevation}) in degrees; ``_Ambient`` images (no
    light direction) and non-image files are skipped and logged.
    """
    found, ambient = [], 0
    for path in image_files(folder):
        match = YALE_NAME.search(path.name)
        if match is None:
            ambient += 1
            continue
        found.append((path, {k: int(v) for k, v in match.groupdict().items()}))
    if ambient:
        LOG.info("%s: skipped %d images without a light direction (ambient)", folder, ambient)
    if not found:
        raise AnnotationError(f"{folder}: no Yale B images named yaleBNN_P00A+000E+00.pgm")
    return found


def light_angle(azimuth: float, elevation: float) -> float:
    """Angle in degrees between the light direction and the camera axis, rounded to 1e-6
    degrees: light at 20 degrees is 20.0, not 19.99999999999999, and falls in the bin that
    starts at 20."""
    a, e = math.radians(azimuth), math.radians(elevation)
    return round(math.degrees(math.acos(max(-1.0, min(1.0, math.cos(a) * math.cos(e))))), 6)

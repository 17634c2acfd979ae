"""The face benchmarks' text formats, each an image name, a face count, then one line per face:
FDDB ellipse folds (read; detections written in FDDB's output format) and WIDER FACE box lists.

Ellipse radii and centres, and boxes, are in pixels; ellipse angles in radians.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from pipeline.boxes import Box, ImageRecord
from pipeline.data.formats import (
    AnnotationError,
    annotation_lines,
    finite_numbers,
    image_size,
    records_from_boxes,
)
from pipeline.io import atomic_open

LOG = logging.getLogger(__name__)


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
    lines = list(annotation_lines(path))
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
            values = finite_numbers(fields[:5], here)
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
    lines = list(annotation_lines(path))
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
            x, y, w, h = finite_numbers(fields[:4], here)
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
    return records_from_boxes(boxes, image_root, where, check_images=check_images)

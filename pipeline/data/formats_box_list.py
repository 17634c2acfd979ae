"""Line-per-face lists: ``<file> x_min y_min x_max y_max [label]`` box lists (MIT+CMU,
cartoon frame lists) and the MIT+CMU landmark list, attached to the boxes that hold them.

Coordinates are pixels of the image named on the line.
"""

from __future__ import annotations

import logging
import posixpath
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.boxes import Box, ImageRecord
from pipeline.data.formats import (
    AnnotationError,
    annotation_lines,
    box_from_corners,
    finite_numbers,
    join_image_name,
    records_from_boxes,
)

LOG = logging.getLogger(__name__)


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
    for number, line in annotation_lines(path):
        fields = line.split()
        here = f"{path}:{number}"
        if len(fields) not in (5, 6):
            raise AnnotationError(f"{here}: expected '<file> x_min y_min x_max y_max [label]', "
                                  f"got {len(fields)} fields")
        file = join_image_name(prefix, fields[0])
        box = box_from_corners(*finite_numbers(fields[1:5], here), where=here)
        boxes.setdefault(file, []).append(box)
        labels.setdefault(file, {"labels": []})["labels"].append(
            fields[5] if len(fields) == 6 else None)
        where.setdefault(file, here)
    if image_list is not None:
        for number, line in annotation_lines(Path(image_list)):
            file = join_image_name(prefix, line.split()[0])
            boxes.setdefault(file, [])
            where.setdefault(file, f"{image_list}:{number}")
    return records_from_boxes(boxes, image_root, where, labels, check_images)


# The points of one face in the MIT+CMU landmark list, in their order in the file.
LANDMARK_NAMES = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_centre", "mouth_right"]


def read_landmarks(path: str | Path, prefix: str = "") -> dict[str, list[list[float]]]:
    """MIT+CMU landmark list: ``<file>`` then the (x y) points of LANDMARK_NAMES per face ->
    file -> [2 * len(LANDMARK_NAMES) numbers]."""
    path = Path(path)
    faces: dict[str, list[list[float]]] = {}
    n_numbers = 2 * len(LANDMARK_NAMES)
    for number, line in annotation_lines(path):
        fields = line.split()
        if len(fields) != n_numbers + 1:
            raise AnnotationError(f"{path}:{number}: expected '<file>' and {n_numbers} numbers "
                                  f"({len(LANDMARK_NAMES)} x y points), got {len(fields)} "
                                  "fields")
        points = finite_numbers(fields[1:], f"{path}:{number}")
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

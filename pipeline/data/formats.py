"""What every annotation reader shares: the error type, line and number parsing, image sizes,
image folders.

One module per format family holds the readers (``formats_box_list``, ``formats_dlib_coco``,
``formats_fddb_wider``, ``formats_yale``), each returning the project's ImageRecords. Readers
take the annotation file and the folder its image names are relative to. Errors name the file
and line: malformed lines, missing images, boxes of zero or negative size. Boxes that reach past
the image are clipped with a warning (by :class:`~pipeline.boxes.Manifest`). Image sizes are
read from the image files, so a missing or unreadable image is found here, before any detector
runs. Boxes are in pixels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.boxes import Box, ImageRecord
from pipeline.io import read_gray

LOG = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".bmp", ".tif", ".tiff", ".gif",
                  ".webp"}


class AnnotationError(ValueError):
    """A malformed annotation, reported with its file and line."""


def annotation_lines(path: Path) -> Iterator[tuple[int, str]]:
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


def finite_numbers(fields: list[str], where: str) -> list[float]:
    """The fields as finite floats; ``AnnotationError`` at ``where`` for text, NaN or inf."""
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise AnnotationError(f"{where}: expected numbers, got {' '.join(fields)!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise AnnotationError(f"{where}: expected finite numbers, got {' '.join(fields)!r}")
    return values


def box_from_corners(x1: float, y1: float, x2: float, y2: float, where: str) -> Box:
    """The box with corners (x1, y1) and (x2, y2); ``AnnotationError`` at ``where`` if it has
    zero or negative size."""
    if x2 <= x1 or y2 <= y1:
        raise AnnotationError(f"{where}: box {x1:g} {y1:g} {x2:g} {y2:g} has zero or negative "
                              "size (x_max <= x_min or y_max <= y_min)")
    return Box(x1, y1, x2 - x1, y2 - y1)


def records_from_boxes(boxes_by_file: dict[str, list[Box]], image_root: Path,
                       where: dict[str, str], extra: dict[str, dict[str, Any]] | None = None,
                       check_images: bool = True) -> list[ImageRecord]:
    """One record per file; sizes read from the images (0 x 0 without ``check_images``)."""
    records = []
    for file, boxes in boxes_by_file.items():
        width, height = (image_size(image_root / file, where[file]) if check_images
                         else (0, 0))
        records.append(ImageRecord(file, width, height, boxes,
                                   attributes=(extra or {}).get(file, {})))
    return records


def join_image_name(prefix: str, file: str) -> str:
    """``file`` under the folder ``prefix`` (``""`` or ending in ``/``); an absolute ``file``
    stays as it is."""
    return file if Path(file).is_absolute() else prefix + file


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

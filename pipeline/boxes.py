"""The project's one box and annotation type, and their JSON form.

A box is axis-aligned, in pixels, ``(x, y, w, h)`` with ``(x, y)`` the top-left corner;
``score`` is the detector's confidence (1.0 for ground truth). An :class:`ImageRecord` is one
image of a dataset with its boxes; a :class:`Manifest` is a list of them with the folder the
image files live in. Ground truth and detections use the same types and the same file format.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io import read_json, write_json

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in pixels; ``score`` is a confidence, higher is more sure."""

    x: float
    y: float
    w: float
    h: float
    score: float = 1.0

    @property
    def area(self) -> float:
        return max(self.w, 0.0) * max(self.h, 0.0)

    def iou(self, other: Box) -> float:
        """Intersection over union with ``other`` (0 when either box is empty)."""
        return float(iou_matrix([self], [other])[0, 0])

    def clipped(self, width: int, height: int) -> Box:
        """This box cut to the image ``[0, width) x [0, height)``."""
        x1, y1 = max(self.x, 0.0), max(self.y, 0.0)
        x2, y2 = min(self.x + self.w, float(width)), min(self.y + self.h, float(height))
        return Box(x1, y1, max(x2 - x1, 0.0), max(y2 - y1, 0.0), self.score)

    def to_list(self, with_score: bool = False) -> list[float]:
        values = [self.x, self.y, self.w, self.h]
        return values + [self.score] if with_score else values

    @classmethod
    def from_list(cls, values: list[float]) -> Box:
        """``[x, y, w, h]`` or ``[x, y, w, h, score]``."""
        if len(values) not in (4, 5):
            raise ValueError(f"a box needs 4 or 5 numbers [x, y, w, h(, score)], got {values!r}")
        return cls(*(float(v) for v in values))


def boxes_to_array(boxes: list[Box]) -> np.ndarray:
    """Boxes as a float64 array of shape (N, 4) in ``x, y, w, h``."""
    return np.array([[b.x, b.y, b.w, b.h] for b in boxes], dtype=np.float64).reshape(-1, 4)


def _intersections(a: list[Box] | np.ndarray, b: list[Box] | np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise intersection areas (len(a), len(b)) and the areas of a (N, 1) and b (M,)."""
    a = boxes_to_array(a) if isinstance(a, list) else np.asarray(a, dtype=np.float64)
    b = boxes_to_array(b) if isinstance(b, list) else np.asarray(b, dtype=np.float64)
    ax1, ay1 = a[:, 0:1], a[:, 1:2]
    ax2, ay2 = ax1 + a[:, 2:3], ay1 + a[:, 3:4]
    bx1, by1 = b[:, 0], b[:, 1]
    bx2, by2 = bx1 + b[:, 2], by1 + b[:, 3]
    inter_w = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None)
    inter_h = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    area_a = np.clip(a[:, 2:3], 0, None) * np.clip(a[:, 3:4], 0, None)
    area_b = np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None)
    return inter_w * inter_h, area_a, area_b


def iou_matrix(a: list[Box] | np.ndarray, b: list[Box] | np.ndarray) -> np.ndarray:
    """Pairwise intersection over union, shape (len(a), len(b)); empty boxes give 0."""
    inter, area_a, area_b = _intersections(a, b)
    union = area_a + area_b - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def overlap_matrix(a: list[Box] | np.ndarray, b: list[Box] | np.ndarray) -> np.ndarray:
    """Pairwise intersection over the smaller of the two areas, shape (len(a), len(b)).

    1 when one box lies inside the other, whatever their sizes.
    """
    inter, area_a, area_b = _intersections(a, b)
    smaller = np.minimum(area_a, area_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(smaller > 0, inter / smaller, 0.0)


def edge_offsets(windows: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """MTCNN-style regression targets: each edge of ``boxes`` minus the same edge of
    ``windows``, in units of the window's width (x edges) or height (y edges).

    ``windows`` and ``boxes`` (K, 4) ``x, y, w, h``; returns (K, 4): left, top, right, bottom.
    """
    windows, boxes = np.asarray(windows, np.float64), np.asarray(boxes, np.float64)
    size = np.concatenate([windows[:, 2:], windows[:, 2:]], axis=1)
    return (_edges(boxes) - _edges(windows)) / size


def refine_boxes(windows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Windows (K, 4) ``x, y, w, h`` moved edge by edge by ``offsets`` (K, 4) as
    :func:`edge_offsets` defines them; the inverse of that function. Returns (K, 4)."""
    windows = np.asarray(windows, np.float64)
    size = np.concatenate([windows[:, 2:], windows[:, 2:]], axis=1)
    edges = _edges(windows) + np.asarray(offsets, np.float64) * size
    return np.concatenate([edges[:, :2], edges[:, 2:] - edges[:, :2]], axis=1)


def _edges(boxes: np.ndarray) -> np.ndarray:
    """``x, y, w, h`` (K, 4) -> left, top, right, bottom (K, 4)."""
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


@dataclass
class ImageRecord:
    """One image of a dataset: its file (relative to the manifest's root), size and boxes."""

    file: str
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, with_score: bool) -> dict[str, Any]:
        record: dict[str, Any] = {
            "file": self.file,
            "width": self.width,
            "height": self.height,
            "boxes": [b.to_list(with_score) for b in self.boxes],
        }
        if self.attributes:
            record["attributes"] = self.attributes
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ImageRecord:
        return cls(
            file=str(record["file"]),
            width=int(record["width"]),
            height=int(record["height"]),
            boxes=[Box.from_list(b) for b in record["boxes"]],
            attributes=dict(record.get("attributes", {})),
        )


@dataclass
class Manifest:
    """A list of image records; ``root`` is the folder the image files are relative to.

    Written as JSON: ``{"kind", "root", "meta", "images": [{file, width, height, boxes}]}``
    where ``kind`` is ``"ground_truth"`` or ``"detections"`` and ``root`` is stored relative to
    the JSON file so a results folder can be moved as a whole.
    """

    kind: str
    root: Path
    images: list[ImageRecord]
    meta: dict[str, Any] = field(default_factory=dict)

    def image_path(self, record: ImageRecord) -> Path:
        return self.root / record.file

    @property
    def n_boxes(self) -> int:
        return sum(len(r.boxes) for r in self.images)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        root = Path(_relative(self.root, path.parent))
        write_json(
            path,
            {
                "kind": self.kind,
                "root": root.as_posix(),
                "meta": self.meta,
                "images": [r.to_dict(self.kind == "detections") for r in self.images],
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        """Read a manifest; errors name the file and the image.

        Boxes of zero or negative size are errors; ground-truth boxes reaching past the image
        border are clipped to it, with a warning.
        """
        path = Path(path)
        data = read_json(path)
        try:
            kind, records = data["kind"], data["images"]
        except (KeyError, TypeError) as error:
            raise ValueError(f"{path}: not a valid manifest (missing {error})") from error
        images = []
        for index, record in enumerate(records):
            try:
                images.append(ImageRecord.from_dict(record))
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{path}: image {index}: not a valid record ({error!r})"
                                 ) from error
        manifest = cls(kind, (path.parent / data.get("root", ".")).resolve(), images,
                       data.get("meta", {}))
        manifest.check(str(path))
        return manifest

    def check(self, where: str = "manifest") -> None:
        """Validate in place: one record per file name; finite boxes of positive size;
        ground-truth boxes reaching past the image clipped to it, with a warning.
        ``ValueError`` naming ``where`` and the image otherwise."""
        seen: set[str] = set()
        for record in self.images:
            if record.file in seen:
                raise ValueError(f"{where}: image {record.file!r} is listed more than once")
            seen.add(record.file)
            _checked(record, self.kind == "ground_truth", f"{where}: {record.file}")


def _checked(record: ImageRecord, clip: bool, where: str) -> ImageRecord:
    """``record`` with validated boxes: no empty boxes; clipped to the image when ``clip``."""
    boxes = []
    for k, box in enumerate(record.boxes):
        if not all(map(math.isfinite, (box.x, box.y, box.w, box.h, box.score))):
            raise ValueError(f"{where}: box {k} {box.to_list(with_score=True)} holds a number "
                             "that is not finite")
        if not (box.w > 0 and box.h > 0):
            raise ValueError(f"{where}: box {k} {box.to_list()} has zero or negative size")
        if clip:
            inside = box.clipped(record.width, record.height)
            if inside != box:
                if inside.area == 0:
                    raise ValueError(f"{where}: box {k} {box.to_list()} lies outside the "
                                     f"{record.width}x{record.height} image")
                LOG.warning("%s: box %d %s reaches past the %dx%d image; clipped", where, k,
                            box.to_list(), record.width, record.height)
                box = inside
        boxes.append(box)
    record.boxes = boxes
    return record


def _relative(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(Path(target).resolve(), Path(start).resolve())

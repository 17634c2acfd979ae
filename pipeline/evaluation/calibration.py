"""Per-detector linear box calibration, fitted on training or development data only.

Detectors draw boxes by their own convention (the Haar cascade's square is larger than a
tight brow-to-mouth box, say). The calibration maps a detection ``(x, y, w, h)`` with centre
``(cx, cy)`` to centre ``(cx + dx * w, cy + dy * h)`` and size ``(sw * w, sh * h)``; each of
the four numbers is the median over the faces of the fitting set paired with a detection, so a
few bad pairs do not move it.

A face pairs with its highest-scoring detection whose centre lies inside the face box and
whose size (square root of the area) is within ``size_factor`` of the face's. The rule asks
nothing of the overlap, so it holds for any box convention: a pairing by IoU would drop the
faces of a detector whose boxes are much smaller or larger than the annotations, and fit the
calibration on the few whose boxes happen to be closest to the annotation's convention.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.boxes import Box, Manifest, boxes_to_array


@dataclass(frozen=True)
class BoxCalibration:
    dx: float = 0.0
    dy: float = 0.0
    sw: float = 1.0
    sh: float = 1.0
    n_pairs: int = 0

    def apply(self, box: Box) -> Box:
        w, h = box.w * self.sw, box.h * self.sh
        cx = box.x + box.w / 2 + self.dx * box.w
        cy = box.y + box.h / 2 + self.dy * box.h
        return Box(cx - w / 2, cy - h / 2, w, h, box.score)

    def apply_to(self, detections: Manifest) -> Manifest:
        for record in detections.images:
            record.boxes = [self.apply(b) for b in record.boxes]
        return detections

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BoxCalibration:
        """From a calibration file's dict (other keys, such as ``fitted_on``, are ignored)."""
        return cls(**{k: values[k] for k in ("dx", "dy", "sw", "sh", "n_pairs")})


def pair_faces(faces: list[Box], detections: list[Box], size_factor: float = 2.0
               ) -> list[tuple[Box, Box]]:
    """Each face with its best detection: centre inside the face, size within ``size_factor``.

    Returns ``(face, detection)`` pairs; a face with no such detection is left out, and one
    detection may pair with two faces.
    """
    if not faces or not detections:
        return []
    f, d = boxes_to_array(faces), boxes_to_array(detections)
    centre = (d[:, :2] + d[:, 2:] / 2)[None]                            # (1, M, 2)
    top_left, bottom_right = f[:, None, :2], f[:, None, :2] + f[:, None, 2:]   # (N, 1, 2)
    inside = ((centre >= top_left) & (centre <= bottom_right)).all(axis=2)     # (N, M)
    with np.errstate(divide="ignore", invalid="ignore"):   # an empty face pairs with nothing
        ratio = np.sqrt(d[None, :, 2] * d[None, :, 3]) / np.sqrt(f[:, None, 2] * f[:, None, 3])
    admissible = inside & (ratio <= size_factor) & (ratio >= 1 / size_factor)   # (N, M)
    scores = np.array([b.score for b in detections])
    pairs = []
    for t, row in enumerate(admissible):
        if row.any():
            best = int(np.argmax(np.where(row, scores, -np.inf)))
            pairs.append((faces[t], detections[best]))
    return pairs


def fit_calibration(truth: Manifest, detections: Manifest, size_factor: float = 2.0
                    ) -> BoxCalibration:
    """Fit the four medians on every face of ``truth`` that :func:`pair_faces` pairs."""
    found = {r.file: r.boxes for r in detections.images}
    pairs = [pair for record in truth.images
             for pair in pair_faces(record.boxes, found.get(record.file, []), size_factor)]
    if not pairs:
        raise ValueError("no detection lies on a face (centre inside, size within a factor "
                         f"{size_factor:g}): cannot fit a box calibration")
    t = boxes_to_array([face for face, _ in pairs])
    d = boxes_to_array([det for _, det in pairs])
    d_centre, t_centre = d[:, :2] + d[:, 2:] / 2, t[:, :2] + t[:, 2:] / 2
    offset = (t_centre - d_centre) / d[:, 2:]
    scale = t[:, 2:] / d[:, 2:]
    return BoxCalibration(float(np.median(offset[:, 0])), float(np.median(offset[:, 1])),
                          float(np.median(scale[:, 0])), float(np.median(scale[:, 1])),
                          len(pairs))

"""Per-detector linear box calibration, fitted on training or development data only.

Detectors draw boxes by their own convention (the Haar cascade's square is larger than a
tight brow-to-mouth box, say). The calibration maps a detection ``(x, y, w, h)`` with centre
``(cx, cy)`` to centre ``(cx + dx * w, cy + dy * h)`` and size ``(sw * w, sh * h)``; each of
the four numbers is the median over detections matched to a face (IoU >= ``min_iou``) of the
fitting set, so a few bad matches do not move it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.boxes import Box, Manifest, boxes_to_array, iou_matrix


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


def fit_calibration(truth: Manifest, detections: Manifest, min_iou: float = 0.3
                    ) -> BoxCalibration:
    """Fit on pairs of each face and its best-overlapping detection (IoU >= ``min_iou``)."""
    found = {r.file: r for r in detections.images}
    pairs_det, pairs_truth = [], []
    for record in truth.images:
        boxes = found.get(record.file)
        if boxes is None or not record.boxes or not boxes.boxes:
            continue
        overlaps = iou_matrix(record.boxes, boxes.boxes)
        for t, row in enumerate(overlaps):
            best = int(np.argmax(row))
            if row[best] >= min_iou:
                pairs_truth.append(record.boxes[t])
                pairs_det.append(boxes.boxes[best])
    if not pairs_det:
        raise ValueError("no detection overlaps a face: cannot fit a box calibration")
    d, t = boxes_to_array(pairs_det), boxes_to_array(pairs_truth)
    d_centre, t_centre = d[:, :2] + d[:, 2:] / 2, t[:, :2] + t[:, 2:] / 2
    offset = (t_centre - d_centre) / d[:, 2:]
    scale = t[:, 2:] / d[:, 2:]
    return BoxCalibration(float(np.median(offset[:, 0])), float(np.median(offset[:, 1])),
                          float(np.median(scale[:, 0])), float(np.median(scale[:, 1])),
                          len(pairs_det))

"""Per-detector linear box calibration, fitted on training or development data only.

Detectors draw boxes by their own convention (the Haar cascade's square is larger than a
tight brow-to-mouth box, say). The calibration maps a detection ``(x, y, w, h)`` with centre
``(cx, cy)`` to centre ``(cx + dx * w, cy + dy * h)`` and size ``(sw * w, sh * h)``.

It is fitted for the criterion it serves: the four numbers that give the highest AP on the
fitting set (a training or development set, never a test set), under the run's matching
criterion. The search starts from the better of the boxes as drawn and the medians over the
faces paired with a detection (:func:`pair_faces`; one comparison, so no minimum gain), then
moves one number at a time over a grid (:data:`STEPS`) while AP rises by at least
:data:`MIN_GAIN`. The medians alone are not enough: a face pairs with its
highest-scoring detection centred in it, which for a trained cascade is often a window on part
of the face (0.65-0.82 of its width on Yale B), so the medians enlarge every box and the
face-sized ones then miss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from pipeline.boxes import Box, Manifest, boxes_to_array
from pipeline.evaluation.metrics import (
    Criterion,
    average_precision,
    face_sizes,
    match_manifests,
    pooled_curve,
)


@dataclass(frozen=True)
class BoxCalibration:
    dx: float = 0.0
    dy: float = 0.0
    sw: float = 1.0
    sh: float = 1.0

    def apply(self, box: Box) -> Box:
        w, h = box.w * self.sw, box.h * self.sh
        cx = box.x + box.w / 2 + self.dx * box.w
        cy = box.y + box.h / 2 + self.dy * box.h
        return Box(cx - w / 2, cy - h / 2, w, h, box.score)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BoxCalibration:
        """From a calibration file's dict (other keys, such as ``fitted_on``, are ignored)."""
        return cls(**{k: values[k] for k in ("dx", "dy", "sw", "sh")})


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


def median_calibration(truth: Manifest, detections: Manifest, size_factor: float = 2.0,
                       min_face_size: float | None = None) -> tuple[BoxCalibration | None, int]:
    """The four medians over every scored face of ``truth`` (none under ``min_face_size``)
    that :func:`pair_faces` pairs, and the number of faces paired; None when none pairs."""
    found = {r.file: r.boxes for r in detections.images}
    pairs = [pair for record in truth.images
             for pair in pair_faces([b for b in record.boxes
                                     if np.sqrt(b.w * b.h) >= (min_face_size or 0)],
                                    found.get(record.file, []), size_factor)]
    if not pairs:
        return None, 0
    t = boxes_to_array([face for face, _ in pairs])
    d = boxes_to_array([det for _, det in pairs])
    d_centre, t_centre = d[:, :2] + d[:, 2:] / 2, t[:, :2] + t[:, 2:] / 2
    offset = (t_centre - d_centre) / d[:, 2:]
    scale = t[:, 2:] / d[:, 2:]
    return BoxCalibration(float(np.median(offset[:, 0])), float(np.median(offset[:, 1])),
                          float(np.median(scale[:, 0])), float(np.median(scale[:, 1]))), len(pairs)


# The search's grid, in steps k from its starting point: a size scale is the start's times
# 2 ** (k / 8), a centre shift the start's plus 0.025 k of the box. A round tries, for each of
# sw, sh, dx, dy in turn, the steps k +- 1 .. +- 4 from that number's step when its turn
# starts, nearest first (the others at the current point), and moves when AP rises by at least
# MIN_GAIN, and by at least half of one face's share (0.5 / faces scored): smaller gains are
# re-rankings that do not carry to other images. MIN_GAIN was chosen on development data only
# (held-out subjects of yaleb_dev, held-out halves of louie_calibration;
# docs/results/2026-12-07-box-calibration-dev.md). At most MAX_ROUNDS rounds.
SCALE_STEP, SHIFT_STEP = 2 ** (1 / 8), 0.025
STEPS = (-1, 1, -2, 2, -3, 3, -4, 4)
MIN_GAIN = 0.01
MAX_ROUNDS = 6
NAMES = ("sw", "sh", "dx", "dy")


@dataclass(frozen=True)
class CalibrationFit:
    """The chosen calibration; where the search started; the faces the medians paired; and
    every candidate tried with its AP on the fitting set (``dx, dy, sw, sh,
    average_precision``), in the order tried: the first is the boxes as drawn."""

    chosen: BoxCalibration
    start: str
    n_paired_faces: int
    candidates: list[dict[str, float]]
    average_precision: float           # of the chosen calibration, on the fitting set

    @property
    def average_precision_uncalibrated(self) -> float:
        """AP of the boxes as drawn on the fitting set."""
        return self.candidates[0]["average_precision"]


def calibrated(calibration: BoxCalibration, detections: Manifest) -> Manifest:
    """A copy of ``detections`` with every box mapped (the input is left as it is)."""
    return replace(detections, images=[replace(r, boxes=[calibration.apply(b) for b in r.boxes])
                                       for r in detections.images])


def on_grid(start: BoxCalibration, steps: tuple[int, int, int, int]) -> BoxCalibration:
    """The calibration ``steps`` (sw, sh, dx, dy) grid steps away from ``start``."""
    ksw, ksh, kdx, kdy = steps
    return BoxCalibration(start.dx + SHIFT_STEP * kdx, start.dy + SHIFT_STEP * kdy,
                          start.sw * SCALE_STEP ** ksw, start.sh * SCALE_STEP ** ksh)


def fit_calibration(truth: Manifest, detections: Manifest, criterion: Criterion | None = None,
                    min_face_size: float | None = None, size_factor: float = 2.0,
                    min_gain: float = MIN_GAIN) -> CalibrationFit:
    """The calibration with the highest AP on ``truth`` under ``criterion`` (IoU >= 0.5 by
    default; faces under ``min_face_size`` not scored), by the search the module describes
    (a move must gain at least ``min_gain`` AP, and half of one face's share).

    Of equal candidates the one tried first is kept, so the boxes as drawn beat the medians at
    equal AP. With no face paired and none matched under any candidate, the boxes stay as
    drawn (AP 0). Raises ``ValueError`` when the set has no face to score.
    """
    criterion = criterion or Criterion()
    n_scored = sum(int((face_sizes(r.boxes) >= (min_face_size or 0)).sum())
                   for r in truth.images)
    if not n_scored:
        raise ValueError("the fitting set has no face to score"
                         + (f" (none of at least {min_face_size} px)" if min_face_size else ""))
    min_gain = max(min_gain, 0.5 / n_scored)
    candidates: list[dict[str, float]] = []

    def score(candidate: BoxCalibration) -> float:
        matches = match_manifests(truth, calibrated(candidate, detections), criterion,
                                  min_face_size)
        candidates.append({**candidate.to_dict(),
                           "average_precision": average_precision(pooled_curve(matches))})
        return candidates[-1]["average_precision"]

    medians, n_pairs = median_calibration(truth, detections, size_factor, min_face_size)
    origin, start = BoxCalibration(), "boxes as drawn"
    best_ap = score(origin)
    if medians is not None and (ap := score(medians)) > best_ap:
        origin, start, best_ap = medians, "medians of the paired faces", ap
    point, tried = [0, 0, 0, 0], {(0, 0, 0, 0)}
    for _ in range(MAX_ROUNDS):
        moved = False
        for axis in range(len(NAMES)):
            here = point[axis]
            for step in STEPS:
                trial = list(point)
                trial[axis] = here + step
                if tuple(trial) in tried:
                    continue
                tried.add(tuple(trial))
                if (ap := score(on_grid(origin, tuple(trial)))) >= best_ap + min_gain:
                    point, best_ap, moved = trial, ap, True
        if not moved:
            break
    return CalibrationFit(on_grid(origin, tuple(point)), start, n_pairs, candidates, best_ap)

"""Evaluation protocol options: the landmark criterion and the box calibration."""

import numpy as np
import pytest

from pipeline.boxes import Box, ImageRecord, Manifest
from pipeline.evaluation.calibration import BoxCalibration, fit_calibration, pair_faces
from pipeline.evaluation.metrics import Criterion, evaluate, match_image

FACE = Box(20, 20, 40, 40)
# left eye, right eye, nose, mouth left, mouth centre, mouth right
MARKS = [30, 32, 50, 32, 40, 42, 32, 52, 40, 54, 48, 52]
LANDMARKS = Criterion("landmarks", iou_threshold=0.5, size_factor=2.0)


@pytest.mark.parametrize("detection, matched", [
    (Box(26, 28, 28, 30), True),    # tight box around eyes and mouth: IoU 0.52 but also fits
    (Box(28, 30, 24, 26), True),    # tighter still: IoU < 0.5, yet eyes and mouth inside
    (Box(0, 0, 100, 100), False),   # holds everything but is 2.5 times the face
    (Box(20, 20, 40, 25), False),   # misses the mouth
    (Box(35, 20, 40, 40), False),   # misses the left eye
])
def test_landmark_criterion(detection, matched):
    _, hits = match_image([FACE], [detection], LANDMARKS, [MARKS])
    assert hits.tolist() == [matched]


def test_landmark_criterion_prefers_the_closest_size_and_falls_back_to_iou():
    far = Box(0, 0, 100, 100, 0.1)
    faces = [FACE, Box(200, 200, 40, 40)]
    _, hits = match_image(faces, [Box(210, 200, 40, 40, 0.9), far], LANDMARKS, [MARKS, None])
    assert hits.tolist() == [True, False]  # second face has no landmarks: IoU 0.6 decides
    assert Criterion.from_settings({"iou_threshold": 0.4}) == Criterion("iou", 0.4, 2.0)


def test_evaluate_reports_the_criterion():
    truth = Manifest("ground_truth", ".", [ImageRecord("a", 100, 100, [FACE],
                                                       attributes={"landmarks": [MARKS]})])
    detections = Manifest("detections", ".", [ImageRecord("a", 100, 100,
                                                          [Box(28, 30, 24, 26, 1.0)])])
    assert evaluate(truth, detections, 0.5, [0])["average_precision"] == 0.0
    metrics = evaluate(truth, detections, LANDMARKS, [0])
    assert metrics["average_precision"] == 1.0
    assert metrics["criterion"]["kind"] == "landmarks"
    assert metrics["criterion"]["faces_judged_by_landmarks"] == 1


def test_calibration_recovers_a_known_convention():
    """Detections 1.5x larger and shifted up by 10% map back onto the faces exactly."""
    faces = [Box(10 + 60 * k, 30, 40, 40) for k in range(5)]
    shifted = [Box(b.x - 10, b.y - 10 - 0.1 * 60, 60, 60, 0.9) for b in faces]
    truth = Manifest("ground_truth", ".", [ImageRecord("a", 400, 200, faces)])
    detections = Manifest("detections", ".", [ImageRecord("a", 400, 200, shifted)])
    fitted = fit_calibration(truth, detections)
    assert (fitted.sw, fitted.sh) == pytest.approx((2 / 3, 2 / 3))
    assert (fitted.dx, fitted.dy) == pytest.approx((0.0, 0.1))
    assert fitted.n_pairs == 5
    for face, box in zip(faces, fitted.apply_to(detections).images[0].boxes, strict=True):
        assert box.iou(face) == pytest.approx(1.0)
        assert box.score == 0.9


def test_calibration_pairs_boxes_of_any_overlap():
    """Boxes 0.52-0.76 times the face (IoU 0.27-0.58) all pair; the sizes' median is fitted.

    A pairing by IoU >= 0.3 would keep only the larger boxes and fit too small a scale.
    """
    ratios = np.linspace(0.52, 0.76, 9)
    faces = [Box(10 + 100 * k, 40, 80, 80) for k in range(len(ratios))]
    small = [Box(f.x + 40 - 40 * r, f.y + 30 - 40 * r, 80 * r, 80 * r, 0.5)
             for f, r in zip(faces, ratios, strict=True)]          # centred 10 px above
    truth = Manifest("ground_truth", ".", [ImageRecord("a", 1000, 200, faces)])
    fitted = fit_calibration(truth, Manifest("detections", ".",
                                             [ImageRecord("a", 1000, 200, small)]))
    assert fitted.n_pairs == len(ratios)
    assert fitted.sw == pytest.approx(float(np.median(1 / ratios)))
    assert fitted.sh == pytest.approx(fitted.sw)
    assert fitted.dy == pytest.approx(float(np.median(10 / (80 * ratios))))
    assert fitted.dx == pytest.approx(0.0)
    assert min(f.iou(b) for f, b in zip(faces, small, strict=True)) < 0.3


def test_pairing_takes_the_best_admissible_detection():
    face = Box(100, 100, 50, 50)
    candidates = [Box(105, 105, 40, 40, 0.4),       # admissible
                  Box(110, 110, 30, 30, 0.9),       # admissible, higher score: chosen
                  Box(80, 80, 120, 120, 1.0),       # centre inside, but 2.4x the face
                  Box(120, 120, 12, 12, 3.0),       # centre inside, but under half its size
                  Box(140, 100, 50, 50, 2.0)]       # centre outside the face
    assert pair_faces([face], candidates) == [(face, candidates[1])]
    assert pair_faces([face], candidates[2:]) == []
    assert pair_faces([face], candidates[2:3], size_factor=3.0) == [(face, candidates[2])]
    assert pair_faces([face], candidates[3:4], size_factor=5.0) == [(face, candidates[3])]


def test_identity_calibration_and_no_overlap():
    box = Box(1, 2, 3, 4, 0.5)
    assert BoxCalibration().apply(box) == box
    truth = Manifest("ground_truth", ".", [ImageRecord("a", 100, 100, [Box(0, 0, 10, 10)])])
    far = Manifest("detections", ".", [ImageRecord("a", 100, 100, [Box(50, 50, 10, 10)])])
    with pytest.raises(ValueError, match="cannot fit"):
        fit_calibration(truth, far)

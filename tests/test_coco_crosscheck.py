"""Cross-check the project's matching and AP against pycocotools on the same detections."""

import contextlib
import io

import numpy as np
import pytest

from pipeline.evaluation.metrics import (
    COCO_RECALL_LEVELS,
    average_precision,
    evaluate,
    match_manifests,
    pooled_curve,
)
from tests.test_metrics import random_case

pycocotools = pytest.importorskip("pycocotools")


def coco_ap(truth, detections, iou):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i, "width": r.width, "height": r.height} for i, r in enumerate(truth.images)]
    annotations = [{"id": len(images) * 100 + k * 10 + j, "image_id": k, "category_id": 1,
                    "bbox": [b.x, b.y, b.w, b.h], "area": b.w * b.h, "iscrowd": 0}
                   for k, r in enumerate(truth.images) for j, b in enumerate(r.boxes)]
    ground = COCO()
    ground.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": 1, "name": "face"}]}
    with contextlib.redirect_stdout(io.StringIO()):
        ground.createIndex()
        found = ground.loadRes([{"image_id": k, "category_id": 1, "bbox": [b.x, b.y, b.w, b.h],
                                 "score": b.score}
                                for k, r in enumerate(detections.images) for b in r.boxes])
        evaluation = COCOeval(ground, found, "bbox")
        evaluation.params.iouThrs = np.array([iou])
        evaluation.params.maxDets = [1000]
        evaluation.params.areaRng = [[0, 1e10]]
        evaluation.params.areaRngLbl = ["all"]
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"][0, :, 0, 0, 0]
    return float(np.mean(precision[precision > -1])) if (precision > -1).any() else float("nan")


@pytest.mark.parametrize("seed", range(25))
def test_coco_ap_matches_pycocotools(seed):
    rng = np.random.default_rng(seed)
    truth, detections = random_case(rng)
    for record in detections.images:  # distinct scores: COCO has no tie handling
        record.boxes = [b.__class__(b.x, b.y, b.w, b.h, rng.random()) for b in record.boxes]
    if truth.n_boxes == 0 or detections.n_boxes == 0:
        pytest.skip("COCO leaves AP undefined here")
    ours = evaluate(truth, detections, 0.5, [0])
    assert ours["average_precision_coco101"] == pytest.approx(coco_ap(truth, detections, 0.5),
                                                              abs=1e-9)
    # the all-point AP differs from the 101-point one only by the recall discretisation
    assert abs(ours["average_precision"] - ours["average_precision_coco101"]) < 0.02


def test_coco_levels_on_a_known_curve():
    from pipeline.boxes import Box, ImageRecord, Manifest

    truth = Manifest("ground_truth", ".", [ImageRecord("a", 100, 100, [Box(0, 0, 10, 10),
                                                                        Box(20, 0, 10, 10)])])
    detections = Manifest("detections", ".", [ImageRecord("a", 100, 100, [Box(0, 0, 10, 10, 0.9)])])
    curve = pooled_curve(match_manifests(truth, detections, 0.5))
    # precision 1 up to recall 0.5 (51 of the 101 levels), 0 beyond
    assert average_precision(curve, COCO_RECALL_LEVELS) == pytest.approx(51 / 101)
    assert average_precision(curve) == pytest.approx(0.5)

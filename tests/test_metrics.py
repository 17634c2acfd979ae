import numpy as np
import pytest

from pipeline.boxes import Box, ImageRecord, Manifest
from pipeline.evaluation.metrics import (
    average_precision,
    detection_rate_at,
    evaluate,
    match_image,
    pr_curve,
)


def manifest(kind, boxes_per_image):
    return Manifest(kind, ".", [ImageRecord(f"{i}.png", 100, 100, boxes)
                                for i, boxes in enumerate(boxes_per_image)])


def random_case(rng):
    truth, detections = [], []
    for _ in range(rng.integers(1, 6)):
        gt = [Box(*rng.uniform(0, 80, 2), *rng.uniform(10, 30, 2))
              for _ in range(rng.integers(0, 4))]
        dets = [Box(b.x + rng.normal(0, 4), b.y + rng.normal(0, 4), b.w, b.h,
                    float(rng.integers(0, 8)))  # integer scores: ties happen
                for b in gt if rng.random() < 0.8]
        dets += [Box(*rng.uniform(0, 80, 2), *rng.uniform(10, 30, 2), float(rng.integers(0, 8)))
                 for _ in range(rng.integers(0, 4))]
        truth.append(gt)
        detections.append(dets)
    return manifest("ground_truth", truth), manifest("detections", detections)


def brute_force(truth, detections, iou, fp_points):
    """Independent reference: re-match at every threshold, VOC AP from the point list."""
    n_truth = truth.n_boxes
    thresholds = sorted({b.score for r in detections.images for b in r.boxes}, reverse=True)
    points = []
    for t in thresholds:
        tp = fp = 0
        for gt, det in zip(truth.images, detections.images, strict=True):
            kept = [b for b in det.boxes if b.score >= t]
            _, hits = match_image(gt.boxes, kept, iou)
            tp += int(hits.sum())
            fp += int((~hits).sum())
        points.append((tp / n_truth, tp / (tp + fp), fp))
    ap, previous_recall = 0.0, 0.0
    for recall, _, _ in points:
        best = max(p for r, p, _ in points if r >= recall)
        ap += (recall - previous_recall) * best
        previous_recall = recall
    rates = {n: max([r for r, _, f in points if f <= n], default=0.0) for n in fp_points}
    return (ap if thresholds else 0.0), rates


def test_ground_truth_as_detections_gives_ap_one():
    gt = [[Box(10, 10, 20, 20), Box(50, 50, 30, 30)], [], [Box(0, 0, 40, 40)]]
    metrics = evaluate(manifest("ground_truth", gt), manifest("detections", gt), 0.5, [0, 10])
    assert metrics["average_precision"] == pytest.approx(1.0)
    assert metrics["detection_rate_at_fp"] == {"0": 1.0, "10": 1.0}


def test_no_detections_gives_ap_zero():
    gt = [[Box(10, 10, 20, 20)], [Box(5, 5, 10, 10)]]
    metrics = evaluate(manifest("ground_truth", gt), manifest("detections", [[], []]), 0.5, [5])
    assert metrics["average_precision"] == 0.0
    assert metrics["detection_rate_at_fp"]["5"] == 0.0


def test_hand_computed_example():
    """Scores 0.9 TP, 0.8 FP, 0.7 TP on 3 faces: AP = 1/3 * 1 + 1/3 * 2/3."""
    gt = [[Box(0, 0, 10, 10), Box(20, 0, 10, 10), Box(40, 0, 10, 10)]]
    det = [[Box(0, 0, 10, 10, 0.9), Box(70, 70, 10, 10, 0.8), Box(20, 0, 10, 10, 0.7)]]
    metrics = evaluate(manifest("ground_truth", gt), manifest("detections", det), 0.5, [0, 1])
    assert metrics["average_precision"] == pytest.approx(1 / 3 + 2 / 9)
    assert metrics["detection_rate_at_fp"] == {"0": pytest.approx(1 / 3),
                                               "1": pytest.approx(2 / 3)}


def test_matching_is_one_to_one_and_greedy_by_score():
    truth = [Box(0, 0, 10, 10)]
    scores, hits = match_image(truth, [Box(1, 0, 10, 10, 0.3), Box(0, 0, 10, 10, 0.9)], 0.5)
    assert scores.tolist() == [0.9, 0.3]
    assert hits.tolist() == [True, False]  # duplicate detection is a false positive
    _, hits = match_image(truth, [Box(6, 6, 10, 10, 1.0)], 0.5)
    assert hits.tolist() == [False]  # IoU 16/184 below threshold


@pytest.mark.parametrize("seed", range(40))
def test_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    truth, detections = random_case(rng)
    if truth.n_boxes == 0:  # AP is undefined without faces: a clear error, not NaN
        with pytest.raises(ValueError, match="no faces"):
            evaluate(truth, detections, 0.5, [0])
        return
    expected_ap, expected_rates = brute_force(truth, detections, 0.5, [0, 1, 3])
    metrics = evaluate(truth, detections, 0.5, [0, 1, 3])
    assert metrics["average_precision"] == pytest.approx(expected_ap)
    for n, rate in expected_rates.items():
        assert metrics["detection_rate_at_fp"][str(n)] == pytest.approx(rate)


def test_curve_properties():
    rng = np.random.default_rng(1)
    scores = rng.random(200)
    hits = rng.random(200) < 0.5
    curve = pr_curve(scores, hits, n_truth=150)
    assert np.all(np.diff(curve.recall) >= 0)
    assert np.all(np.diff(curve.false_positives) >= 0)
    assert 0.0 <= average_precision(curve) <= 1.0
    assert detection_rate_at(curve, 10**6) == pytest.approx(hits.sum() / 150)


def test_missing_detection_file_entries_are_an_error():
    gt = manifest("ground_truth", [[Box(0, 0, 5, 5)], []])
    with pytest.raises(ValueError, match="lack 1 test images"):
        evaluate(gt, manifest("detections", [[]]), 0.5, [0])


def test_share_of_ap_kept_is_one_rule_for_scalars_and_resamples():
    from pipeline.evaluation.metrics import relative_ap

    assert relative_ap(0.3, 0.6) == pytest.approx(0.5)
    assert np.isnan(relative_ap(0.3, 0.0)) and np.isnan(relative_ap(0.0, 0.0))
    assert np.isnan(relative_ap(None, 0.5)) and np.isnan(relative_ap(0.5, None))
    shares = relative_ap(np.array([0.2, 0.4, 0.1]), np.array([0.4, 0.0, 0.1]))
    assert shares[0] == pytest.approx(0.5) and np.isnan(shares[1]) and shares[2] == 1.0
    # The scalar and the elementwise rule agree, so intervals and estimates match.
    assert [relative_ap(a, b) for a, b in [(0.2, 0.4), (0.1, 0.1)]] == list(shares[[0, 2]])


def test_summary_leaves_an_undefined_share_kept_empty(tmp_path):
    """A baseline AP of 0 makes the share kept undefined: null in JSON, empty in the CSV."""
    import csv

    from pipeline.evaluation.contracts import stamped
    from pipeline.evaluation.summary import summarise
    from pipeline.io import read_json, write_json

    metrics, timings = [], []
    for variant, ap in (("original", 0.0), ("shadow", 0.2)):
        labels = {"detector": "d", "seed": None, "dataset": "s", "variant": variant}
        metrics.append(tmp_path / f"m_{variant}.json")
        timings.append(tmp_path / f"t_{variant}.json")
        write_json(metrics[-1], stamped("metrics", {
            **labels, "n_images": 1, "n_faces": 1, "n_detections": 1, "average_precision": ap,
            "max_recall": ap, "detection_rate_at_fp": {"1": ap}, "per_image": []}))
        write_json(timings[-1], {**labels, "ms_per_image_mean": 1.0, "ms_per_image_median": 1.0})
    summarise([str(p) for p in metrics], [str(p) for p in timings], tmp_path / "s.csv",
              tmp_path / "s.json")
    assert all(run["relative_ap"] is None for run in read_json(tmp_path / "s.json")["runs"])
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert [row["relative_ap"] for row in rows] == ["", ""]

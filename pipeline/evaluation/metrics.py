"""The project's one evaluation: matching, precision-recall, AP and detection rate vs FP.

Matching is one-to-one and greedy by score: within each image, detections are taken from the
highest score down and each claims the unclaimed ground-truth box it overlaps most, if that
IoU is at least the threshold; otherwise it is a false positive.

Average precision is the area under the precision envelope (precision made non-increasing in
recall), summed over the recall steps: the all-point interpolation of PASCAL VOC 2010+.
Curve points are taken only between distinct scores, so tied detections enter together.
COCO's 101-point interpolated AP is reported beside it for comparison with COCO-style papers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.boxes import Box, Manifest, boxes_to_array, iou_matrix
from pipeline.data.formats_box_list import LANDMARK_NAMES

# The landmarks a matching detection must contain (the landmark criterion).
CONTAINED_LANDMARKS = [LANDMARK_NAMES.index(name)
                       for name in ("left_eye", "right_eye", "mouth_centre")]


@dataclass(frozen=True)
class Criterion:
    """When a detection matches a ground-truth face.

    ``iou``: IoU at least ``iou_threshold``. ``landmarks`` (the Viola-Jones era's rule): the
    detection contains both eyes and the mouth centre of the face, and its size (square root
    of the area) is within ``size_factor`` of the face's; faces without landmarks fall back to
    IoU. Among the faces a detection may claim it takes the best one: highest IoU, or closest
    size.
    """

    kind: str = "iou"
    iou_threshold: float = 0.5
    size_factor: float = 2.0

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> Criterion:
        """From ``evaluation:`` settings, their defaults filled in from the schema."""
        from pipeline.defaults import with_defaults

        settings = with_defaults(settings, "evaluation")
        return cls(settings["criterion"], settings["iou_threshold"],
                   settings["landmark_size_factor"])

    def quality(self, detections: list[Box], truth: list[Box],
                landmarks: list[list[float] | None] | None) -> np.ndarray:
        """Match quality (len(detections), len(truth)), higher is better; -inf: no match."""
        iou = iou_matrix(detections, truth)
        quality = np.where(iou >= self.iou_threshold, iou, -np.inf)
        if self.kind != "landmarks" or not landmarks:
            return quality
        boxes = boxes_to_array(detections)
        size = np.sqrt(boxes[:, 2] * boxes[:, 3])
        for t, points in enumerate(landmarks):
            if points is None:
                continue
            key = np.asarray(points, dtype=float).reshape(-1, 2)[CONTAINED_LANDMARKS]
            inside = np.all((key[None, :, 0] >= boxes[:, None, 0])
                            & (key[None, :, 0] <= boxes[:, None, 0] + boxes[:, None, 2])
                            & (key[None, :, 1] >= boxes[:, None, 1])
                            & (key[None, :, 1] <= boxes[:, None, 1] + boxes[:, None, 3]),
                            axis=1)
            ratio = size / np.sqrt(truth[t].w * truth[t].h)
            fits = inside & (ratio <= self.size_factor) & (ratio >= 1 / self.size_factor)
            quality[:, t] = np.where(fits, -np.abs(np.log(ratio)), -np.inf)
        return quality


def match_detections(truth: list[Box], detections: list[Box], criterion: Criterion | float,
                     landmarks: list[list[float] | None] | None = None,
                     ignored: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's detections matched to its faces, best score first: ``order`` (K,) the
    detections' indices best first, ``hits`` (K,) true-positive flags in that order, and
    ``kept`` (K,): False for a detection dropped because it matches only an ignored face.

    ``criterion`` is a :class:`Criterion` or an IoU threshold. ``ignored`` (len(truth),) marks
    faces that are not scored (too small): they are never claimed, and a detection that
    matches none of the scored faces but matches an ignored one is dropped, neither a true
    nor a false positive (as FDDB and WIDER FACE treat faces they do not score).
    """
    if not isinstance(criterion, Criterion):
        criterion = Criterion(iou_threshold=float(criterion))
    order = np.array(sorted(range(len(detections)), key=lambda k: -detections[k].score),
                     dtype=int)
    hits = np.zeros(len(order), dtype=bool)
    kept = np.ones(len(order), dtype=bool)
    if not truth or not detections:
        return order, hits, kept
    ignored = np.zeros(len(truth), bool) if ignored is None else np.asarray(ignored, bool)
    quality = criterion.quality([detections[k] for k in order], truth, landmarks)
    claimed = ignored.copy()
    for d in range(len(order)):
        candidates = np.where(claimed, -np.inf, quality[d])
        best = int(np.argmax(candidates))
        if np.isfinite(candidates[best]):
            claimed[best] = True
            hits[d] = True
        elif np.isfinite(quality[d][ignored]).any():
            kept[d] = False
    return order, hits, kept


def match_image(truth: list[Box], detections: list[Box], criterion: Criterion | float,
                landmarks: list[list[float] | None] | None = None,
                ignored: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scores and true-positive flags of one image's detections, best score first: those of
    :func:`match_detections` that are kept, (K,) each."""
    order, hits, kept = match_detections(truth, detections, criterion, landmarks, ignored)
    scores = np.array([detections[k].score for k in order], dtype=np.float64)
    return scores[kept], hits[kept]


def face_sizes(boxes: list[Box]) -> np.ndarray:
    """Size of each ground-truth face: sqrt(w h) of its box, pixels (N,)."""
    return np.array([np.sqrt(b.w * b.h) for b in boxes], dtype=float)


@dataclass
class Curve:
    """Operating points from the highest threshold down; arrays of equal length."""

    thresholds: np.ndarray
    true_positives: np.ndarray
    false_positives: np.ndarray
    n_truth: int

    @property
    def recall(self) -> np.ndarray:
        return recall_of(self.true_positives, np.asarray(self.n_truth, dtype=float))

    @property
    def precision(self) -> np.ndarray:
        return precision_of(self.true_positives, self.false_positives)


# The curve arithmetic below works on the last axis, so that the bootstrap
# (pipeline.evaluation.statistics) applies the very same formulas to many resampled curves at once.

def recall_of(true_positives: np.ndarray, n_truth: np.ndarray) -> np.ndarray:
    """TP / number of faces (0 where there are no faces); ``n_truth`` broadcasts."""
    tp = np.asarray(true_positives, dtype=float)
    truth = np.broadcast_to(n_truth, tp.shape)
    return np.divide(tp, truth, out=np.zeros_like(tp), where=truth > 0)


def precision_of(true_positives: np.ndarray, false_positives: np.ndarray) -> np.ndarray:
    """TP / (TP + FP), 1 where nothing has been detected yet."""
    tp = np.asarray(true_positives, dtype=float)
    total = tp + false_positives
    return np.divide(tp, total, out=np.ones_like(tp), where=total > 0)


def envelope_area(recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """All-point AP along the last axis: recall steps times the precision envelope (precision
    made non-increasing in recall)."""
    envelope = np.maximum.accumulate(precision[..., ::-1], axis=-1)[..., ::-1]
    return (np.diff(recall, axis=-1, prepend=0.0) * envelope).sum(axis=-1)


def rate_within(recall: np.ndarray, false_positives: np.ndarray, limit: int) -> np.ndarray:
    """Highest recall along the last axis with at most ``limit`` false positives, else 0."""
    return np.where(false_positives <= limit, recall, 0.0).max(axis=-1, initial=0.0)


def pr_curve(scores: np.ndarray, hits: np.ndarray, n_truth: int) -> Curve:
    """Cumulative TP/FP at every distinct score, highest first."""
    order = np.argsort(-scores, kind="stable")
    scores, hits = scores[order], hits[order]
    tp, fp = np.cumsum(hits), np.cumsum(~hits)
    last_of_tie = np.r_[scores[1:] != scores[:-1], True] if len(scores) else np.zeros(0, bool)
    return Curve(scores[last_of_tie], tp[last_of_tie], fp[last_of_tie], n_truth)


# The 101 recall levels of the COCO evaluation (pycocotools' ``recThrs``).
COCO_RECALL_LEVELS = np.linspace(0.0, 1.0, 101)


def average_precision(curve: Curve, recall_levels: np.ndarray | None = None) -> float:
    """Area under the precision envelope; 0 when nothing is found, NaN with no ground truth.

    With ``recall_levels`` (e.g. :data:`COCO_RECALL_LEVELS`) it is instead the mean envelope
    precision at those recall levels, 0 at levels never reached: COCO's interpolated AP.
    """
    if curve.n_truth == 0:
        return float("nan")
    if len(curve.thresholds) == 0:
        return 0.0
    if recall_levels is not None:
        envelope = np.maximum.accumulate(curve.precision[::-1])[::-1]
        index = np.searchsorted(curve.recall, recall_levels, side="left")
        reached = index < len(envelope)
        return float(np.where(reached, envelope[np.minimum(index, len(envelope) - 1)], 0).mean())
    return float(envelope_area(curve.recall, curve.precision))


def relative_ap(ap: Any, baseline_ap: Any) -> Any:
    """Share of AP kept: ``ap`` over the same detector's AP on the baseline variant.

    Scalars give a float, arrays (bootstrap resamples) an array of the same shape; NaN where
    the baseline AP is 0 or either AP is undefined (None).
    """
    if ap is None or baseline_ap is None:
        return float("nan")
    ap, baseline_ap = np.asarray(ap, np.float64), np.asarray(baseline_ap, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(baseline_ap > 0, ap / baseline_ap, np.nan)
    return float(share) if share.ndim == 0 else share


def detection_rate_at(curve: Curve, false_positives: int) -> float:
    """Highest recall reached with at most ``false_positives`` false positives in total."""
    return float(rate_within(curve.recall, curve.false_positives, false_positives))


@dataclass
class ImageMatches:
    """One image's matching result: its scored ground-truth count, the scores and TP flags of
    its scored detections, and how many faces were too small to score."""

    file: str
    n_truth: int
    scores: np.ndarray
    hits: np.ndarray
    n_ignored: int = 0


def match_manifests(truth: Manifest, detections: Manifest, criterion: Criterion | float,
                    min_face_size: float | None = None) -> list[ImageMatches]:
    """Match every image of a detection manifest against its ground truth, in truth order.

    Faces smaller than ``min_face_size`` (:func:`face_sizes`) are not scored (see
    :func:`match_image`).
    """
    found = {r.file: r for r in detections.images}
    missing = [r.file for r in truth.images if r.file not in found]
    if missing:
        raise ValueError(f"detections lack {len(missing)} test images, e.g. {missing[0]!r}")
    matches = []
    for record in truth.images:
        ignored = face_sizes(record.boxes) < (min_face_size or 0)
        scores, hits = match_image(record.boxes, found[record.file].boxes, criterion,
                                   record.attributes.get("landmarks"), ignored)
        matches.append(ImageMatches(record.file, int((~ignored).sum()), scores, hits,
                                    int(ignored.sum())))
    return matches


def pooled_curve(matches: list[ImageMatches]) -> Curve:
    """The precision-recall curve of all images pooled."""
    scores = np.concatenate([m.scores for m in matches]) if matches else np.zeros(0)
    hits = np.concatenate([m.hits for m in matches]) if matches else np.zeros(0, bool)
    return pr_curve(scores, hits, sum(m.n_truth for m in matches))


def evaluate(truth: Manifest, detections: Manifest, criterion: Criterion | float,
             fp_points: list[int], min_face_size: float | None = None,
             search_min_size: float | None = None, resample_unit: str = "image"
             ) -> dict[str, Any]:
    """Metrics of one detector on one dataset variant, as a JSON-ready dict.

    ``per_image`` keeps each image's scores and TP flags so that later stages can bootstrap
    over images without re-matching. Faces smaller than ``min_face_size`` pixels are not
    scored (neither misses nor false positives; counted in ``n_faces_excluded``); faces
    smaller than ``search_min_size``, the smallest face every compared detector searches,
    are counted in ``n_faces_below_search_size``.

    ``resample_unit`` is what the statistics stage resamples: ``image``, or an image
    attribute such as ``subject`` whose value each ``per_image`` entry then keeps as ``unit``
    (images of one person are not independent). Images with a ``group`` attribute keep it
    as ``group`` (results per group are in ``groups``).

    A test set without faces is an error, unless its manifest is marked ``negatives_only``:
    then AP and detection rates are undefined (``None``) and ``false_positives_per_image``
    is the measure. Raises ``ValueError`` for a test set with no (scored) faces.
    """
    if not isinstance(criterion, Criterion):
        criterion = Criterion(iou_threshold=float(criterion))
    negatives_only = bool(truth.meta.get("negatives_only", False))
    sizes = face_sizes([b for r in truth.images for b in r.boxes])
    if negatives_only and sizes.size:
        raise ValueError(f"test set marked negatives_only holds {sizes.size} faces")
    if not negatives_only and not (sizes >= (min_face_size or 0)).any():
        raise ValueError(
            "test set has no faces to score" + (f" ({sizes.size} faces, all smaller than "
                                               f"evaluation.min_face_size {min_face_size})"
                                               if sizes.size else "")
            + "; mark a face-free test set negatives_only: true to report false positives "
              "per image instead")
    matches = match_manifests(truth, detections, criterion, min_face_size)
    curve = pooled_curve(matches)
    units = resample_units(truth, resample_unit)
    labels = [r.attributes.get("group") for r in truth.images]
    groups = {}
    for label in sorted({label for label in labels if label is not None}, key=group_order):
        subset = pooled_curve([m for m, g in zip(matches, labels, strict=True) if g == label])
        groups[label] = {
            "n_images": labels.count(label), "n_faces": subset.n_truth,
            "average_precision": average_precision(subset),
            "detection_rate_at_fp": {str(n): detection_rate_at(subset, n) for n in fp_points},
        }
    with_landmarks = sum(1 for r in truth.images for p in r.attributes.get("landmarks", [])
                         if p is not None)
    return {
        "criterion": {"kind": criterion.kind, "iou_threshold": criterion.iou_threshold,
                      "size_factor": criterion.size_factor,
                      "faces_judged_by_landmarks": with_landmarks
                      if criterion.kind == "landmarks" else 0},
        "n_images": len(truth.images),
        "n_faces": curve.n_truth,
        "negatives_only": negatives_only,
        "min_face_size": min_face_size,
        "n_faces_excluded": int(sum(m.n_ignored for m in matches)),
        "search_min_size": search_min_size,
        "n_faces_below_search_size": int((sizes < (search_min_size or 0)).sum()),
        "n_detections": int(sum(len(m.scores) for m in matches)),
        "false_positives_per_image": float(curve.false_positives[-1] / len(matches))
        if len(curve.false_positives) and matches else 0.0,
        "average_precision": None if negatives_only else average_precision(curve),
        "average_precision_coco101": None if negatives_only
        else average_precision(curve, COCO_RECALL_LEVELS),
        "detection_rate_at_fp": {str(n): None if negatives_only
                                 else detection_rate_at(curve, n) for n in fp_points},
        "max_recall": None if negatives_only
        else float(curve.recall[-1]) if len(curve.recall) else 0.0,
        "curve": {
            "threshold": curve.thresholds.tolist(),
            "true_positives": curve.true_positives.tolist(),
            "false_positives": curve.false_positives.tolist(),
        },
        "groups": groups,
        "resample_unit": resample_unit,
        "per_image": [{"file": m.file, "n_truth": m.n_truth, "n_ignored": m.n_ignored,
                       "scores": m.scores.tolist(), "hits": m.hits.astype(int).tolist(),
                       **({"unit": unit} if resample_unit != "image" else {}),
                       **({"group": label} if label is not None else {})}
                      for m, unit, label in zip(matches, units, labels, strict=True)],
    }



def evaluate_as_configured(truth: Manifest, detections: Manifest, evaluation: dict[str, Any],
                           search_min_size: float | None = None,
                           resample_unit: str = "image") -> dict[str, Any]:
    """:func:`evaluate` with the configuration's ``evaluation`` settings (match criterion,
    false-positive points, smallest scored face), as the evaluate stage scores."""
    return evaluate(truth, detections, Criterion.from_settings(evaluation),
                    evaluation["false_positive_points"], evaluation.get("min_face_size"),
                    search_min_size, resample_unit)

def resample_units(truth: Manifest, unit: str) -> list[str]:
    """Each image's resampling unit: its file for ``image``, else its attribute ``unit`` (as
    text); ``ValueError`` naming an image that lacks the attribute."""
    if unit == "image":
        return [r.file for r in truth.images]
    lacking = [r.file for r in truth.images if unit not in r.attributes]
    if lacking:
        raise ValueError(f"resample_unit {unit!r}: {len(lacking)} test images have no {unit!r} "
                         f"attribute, e.g. {lacking[0]!r} (use resample_unit: image)")
    return [str(r.attributes[unit]) for r in truth.images]


def group_order(label: str) -> tuple[str, float, str]:
    """Groups such as ``20-45 deg`` sort by their first number, after those of a named kind
    (``azimuth 20-45 deg``) and then by that kind; labels without a number by name, last."""
    number = re.search(r"\d+(?:\.\d+)?", label)
    if number is None:
        return "~", float("inf"), label
    return label[:number.start()].strip(" <>"), float(number.group()), label


def matches_from_metrics(metrics: dict[str, Any]) -> list[ImageMatches]:
    """The per-image matches stored in a metrics dict written by :func:`evaluate`."""
    return [ImageMatches(m["file"], m["n_truth"], np.array(m["scores"], dtype=float),
                         np.array(m["hits"], dtype=bool)) for m in metrics["per_image"]]


def curve_from_metrics(metrics: dict[str, Any]) -> Curve:
    """The :class:`Curve` stored in a metrics dict written by :func:`evaluate`."""
    c = metrics["curve"]
    return Curve(np.array(c["threshold"], dtype=float), np.array(c["true_positives"], dtype=float),
                 np.array(c["false_positives"], dtype=float), metrics["n_faces"])

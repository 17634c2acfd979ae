"""CNN detector: the trained classifier run fully convolutionally over an image pyramid."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np
import torch

from pipeline.boxes import Box, iou_matrix, refine_boxes
from pipeline.models.cnn import FaceNet, load_checkpoint, resolve_device, split_outputs
from pipeline.models.cnn_scoring import (
    TILE_SIZE,
    crop_windows,
    face_probability,
    for_inference,
    score_windows,
    score_windows_batch,
    to_input,
)

# Proposals overlapping more than this are near-duplicates: only the best is verified.
PROPOSAL_NMS_IOU = 0.5


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou: float,
                        limit: int) -> np.ndarray:
    """Indices of boxes kept by OpenCV's greedy NMS, best first, at most ``limit``."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=int)
    keep = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), 0.0, iou, top_k=limit)
    return np.asarray(keep, dtype=int).reshape(-1)


# NMS methods of the CNN detectors: greedy keeps each survivor's own box; weighted ("box
# voting", Gidaris and Komodakis, ICCV 2015) replaces it by the score-weighted mean of the boxes
# it suppresses and itself; soft (Gaussian soft-NMS, Bodla et al., ICCV 2017) suppresses no box
# outright but decays each remaining score by exp(-IoU^2 / sigma) with every box picked before it.
NMS_METHODS = ("greedy", "weighted", "soft")

# Gaussian soft-NMS's sigma (Bodla et al.'s value).
SOFT_NMS_SIGMA = 0.5


def soft_suppress(boxes: np.ndarray, scores: np.ndarray, limit: int,
                  sigma: float = SOFT_NMS_SIGMA, floor: float = 0.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian soft-NMS of boxes (K, 4) ``x, y, w, h`` with scores (K,): repeatedly pick the
    box of highest (decayed) score and multiply every other remaining score by
    ``exp(-IoU^2 / sigma)``; boxes whose score falls below ``floor`` are dropped. Returns the
    picked boxes (M, 4) and their decayed scores (M,), in the order picked, M <= ``limit``."""
    remaining = np.asarray(scores, dtype=np.float64).copy()
    alive = remaining >= floor
    picked: list[int] = []
    picked_scores: list[float] = []
    while len(picked) < limit and alive.any():
        best = int(np.flatnonzero(alive)[np.argmax(remaining[alive])])
        picked.append(best)
        picked_scores.append(float(remaining[best]))
        alive[best] = False
        overlap = iou_matrix(boxes[best:best + 1], boxes[alive])[0]
        remaining[alive] *= np.exp(-overlap ** 2 / sigma)
        alive[alive] = remaining[alive] >= floor
    return boxes[picked].reshape(-1, 4), np.asarray(picked_scores)


def suppress(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int,
             method: str = "greedy", floor: float = 0.0, sigma: float = SOFT_NMS_SIGMA
             ) -> tuple[np.ndarray, np.ndarray]:
    """NMS survivors of boxes (K, 4) with scores (K,): boxes (M, 4) and scores (M,), best
    first, M <= ``limit``; ``method`` one of :data:`NMS_METHODS`. Greedy and weighted keep
    each survivor's score and suppress at ``iou``; soft ignores ``iou``, decays scores with
    ``sigma`` and drops boxes decayed below ``floor`` (:func:`soft_suppress`)."""
    if method not in NMS_METHODS:
        raise ValueError(f"unknown NMS method {method!r}; known: {', '.join(NMS_METHODS)}")
    if method == "soft":
        return soft_suppress(boxes, scores, limit, sigma, floor)
    keep = non_max_suppression(boxes, scores, iou, limit)
    if method == "greedy" or len(keep) == 0:
        return boxes[keep], scores[keep]
    members = iou_matrix(boxes[keep], boxes) >= iou  # (M, K); each survivor is its own member
    weights = members * scores[None, :]
    return weights @ boxes / weights.sum(axis=1, keepdims=True), scores[keep]


def setting_fields(cls: type, settings: dict[str, Any]) -> dict[str, Any]:
    """The detector ``settings`` that are fields of the dataclass ``cls``, as keyword
    arguments; the nets, the device and the model names are passed apart."""
    given = {"model", "proposal", "verifier", "output", "device"}
    return {f.name: settings[f.name] for f in fields(cls)
            if f.name in settings and f.name not in given}


def rescaled(windows: np.ndarray, scales: tuple[float, ...] | list[float]) -> np.ndarray:
    """Windows (K, 4) x, y, w, h, each at every scale about its centre: (K x S, 4), window by
    window, scales in the given order."""
    windows = np.asarray(windows, dtype=float).reshape(-1, 4)
    factors = np.asarray(scales, dtype=float)
    sizes = windows[:, None, 2:] * factors[None, :, None]  # (K, S, 2)
    centres = windows[:, None, :2] + windows[:, None, 2:] / 2
    return np.concatenate([centres - sizes / 2, sizes], axis=2).reshape(-1, 4)


@dataclass
class CnnDetector:
    """Pyramid windows scored by a :class:`FaceNet`, thresholded, refined by the net's box
    offsets when it has box regression, then non-maximum suppressed (:func:`suppress`)."""

    model: FaceNet
    device: torch.device
    scale_factor: float
    min_size: int
    score_threshold: float
    nms_iou: float
    max_detections: int
    tile_size: int = TILE_SIZE
    nms_method: str = "greedy"
    nms_sigma: float = SOFT_NMS_SIGMA

    @classmethod
    def from_settings(cls, settings: dict[str, Any], checkpoint: str) -> CnnDetector:
        device = resolve_device("auto")
        model, _ = load_checkpoint(checkpoint, device)
        return cls(model=for_inference(model), device=device, **setting_fields(cls, settings))

    @property
    def threads(self) -> int:
        """CPU threads the network runs on (PyTorch's, not OpenCV's)."""
        return torch.get_num_threads()

    def detect(self, image: np.ndarray) -> list[Box]:
        return self.detect_many([image])[0]

    def detect_many(self, images: list[np.ndarray]) -> list[list[Box]]:
        """Detections for several images; images of one shape share each pyramid pass."""
        results: list[list[Box]] = [[] for _ in images]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(index)
        for indices in by_shape.values():
            scored = score_windows_batch(self.model, [images[i] for i in indices],
                                         self.min_size, self.scale_factor,
                                         self.score_threshold, self.device, self.tile_size)
            for index, (boxes, scores) in zip(indices, scored, strict=True):
                kept, kept_scores = suppress(boxes, scores, self.nms_iou, self.max_detections,
                                             self.nms_method, self.score_threshold,
                                             self.nms_sigma)
                results[index] = [Box(*map(float, box), score=float(score))
                                  for box, score in zip(kept, kept_scores, strict=True)]
        return results


@dataclass
class CnnCascadeDetector:
    """CNN cascade: a tiny proposal net over the whole pyramid keeps its ``max_proposals``
    best windows (above ``proposal_threshold``, near-duplicates removed), then the stronger
    net scores those windows in one batch. With an ``output`` net (an optional third stage,
    e.g. 48x48), the verified windows, near-duplicates removed again, are scored once more by
    it. The last stage's probability is the score; every stage must reach
    ``score_threshold``. Nets with box regression move their windows by their offsets before
    the next stage and before any NMS."""

    proposal: FaceNet
    verifier: FaceNet
    device: torch.device
    scale_factor: float
    min_size: int
    proposal_threshold: float
    max_proposals: int
    score_threshold: float
    nms_iou: float
    max_detections: int
    tile_size: int = TILE_SIZE
    nms_method: str = "greedy"
    nms_sigma: float = SOFT_NMS_SIGMA
    output: FaceNet | None = None
    refine_scales: tuple[float, ...] = (1.0,)

    @classmethod
    def from_settings(cls, settings: dict[str, Any], proposal_checkpoint: str,
                      checkpoint: str, output_checkpoint: str | None = None
                      ) -> CnnCascadeDetector:
        device = resolve_device("auto")
        proposal, _ = load_checkpoint(proposal_checkpoint, device)
        verifier, _ = load_checkpoint(checkpoint, device)
        output = (for_inference(load_checkpoint(output_checkpoint, device)[0])
                  if output_checkpoint is not None else None)
        return cls(proposal=for_inference(proposal), verifier=for_inference(verifier),
                   device=device, output=output, **setting_fields(cls, settings))

    @property
    def threads(self) -> int:
        """CPU threads both networks run on (PyTorch's, not OpenCV's)."""
        return torch.get_num_threads()

    def propose(self, image: np.ndarray) -> np.ndarray:
        """Candidate windows (K x len(refine_scales), 4): the proposal net's best windows,
        best first, each also at every ``refine_scales`` size about its centre (a coarse
        proposal pyramid then still gives the verifier windows near the face's size)."""
        boxes, scores = score_windows(self.proposal, image, self.min_size, self.scale_factor,
                                      self.proposal_threshold, self.device, self.tile_size)
        return rescaled(self.distinct(boxes, scores), self.refine_scales)

    def distinct(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Boxes (K, 4) less near-duplicates: the best of each group overlapping more than
        :data:`PROPOSAL_NMS_IOU`, at most ``max_proposals``, best score first."""
        return boxes[non_max_suppression(boxes, scores, PROPOSAL_NMS_IOU, self.max_proposals)]

    @torch.no_grad()
    def verify(self, net: FaceNet, image: np.ndarray, windows: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """The windows (K, 4) that ``net`` scores at least ``score_threshold``, refined by its
        offsets when it has box regression, (M, 4), and their probabilities (M,)."""
        if len(windows) == 0:
            return windows, np.zeros(0)
        patches = crop_windows(image, windows, net.window)
        logits, offsets = split_outputs(net(to_input(patches, self.device)).float())
        probs = face_probability(logits).reshape(-1)
        passed = probs >= self.score_threshold
        windows, probs = windows[passed], probs[passed]
        if offsets is not None:
            windows = refine_boxes(windows, offsets.reshape(-1, 4).cpu().numpy()[passed])
        return windows, probs

    def detect(self, image: np.ndarray) -> list[Box]:
        candidates, probs = self.verify(self.verifier, image, self.propose(image))
        if self.output is not None:
            candidates, probs = self.verify(self.output, image, self.distinct(candidates, probs))
        kept, scores = suppress(candidates, probs, self.nms_iou, self.max_detections,
                                self.nms_method, self.score_threshold, self.nms_sigma)
        return [Box(*map(float, box), score=float(score))
                for box, score in zip(kept, scores, strict=True)]

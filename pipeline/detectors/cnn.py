"""CNN detector: the trained classifier run fully convolutionally over an image pyramid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from pipeline.boxes import Box
from pipeline.cnn import FaceNet, load_checkpoint, resolve_device, score_windows


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou: float,
                        limit: int) -> np.ndarray:
    """Indices of boxes kept by OpenCV's greedy NMS, best first, at most ``limit``."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=int)
    keep = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), 0.0, iou, top_k=limit)
    return np.asarray(keep, dtype=int).reshape(-1)


@dataclass
class CnnDetector:
    """Pyramid windows scored by a :class:`FaceNet`, thresholded, then non-maximum suppressed."""

    model: FaceNet
    device: torch.device
    scale_factor: float
    min_size: int
    score_threshold: float
    nms_iou: float
    max_detections: int

    @classmethod
    def from_settings(cls, settings: dict[str, Any], checkpoint: str) -> CnnDetector:
        device = resolve_device("auto")
        model, _ = load_checkpoint(checkpoint, device)
        return cls(model, device, settings["scale_factor"], settings["min_size"],
                   settings["score_threshold"], settings["nms_iou"], settings["max_detections"])

    def detect(self, image: np.ndarray) -> list[Box]:
        boxes, scores = score_windows(self.model, image, self.min_size, self.scale_factor,
                                      self.score_threshold, self.device)
        keep = non_max_suppression(boxes, scores, self.nms_iou, self.max_detections)
        return [Box(*map(float, boxes[k]), score=float(scores[k])) for k in keep]

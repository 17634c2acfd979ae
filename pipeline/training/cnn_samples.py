"""What one round of CNN training trains on besides the shared samples
(:mod:`pipeline.training.samples`): its faces (positives and, with box regression, part faces,
with the edge offsets of their face boxes) and the hard negatives the current model mines from
face-free scenes.

Patches are grey uint8 arrays (K, window, window).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from pipeline.boxes import edge_offsets, overlap_matrix
from pipeline.models.cnn import FaceNet
from pipeline.models.cnn_scoring import crop_windows, for_inference, score_windows
from pipeline.training.samples import (
    MAX_FACE_OVERLAP,
    Scene,
    positives_rng,
    scan_scenes,
    scene_faces,
    scene_positives,
    training_positives,
)

LOG = logging.getLogger(__name__)


# Hard-negative mining scans each scene for faces from 24 px up (as the cascade trainer does).
MINING_MIN_SIZE = 24


def mine_hard_negatives(model: FaceNet, scenes: list[Scene], count: int,
                        device: torch.device, min_scenes: int = 0, seed: int = 0,
                        round_index: int = 0, scale_factor: float = 1.25) -> np.ndarray:
    """The ``count`` highest-scoring windows (prob >= 0.5) away from the scenes' faces, found
    over each scene's pyramid (levels ``scale_factor`` apart).

    Scenes are scanned in a random order until at least ``min_scenes`` are scanned and they
    hold ``count`` such windows (:func:`pipeline.training.samples.scan_scenes`; 0: every scene).
    """
    scorer = for_inference(model)

    def face_like(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
        found, probs = score_windows(scorer, scene.image, min_size=MINING_MIN_SIZE,
                                     scale_factor=scale_factor,
                                     threshold=0.5, device=device, refine=False)
        if len(scene.faces) and len(found):
            away = overlap_matrix(found, scene.faces).max(axis=1) < MAX_FACE_OVERLAP
            found, probs = found[away], probs[away]
        return found, probs

    scanned = scan_scenes(scenes, face_like, count, min_scenes, seed, round_index,
                          found=lambda result: len(result[1]))
    if len(scanned) < len(scenes):
        LOG.info("round %d: mined %d of %d scenes", round_index, len(scanned), len(scenes))
    indices = list(scanned)
    all_scores = np.concatenate([scanned[i][1] for i in indices]) if indices else np.zeros(0)
    if all_scores.size == 0:
        return np.zeros((0, model.window, model.window), np.uint8)
    order = np.argsort(-all_scores, kind="stable")[:count]
    all_boxes = np.concatenate([scanned[i][0] for i in indices])
    all_sources = np.concatenate([np.full(len(scanned[i][1]), i) for i in indices])
    return np.concatenate([
        crop_windows(scenes[i].image, all_boxes[order[all_sources[order] == i]], model.window)
        for i in indices
    ])


def round_faces(faces: np.ndarray, scenes: list[Scene], settings: dict[str, Any],
                window: int, round_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A round's positives (P, window, window), part faces (Q, window, window) and the edge
    offsets (P + Q, 4) of their face boxes. Without ``box_regression``: the augmented faces
    and no part faces; with it, also :func:`pipeline.training.samples.scene_faces`, split by IoU.
    With ``redraw_positives`` false every round gets round 0's draws: the faces a cascade
    trained with the same seed and settings receives."""
    drawn = round_index if settings.get("redraw_positives", True) else 0
    positives, boxes = training_positives(faces, settings, window,
                                          positives_rng(settings["seed"], drawn), drawn)
    parts = np.zeros((0, window, window), np.uint8)
    if "box_regression" in settings:
        extra, extra_boxes = scene_faces(faces, scenes, settings, window,
                                         settings["box_regression"]["faces_per_face"], drawn)
        positive = scene_positives(extra_boxes, window)
        positives = np.concatenate([positives, extra[positive]])
        parts, boxes = extra[~positive], np.concatenate(
            [boxes, extra_boxes[positive], extra_boxes[~positive]])
    windows = np.repeat(np.array([[0.0, 0.0, window, window]]), len(boxes), axis=0)
    return positives, parts, edge_offsets(windows, boxes).astype(np.float32)

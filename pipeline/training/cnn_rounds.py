"""One CNN training round: its patches, validation split, optimiser and learning-rate schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pipeline.models.cnn import FaceNet
from pipeline.training.cnn_loss import PART_FACE


def _optimizer(model: FaceNet, settings: dict[str, Any]) -> torch.optim.Optimizer:
    if settings["optimizer"] == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=settings["learning_rate"],
                                 weight_decay=settings["weight_decay"])
    return torch.optim.SGD(model.parameters(), lr=settings["learning_rate"],
                           momentum=settings["momentum"], weight_decay=settings["weight_decay"])


@dataclass
class Round:
    """One training round: its patches, labels, validation split and optimiser state.

    Patches are positives, then part faces (box regression only; none without it), then
    negatives; ``targets`` (P + Q, 4) are the edge offsets of the positives' and part faces'
    face boxes (:func:`pipeline.boxes.edge_offsets`). ``order`` is a permutation of
    range(P + Q + N) whose first 10% is the validation set. With early stopping,
    ``best_objective``, ``best_epoch`` and ``best_state`` are the round's best validation
    objective so far, its epoch and the model's weights after it.
    """

    index: int
    positives: np.ndarray
    negatives: np.ndarray
    order: np.ndarray
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    parts: np.ndarray
    targets: np.ndarray
    next_epoch: int = 0
    best_objective: float = float("inf")
    best_epoch: int = -1
    best_state: dict[str, torch.Tensor] | None = None

    @property
    def n_val(self) -> int:
        return validation_size(len(self.order))

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Patches (N, 1, window, window) float, labels (N,) (1 face, 0 non-face,
        :data:`PART_FACE`) and offset targets (N, 4), zero for the negatives."""
        patches = np.concatenate([self.positives, self.parts, self.negatives])
        labels = np.r_[np.ones(len(self.positives)), np.full(len(self.parts), PART_FACE),
                       np.zeros(len(self.negatives))]
        targets = np.concatenate([self.targets, np.zeros((len(self.negatives), 4))])
        return (torch.from_numpy(patches).float()[:, None],
                torch.from_numpy(labels.astype(np.float32)),
                torch.from_numpy(targets.astype(np.float32)))


def validation_size(n_patches: int) -> int:
    """How many of a round's patches are held out for validation (10%, at least one)."""
    return max(n_patches // 10, 1)


def steps_per_epoch(n_patches: int, batch_size: int) -> int:
    """Optimiser steps in one pass over a round's training (non-validation) patches."""
    return int(np.ceil((n_patches - validation_size(n_patches)) / batch_size))


def new_round(index: int, model: FaceNet, positives: np.ndarray, negatives: np.ndarray,
              settings: dict[str, Any], generator: torch.Generator, device: torch.device,
              parts: np.ndarray, targets: np.ndarray, order: np.ndarray | None = None
              ) -> Round:
    """A round with a fresh optimiser; ``order`` is drawn from ``generator`` unless given."""
    n = len(positives) + len(parts) + len(negatives)
    if order is None:
        order = torch.randperm(n, generator=generator).numpy()
    optimizer = _optimizer(model, settings)
    steps = settings["epochs"] * steps_per_epoch(n, settings["batch_size"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    return Round(index, positives, negatives, order, optimizer, schedule, scaler, parts,
                 targets)

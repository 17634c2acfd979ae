"""The CNN training objective: binary cross-entropy of the face logit (with GoogLeNet's
auxiliary classifier) plus, with box regression, the squared error of the four edge offsets.

Outputs are the net's (N, C, 1, 1) for a batch of N window-sized patches; labels (N,) are
1 face, 0 non-face or :data:`PART_FACE`; offset targets (N, 4).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.models.cnn import split_outputs

# Label of a part face: trains the box offsets only, never the face/non-face logit.
PART_FACE = -1.0


def batch_losses(outputs: torch.Tensor, aux: torch.Tensor | None, labels: torch.Tensor,
                 targets: torch.Tensor, settings: dict[str, Any]
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The class loss of one batch and, with box regression, its box loss.

    Class: binary cross-entropy over the labelled patches (GoogLeNet's auxiliary classifier
    added with ``aux_weight``, 0.3 as in the paper). Box (MTCNN): the mean squared error of
    the four offsets over positives and part faces; 0 for a batch without any.
    """
    loss_fn = nn.BCEWithLogitsLoss()
    logits, offsets = split_outputs(outputs)
    labelled = labels >= 0
    loss = loss_fn(logits.reshape(-1)[labelled], labels[labelled])
    if aux is not None:
        loss = loss + settings["aux_weight"] * loss_fn(aux.reshape(-1)[labelled],
                                                       labels[labelled])
    if offsets is None:
        return loss, None
    faces = labels != 0
    box = (((offsets.reshape(len(labels), 4)[faces] - targets[faces]) ** 2).sum(1).mean()
           if faces.any() else offsets.sum() * 0)
    return loss, box


def batch_loss(outputs: torch.Tensor, aux: torch.Tensor | None, labels: torch.Tensor,
               targets: torch.Tensor, settings: dict[str, Any]) -> torch.Tensor:
    """What training minimises: the class loss plus ``box_regression.weight`` x the box loss
    (:func:`batch_losses`)."""
    loss, box = batch_losses(outputs, aux, labels, targets, settings)
    return loss if box is None else loss + settings["box_regression"]["weight"] * box


def validation_objective(row: dict[str, float], settings: dict[str, Any]) -> float:
    """What training minimises (:func:`batch_loss`), on the validation split of an epoch's
    history row: the class loss plus ``box_regression.weight`` x the box loss."""
    box = row.get("val_box_loss")
    return row["val_loss"] if box is None else (
        row["val_loss"] + settings["box_regression"]["weight"] * box)

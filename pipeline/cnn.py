"""The CNN face/non-face classifier: architecture, fully convolutional scoring, checkpoints.

Networks use only unpadded ("valid") convolutions and non-overlapping pooling, so running the
network over a whole image gives, at output cell (i, j), exactly the score the patch classifier
gives the ``window`` x ``window`` patch at ``(stride * j, stride * i)``: one pass scores every
window of a pyramid level.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn


class FaceNet(nn.Module):
    """Fully convolutional face scorer: uint8-range input (N, 1, H, W) -> logits (N, 1, H', W').

    ``window`` is the input patch side that maps to one output cell, ``stride`` the pixel step
    between neighbouring output cells.
    """

    def __init__(self, body: nn.Sequential, window: int, stride: int) -> None:
        super().__init__()
        self.body = body
        self.window = window
        self.stride = stride

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body((images - 127.5) / 64.0)


def _conv_block(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def lenet5(window: int = 32) -> FaceNet:
    """LeNet-5-style net for 32x32 patches, with batch norm and ReLU.

    32 -conv5-> 28 -pool-> 14 -conv3-> 12 -pool-> 6 -conv3-> 4 -conv4-> 1 -conv1-> logit.
    The 4x4 and 1x1 convolutions are LeNet's fully connected layers written as convolutions.
    """
    if window != 32:
        raise ValueError(f"lenet5 is built for 32x32 windows, not {window}")
    body = nn.Sequential(
        *_conv_block(1, 16, 5), nn.MaxPool2d(2),
        *_conv_block(16, 32, 3), nn.MaxPool2d(2),
        *_conv_block(32, 64, 3),
        *_conv_block(64, 64, 4),
        nn.Conv2d(64, 1, 1),
    )
    return FaceNet(body, window=32, stride=4)


# Architecture name -> constructor(window).
ARCHITECTURES: dict[str, Callable[[int], FaceNet]] = {"lenet5": lenet5}


def build_model(architecture: str, window: int) -> FaceNet:
    if architecture not in ARCHITECTURES:
        raise KeyError(f"unknown architecture '{architecture}'; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](window)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device")
    return torch.device(name)


def save_checkpoint(path: str | Path, model: FaceNet, settings: dict[str, Any],
                    history: list[dict[str, float]], **extra: Any) -> None:
    """Weights, the settings that trained them and the training history, in one file."""
    from pipeline.io import atomic_open

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"state_dict": state, "settings": settings, "history": history,
               "window": model.window, "stride": model.stride, **extra}
    with atomic_open(path, "wb") as handle:
        torch.save(payload, handle)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu"
                    ) -> tuple[FaceNet, dict[str, Any]]:
    """The model in eval mode and the whole checkpoint dict (loaded with weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model checkpoint not found")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
        model = build_model(payload["settings"]["architecture"], payload["window"])
        model.load_state_dict(payload["state_dict"])
    except Exception as error:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: not a valid model checkpoint ({error})") from error
    return model.to(device).eval(), payload


def pyramid_scales(height: int, width: int, window: int, min_size: int,
                   scale_factor: float) -> list[float]:
    """Image scales at which faces of ``min_size``, ``min_size * f``, ... fill one window."""
    scales = []
    scale = window / min_size
    while min(height, width) * scale >= window:
        scales.append(scale)
        scale /= scale_factor
    return scales


@torch.no_grad()
def score_windows(model: FaceNet, image: np.ndarray, min_size: int, scale_factor: float,
                  threshold: float, device: torch.device | str = "cpu"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Every pyramid window with face probability >= ``threshold``.

    Returns boxes (K, 4) as ``x, y, w, h`` in pixels of ``image`` and probabilities (K,).
    """
    height, width = image.shape
    all_boxes, all_scores = [], []
    for scale in pyramid_scales(height, width, model.window, min_size, scale_factor):
        size = (max(round(width * scale), model.window), max(round(height * scale), model.window))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        level = cv2.resize(image, size, interpolation=interpolation)
        tensor = torch.from_numpy(level).to(device, torch.float32)[None, None]
        probs = torch.sigmoid(model(tensor))[0, 0].float().cpu().numpy()
        rows, cols = np.nonzero(probs >= threshold)
        if rows.size == 0:
            continue
        sx, sy = width / size[0], height / size[1]  # exact back-projection per axis
        boxes = np.stack([cols * model.stride * sx, rows * model.stride * sy,
                          np.full(rows.shape, model.window * sx),
                          np.full(rows.shape, model.window * sy)], axis=1)
        all_boxes.append(boxes)
        all_scores.append(probs[rows, cols])
    if not all_boxes:
        return np.zeros((0, 4)), np.zeros(0)
    return np.concatenate(all_boxes), np.concatenate(all_scores).astype(np.float64)


def crop_windows(image: np.ndarray, boxes: np.ndarray, window: int) -> np.ndarray:
    """Boxes (K, 4) cut from ``image`` and resized to (K, window, window) uint8."""
    patches = np.empty((len(boxes), window, window), np.uint8)
    height, width = image.shape
    for k, (x, y, w, h) in enumerate(boxes):
        x1, y1 = int(round(x)), int(round(y))
        x2, y2 = min(int(round(x + w)), width), min(int(round(y + h)), height)
        patch = image[max(y1, 0):y2, max(x1, 0):x2]
        patches[k] = cv2.resize(patch, (window, window), interpolation=cv2.INTER_AREA)
    return patches

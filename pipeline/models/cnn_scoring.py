"""Scoring images with a CNN (:mod:`pipeline.models.cnn`): every window of an image pyramid
in fully convolutional passes, tiled to bound memory; an eval copy with batch norms folded in
for speed; window crops for a second-stage net.

Images are grey uint8 arrays (H, W); boxes are ``x, y, w, h`` in pixels of the image scored.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from pipeline.boxes import refine_boxes
from pipeline.io import resize_image
from pipeline.models.cnn import BOX_CHANNELS, FaceNet, split_outputs


def for_inference(model: FaceNet) -> FaceNet:
    """An eval-mode copy of ``model`` for scoring only: every convolution followed by a batch
    norm is folded into one (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`), and weights are
    stored channels-last. The same function up to float rounding (probabilities within about
    1e-6), about twice as fast on the CPU for lenet5 (benchmarks/speed.py); ``model`` itself
    is left as it was, so training can go on."""
    fused = copy.deepcopy(model).eval()
    _fuse_sequentials(fused)
    return fused.to(memory_format=torch.channels_last)


def _fuse_sequentials(module: nn.Module) -> None:
    """Fold Conv2d -> BatchNorm2d pairs in every nn.Sequential under ``module``, in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential):
            layers, merged = list(child), []
            while layers:
                layer = layers.pop(0)
                if (isinstance(layer, nn.Conv2d) and layers
                        and isinstance(layers[0], nn.BatchNorm2d)):
                    layer = fuse_conv_bn_eval(layer, layers.pop(0))
                merged.append(layer)
            child = nn.Sequential(*merged)
            setattr(module, name, child)
        _fuse_sequentials(child)


def to_input(images: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """Grey images (N, H, W) uint8 -> the float tensor (N, 1, H, W) the nets take, channels-last
    (what :func:`for_inference` models run fastest on)."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device, torch.float32)[:, None]
    return tensor.contiguous(memory_format=torch.channels_last)


def pyramid_scales(height: int, width: int, window: int, min_size: int,
                   scale_factor: float) -> list[float]:
    """Image scales at which faces of ``min_size``, ``min_size * f``, ... fill one window."""
    scales = []
    scale = window / min_size
    while min(height, width) * scale >= window:
        scales.append(scale)
        scale /= scale_factor
    return scales


# Default side of the square tiles (pixels of a pyramid level) scored in one pass: bounds the
# activation memory of a pass whatever the image size (about 60 MB for lenet5 at 1024).
TILE_SIZE = 1024


def score_windows(model: FaceNet, image: np.ndarray, min_size: int, scale_factor: float,
                  threshold: float, device: torch.device | str = "cpu",
                  tile_size: int = TILE_SIZE, refine: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Every pyramid window with face probability >= ``threshold``.

    Returns boxes (K, 4) as ``x, y, w, h`` in pixels of ``image`` and probabilities (K,); for
    a net with box regression the boxes are the windows refined by its offsets, unless
    ``refine`` is false.
    """
    return score_windows_batch(model, [image], min_size, scale_factor, threshold, device,
                               tile_size, refine)[0]


def face_probability(logits: torch.Tensor) -> np.ndarray:
    """The sigmoid of face logits, computed in float64: in float32 it is exactly 1.0 for every
    logit above about 17, which ties the surest windows (a tenth of the research CNN's
    detections on the MIT+CMU images) and leaves their order to chance; float64 keeps them
    apart up to a logit of about 36."""
    return torch.sigmoid(logits.double()).cpu().numpy()


@torch.no_grad()
def score_level(model: FaceNet, levels: np.ndarray, device: torch.device | str = "cpu",
                tile_size: int = TILE_SIZE) -> tuple[np.ndarray, np.ndarray | None]:
    """Face probability of every window of pyramid levels (N, H, W) uint8: (N, rows, cols)
    float64 (:func:`face_probability`),
    cell (i, j) for the window at ``(stride * j, stride * i)``; and, for a net with box
    regression, the windows' edge offsets (N, 4, rows, cols), else None.

    The level is scored in overlapping tiles of at most ``tile_size`` pixels a side, each
    covering whole windows, so memory is bounded by the tile, not the image; since the network
    is exactly fully convolutional, the result equals one pass over the whole level.
    """
    window, stride = model.window, model.stride
    rows = (levels.shape[1] - window) // stride + 1
    cols = (levels.shape[2] - window) // stride + 1
    cells = max(1, (max(tile_size, window) - window) // stride + 1)  # output cells per tile side
    probs = np.empty((len(levels), rows, cols), np.float64)
    offsets = (np.empty((len(levels), BOX_CHANNELS, rows, cols), np.float32)
               if model.box_regression else None)
    for top in range(0, rows, cells):
        for left in range(0, cols, cells):
            bottom, right = min(top + cells, rows), min(left + cells, cols)
            tile = levels[:, top * stride:(bottom - 1) * stride + window,
                          left * stride:(right - 1) * stride + window]
            logits, tile_offsets = split_outputs(model(to_input(tile, device)).float())
            probs[:, top:bottom, left:right] = face_probability(logits)
            if offsets is not None:
                offsets[:, :, top:bottom, left:right] = tile_offsets.cpu().numpy()
    return probs, offsets


def score_windows_batch(model: FaceNet, images: list[np.ndarray], min_size: int,
                        scale_factor: float, threshold: float,
                        device: torch.device | str = "cpu", tile_size: int = TILE_SIZE,
                        refine: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`score_windows` for several images of one shape (H, W), each pyramid level of all
    of them in one batch (what keeps a GPU busy), in tiles (:func:`score_level`)."""
    height, width = images[0].shape
    if any(image.shape != (height, width) for image in images):
        raise ValueError("score_windows_batch needs images of one shape")
    found: list[tuple[list[np.ndarray], list[np.ndarray]]] = [([], []) for _ in images]
    for scale in pyramid_scales(height, width, model.window, min_size, scale_factor):
        size = (max(round(width * scale), model.window), max(round(height * scale), model.window))
        levels = np.stack([resize_image(image, size) for image in images])
        probs, offsets = score_level(model, levels, device, tile_size)
        sx, sy = width / size[0], height / size[1]  # exact back-projection per axis
        for k, prob in enumerate(probs):
            rows, cols = np.nonzero(prob >= threshold)
            if rows.size == 0:
                continue
            windows = np.stack([cols * model.stride * sx, rows * model.stride * sy,
                                np.full(rows.shape, model.window * sx),
                                np.full(rows.shape, model.window * sy)], axis=1)
            if refine and offsets is not None:
                windows = refine_boxes(windows, offsets[k][:, rows, cols].T)
            found[k][0].append(windows)
            found[k][1].append(prob[rows, cols])
    return [(np.concatenate(boxes), np.concatenate(scores).astype(np.float64)) if boxes
            else (np.zeros((0, 4)), np.zeros(0)) for boxes, scores in found]


def crop_windows(image: np.ndarray, boxes: np.ndarray, window: int) -> np.ndarray:
    """Boxes (K, 4) cut from ``image`` (their part inside it, at least one pixel) and resized
    to (K, window, window) uint8 (:func:`pipeline.io.resize_image`)."""
    patches = np.empty((len(boxes), window, window), np.uint8)
    height, width = image.shape
    for k, (x, y, w, h) in enumerate(boxes):  # at least one pixel inside the image
        x1, y1 = min(max(int(round(x)), 0), width - 1), min(max(int(round(y)), 0), height - 1)
        x2 = min(max(int(round(x + w)), x1 + 1), width)
        y2 = min(max(int(round(y + h)), y1 + 1), height)
        patch = image[y1:y2, x1:x2]
        patches[k] = resize_image(patch, (window, window))
    return patches

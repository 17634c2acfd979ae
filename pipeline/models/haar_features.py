"""Haar features of a detection window, valued exactly as OpenCV's cascade evaluator values them.

A feature is up to three weighted rectangles ``(x, y, w, h, weight)`` in window pixels, in
OpenCV's encoding: the whole feature area with weight -1 plus the lighter part(s) with the
weight that makes the sum over area zero (+2 for halves and quarters, +3 for a middle third).
Its value on a window is the weighted sum of pixel sums divided by the window's normalisation
``area * std`` over the window shrunk by one pixel on every side (Viola-Jones variance
normalisation, in OpenCV's units). OpenCV rejects windows whose std is 10 grey levels or less
before any feature is looked at; :func:`variance_norm` reports those as not ``valid``.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

# Feature type -> (columns, rows) of its cell grid and the lighter cells with their weight.
# The whole grid always carries weight -1.
FEATURE_TYPES: dict[str, tuple[int, int, list[tuple[int, int, float]]]] = {
    "edge_x": (2, 1, [(1, 0, 2.0)]),              # left | right
    "edge_y": (1, 2, [(0, 1, 2.0)]),              # top / bottom
    "line_x": (3, 1, [(1, 0, 3.0)]),              # left | middle | right
    "line_y": (1, 3, [(0, 1, 3.0)]),              # top / middle / bottom
    "four": (2, 2, [(1, 0, 2.0), (0, 1, 2.0)]),   # checkerboard
}
MAX_RECTS = 3
# OpenCV's HaarEvaluator: a window is only classified when area / (area * std) < 0.1.
MIN_WINDOW_STD = 10.0


def enumerate_features(window: int, position_step: int = 1, size_step: int = 1) -> np.ndarray:
    """All features of the five types in a square ``window``, (F, 3, 5) float32 rectangles.

    Positions are taken every ``position_step`` pixels and cell sizes every ``size_step``
    pixels (1, 1 + size_step, ...); steps of 1 give the full Viola-Jones set (162,336
    features in 24x24). Unused rectangle slots have weight 0.
    """
    rows = []
    for columns, cell_rows, lighter in FEATURE_TYPES.values():
        for cell_w in range(1, window // columns + 1, size_step):
            for cell_h in range(1, window // cell_rows + 1, size_step):
                width, height = columns * cell_w, cell_rows * cell_h
                for y in range(0, window - height + 1, position_step):
                    for x in range(0, window - width + 1, position_step):
                        rects = [(x, y, width, height, -1.0)]
                        rects += [(x + cx * cell_w, y + cy * cell_h, cell_w, cell_h, weight)
                                  for cx, cy, weight in lighter]
                        rects += [(0, 0, 0, 0, 0.0)] * (MAX_RECTS - len(rects))
                        rows.append(rects)
    return np.array(rows, dtype=np.float32).reshape(-1, MAX_RECTS, 5)


def integral_images(patches: np.ndarray) -> np.ndarray:
    """Integral images of (N, H, W) uint8 patches, (N, H + 1, W + 1) int64 with a zero border."""
    patches = np.asarray(patches)
    out = np.zeros((len(patches), patches.shape[1] + 1, patches.shape[2] + 1), np.int64)
    out[:, 1:, 1:] = patches.astype(np.int64).cumsum(axis=1).cumsum(axis=2)
    return out


def variance_norm(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's per-window factor ``1 / (area * std)`` over the window less a 1-pixel border,
    (N,) float32, and whether OpenCV classifies the window at all (std > 10), (N,) bool."""
    inner = np.asarray(patches)[:, 1:-1, 1:-1].astype(np.int64)
    area = float(inner.shape[1] * inner.shape[2])
    total = inner.sum(axis=(1, 2)).astype(np.float64)
    squares = (inner * inner).sum(axis=(1, 2)).astype(np.float64)
    spread = area * squares - total * total
    positive = spread > 0
    factor = np.ones(len(inner), np.float32)
    factor[positive] = (1.0 / np.sqrt(spread[positive])).astype(np.float32)
    valid = positive & (area * factor.astype(np.float64) < 1.0 / MIN_WINDOW_STD)
    return factor, valid


def corner_matrix(features: np.ndarray, window: tuple[int, int]) -> sparse.csc_matrix:
    """Sparse (integral pixels, F) matrix: integral image (flattened) @ it = weighted rect sums.

    ``window`` is (width, height); each rectangle adds its weight at its four integral corners.
    """
    width = window[0] + 1
    x, y, w, h = (features[..., k].astype(np.int64) for k in range(4))
    weight = features[..., 4].astype(np.float64)
    index = np.repeat(np.arange(len(features)), MAX_RECTS)
    corners = [((y + h) * width + x + w, 1.0), (y * width + x + w, -1.0),
               ((y + h) * width + x, -1.0), (y * width + x, 1.0)]
    rows = np.concatenate([c.reshape(-1) for c, _ in corners])
    data = np.concatenate([(sign * weight).reshape(-1) for _, sign in corners])
    cols = np.tile(index, 4)
    keep = data != 0
    shape = ((window[1] + 1) * width, len(features))
    return sparse.csc_matrix((data[keep], (rows[keep], cols[keep])), shape=shape)


def feature_values(patches: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Normalised feature values, (F, N) float32: row f holds feature f on every patch.

    Computed as OpenCV does: exact integer rectangle sums times the float32 factor of
    :func:`variance_norm`, in float32 arithmetic, so thresholds compare identically.
    """
    patches = np.asarray(patches)
    height, width = patches.shape[1:]
    flat = integral_images(patches).reshape(len(patches), (height + 1) * (width + 1))
    flat = flat.astype(np.float32)
    sums = (corner_matrix(features, (width, height)).T @ flat.T).astype(np.float32)
    factor, _ = variance_norm(patches)
    return sums * factor[None, :]

"""Composing dataset images and files: faces blended into scenes with a feathered rim,
random background crops, non-overlapping face boxes, and the training arrays file. Used by
the embedded and the real dataset builders (:mod:`pipeline.data.datasets`,
:mod:`pipeline.data.real_datasets`) and by training-time augmentation
(:mod:`pipeline.training.samples`)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.boxes import Box
from pipeline.io import atomic_open


def feathered_mask(size: int, feather: float, width: int | None = None) -> np.ndarray:
    """Alpha mask (size, width or size) in [0, 1]: 1 inside, falling linearly to 0 at the rim."""
    rows = np.minimum(np.arange(size), np.arange(size)[::-1]) + 0.5
    columns = np.minimum(np.arange(width or size), np.arange(width or size)[::-1]) + 0.5
    return np.clip(np.minimum.outer(rows, columns) / max(feather, 1e-6), 0.0, 1.0)


def paste_face(scene: np.ndarray, face: np.ndarray, box: Box) -> None:
    """Blend ``face`` resized to ``box`` into ``scene`` in place with a feathered rim."""
    x, y, side = int(box.x), int(box.y), int(box.w)
    resized = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    alpha = feathered_mask(side, feather=max(1.5, 0.05 * side))
    region = scene[y : y + side, x : x + side].astype(np.float32)
    blended = alpha * resized + (1.0 - alpha) * region
    scene[y : y + side, x : x + side] = np.clip(blended.round(), 0, 255).astype(np.uint8)


def random_crop(image: np.ndarray, width: int, height: int, rng: np.random.Generator,
                max_zoom: float = 1.6) -> np.ndarray:
    """A ``width`` x ``height`` crop of ``image`` at a random zoom of at least cover size."""
    h, w = image.shape
    scale = max(width / w, height / h) * rng.uniform(1.0, max_zoom)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    x0 = int(rng.integers(0, new_w - width + 1))
    y0 = int(rng.integers(0, new_h - height + 1))
    return resized[y0 : y0 + height, x0 : x0 + width].copy()


def place_boxes(n: int, sizes: tuple[int, int], width: int, height: int,
                rng: np.random.Generator, tries: int = 100) -> list[Box]:
    """Up to ``n`` non-overlapping squares inside the image, side uniform in ``sizes``."""
    boxes: list[Box] = []
    for _ in range(n):
        for _ in range(tries):
            side = int(rng.integers(sizes[0], sizes[1] + 1))
            x = int(rng.integers(0, width - side + 1))
            y = int(rng.integers(0, height - side + 1))
            box = Box(x, y, side, side)
            margin = 4
            if all(
                box.x + box.w + margin <= b.x or b.x + b.w + margin <= box.x
                or box.y + box.h + margin <= b.y or b.y + b.h + margin <= box.y
                for b in boxes
            ):
                boxes.append(box)
                break
    return boxes


def save_training_arrays(out_dir: Path, faces: np.ndarray, nonfaces: np.ndarray) -> None:
    """``train.npz``: faces (N, h, w) and face-free patches (M, h, w), uint8."""
    with atomic_open(out_dir / "train.npz", "wb") as handle:
        np.savez_compressed(handle, faces=faces, nonfaces=nonfaces)

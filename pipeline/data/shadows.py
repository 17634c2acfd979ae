"""Synthetic cast shadows over faces, in two families.

A shadow is an opacity mask in [0, 1] (H, W), float32: 1 where the light is fully blocked.
Per face box it has a **shape** and a **reach**:

- ``edge``: a straight shadow edge at a random angle, passing within ``offset`` x face size of
  the face centre, a logistic ramp ``softness`` x face size wide (a soft shadow from a distant
  occluder, such as a wall or a brim seen from afar);
- ``occluder``: the rim of an elliptical occluder's shadow (a hand, a hat, a leaf: a curved,
  bounded edge), its nearest point within ``offset`` x face size of the face centre, with the
  same logistic ramp (use a small ``softness`` for a hard cast edge).

A real cast shadow does not stop at the face, so neither does this one: it reaches ``reach``
x face size from the face centre (a disc, not the box) and fades out over the last half face
size, leaving no box-shaped edge. Several faces take the darker of their masks.
"""

from __future__ import annotations

import numpy as np

from pipeline.boxes import Box

# Shadow shape -> what it is, for the report.
SHADOW_SHAPES = {
    "edge": "a straight soft edge (a distant occluder)",
    "occluder": "the curved rim of a nearby elliptical occluder",
}


def _logistic(signed: np.ndarray, width: float) -> np.ndarray:
    """1 / (1 + exp(-signed / width)), without overflow warnings."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.clip(signed / width, -60.0, 60.0)))


def shadow_mask(shape: tuple[int, int], boxes: list[Box], softness: float, offset: float,
                rng: np.random.Generator, family: str = "edge", reach: float = 1.5
                ) -> np.ndarray:
    """Shadow opacity (H, W) float32 in [0, 1] of ``family`` over each box (module docstring).

    Draws per face, in order: the angle, the shift in [-offset, offset] x size, and for the
    occluder its two semi-axes. ``reach`` (face sizes, >= 0.5) bounds the shadow's disc.
    """
    if family not in SHADOW_SHAPES:
        raise ValueError(f"shadow family {family!r}: expected one of {sorted(SHADOW_SHAPES)}")
    height, width = shape
    mask = np.zeros(shape, np.float32)
    for box in boxes:
        size = float(max(box.w, box.h))
        angle = rng.uniform(0.0, 2.0 * np.pi)
        shift = rng.uniform(-offset, offset) * size
        if family == "occluder":
            along = rng.uniform(0.25, 0.5) * size   # semi-axis towards the face centre
            across = rng.uniform(0.6, 1.0) * size   # semi-axis along the rim
        cx, cy = box.x + box.w / 2, box.y + box.h / 2
        radius = reach * size
        x1, y1 = max(int(np.floor(cx - radius)), 0), max(int(np.floor(cy - radius)), 0)
        x2, y2 = min(int(np.ceil(cx + radius)), width), min(int(np.ceil(cy + radius)), height)
        if x2 <= x1 or y2 <= y1:
            continue
        ys, xs = np.mgrid[y1:y2, x1:x2].astype(np.float32) + 0.5
        dx, dy = xs - cx, ys - cy
        normal = dx * np.cos(angle) + dy * np.sin(angle)   # towards the shadow
        if family == "edge":
            signed = normal - shift
        else:  # ellipse centred beyond the face centre along the normal; rim at `shift`
            tangent = -dx * np.sin(angle) + dy * np.cos(angle)
            u, v = (normal - shift - along) / along, tangent / across
            # signed distance to the rim in pixels, positive inside: the first-order
            # (f / |grad f|) distance to the level set f = r - 1 = 0 of the ellipse
            r = np.sqrt(u * u + v * v)
            gradient = np.sqrt((u / along) ** 2 + (v / across) ** 2) / np.maximum(r, 1e-6)
            signed = (1.0 - r) / np.maximum(gradient, 1e-6)
        blocked = _logistic(signed, max(softness * size, 1e-3))
        fade = np.clip((radius - np.hypot(dx, dy)) / (0.5 * size), 0.0, 1.0)
        mask[y1:y2, x1:x2] = np.maximum(mask[y1:y2, x1:x2], blocked * fade)
    return mask


def cast_shadow(image: np.ndarray, boxes: list[Box], strength: float, softness: float,
                offset: float, rng: np.random.Generator, family: str = "edge",
                reach: float = 1.5) -> np.ndarray:
    """``image`` (H, W) uint8 with a cast shadow: pixels x (1 - strength x mask), rounded."""
    mask = shadow_mask(image.shape[:2], boxes, softness, offset, rng, family, reach)
    shaded = image.astype(np.float32) * (1.0 - strength * mask)
    return np.clip(shaded.round(), 0, 255).astype(np.uint8)

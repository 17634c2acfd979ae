"""Training samples shared by the CNN and the Haar cascade trainers.

Both learn from the same data: a dataset's training faces (``train.npz``: ``faces`` (N, h, w)
and face-free ``nonfaces`` (M, h, w) uint8) with the same augmentation, and its face-free
scenes (``train_backgrounds.json``), from which both draw random negative windows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.boxes import Box, Manifest, boxes_to_array, iou_matrix, overlap_matrix
from pipeline.data.compose import feathered_mask
from pipeline.data.shadows import shadow_mask
from pipeline.io import progress, read_gray, resize_image

LOG = logging.getLogger(__name__)

# A window counts as face-free when less than this share of it, or of any face box, is shared
# with that face box (intersection over the smaller area).
MAX_FACE_OVERLAP = 0.3


@dataclass
class Scene:
    """A training scene: grayscale image (H, W) and the face boxes to avoid, (K, 4) x y w h."""

    image: np.ndarray
    faces: np.ndarray


def photometric(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random contrast about the patch mean and brightness shift, uint8 in and out."""
    values = patch.astype(np.float32)
    mean = values.mean()
    values = (values - mean) * rng.uniform(0.6, 1.4) + mean + rng.uniform(-40, 40)
    return np.clip(values, 0, 255).astype(np.uint8)


def augment_faces(faces: np.ndarray, copies: int, window: int,
                  rng: np.random.Generator) -> np.ndarray:
    """``copies`` random variants of each face, (len(faces) * copies, window, window) uint8.

    Random mirror, rotation (+-8 degrees), scale (0.9-1.1), shift (+-6% of the window), then
    contrast (x0.6-1.4) and brightness (+-40 grey levels).
    """
    return jitter_faces(faces, copies, window, rng)[0]


def jitter_faces(faces: np.ndarray, copies: int, window: int, rng: np.random.Generator,
                 scale: tuple[float, float] = (0.9, 1.1), shift: float = 0.06,
                 iou_range: tuple[float, float] | None = None, tries: int = 50,
                 surrounds: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`augment_faces` with the face box of every variant: patches (K, window, window)
    uint8 and boxes (K, 4) ``x, y, w, h`` in window pixels.

    A face crop fills its box, so a variant's box is the crop's square scaled by the drawn
    scale and moved by the drawn shift (rotation turns the face inside that box). With
    ``iou_range`` a variant is kept only when its box's IoU with the whole window lies in
    ``[low, high)``: each of ``copies`` gets ``tries`` draws of geometry, and a copy that gets
    none in range is left out (so K <= len(faces) * copies). Without it, no draw is rejected.

    Outside its crop a face is continued by replicating the crop's border, unless
    ``surrounds`` (len(faces) * copies, window, window) gives each copy a scene window: then
    the warped face is blended into it with a feathered rim (10% of the face side), as the
    embedded test scenes are composed, so that no replicated streak marks the box's edges.
    """
    patches = np.empty((len(faces) * copies, window, window), np.uint8)
    boxes = np.empty((len(faces) * copies, 4))
    whole = np.array([[0.0, 0.0, window, window]])
    k = 0
    for face in faces:
        side = face.shape[0]
        for _ in range(copies):
            for _ in range(tries):
                mirror = rng.random() < 0.5
                factor = rng.uniform(*scale)
                angle = rng.uniform(-8, 8)
                move = rng.uniform(-shift, shift, 2) * window
                side_px = window * factor
                box = np.r_[window / 2 + move - side_px / 2, side_px, side_px]
                if iou_range is None or (
                        iou_range[0] <= iou_matrix(box[None], whole)[0, 0] < iou_range[1]):
                    break
            else:
                continue
            source = face[:, ::-1] if mirror else face
            matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle, window / side * factor)
            matrix[:, 2] += window / 2 - side / 2 + move
            warped = cv2.warpAffine(np.ascontiguousarray(source), matrix, (window, window),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            if surrounds is not None:
                alpha = cv2.warpAffine(feathered_mask(side, 0.1 * side), matrix,
                                       (window, window), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_CONSTANT)
                warped = np.rint(alpha * warped + (1 - alpha) * surrounds[k]).astype(np.uint8)
            patches[k], boxes[k] = photometric(warped, rng), box
            k += 1
    return patches[:k], boxes[:k]


# The illumination augmentation draws from its own stream, [seed, ILLUMINATION_STREAM, round],
# so that turning it on changes no other draw, and it shares nothing with the test variants'
# generators ([variant seed, image index]).
ILLUMINATION_STREAM = 7_001


def illumination_rng(seed: int, round_index: int = 0) -> np.random.Generator:
    """The illumination augmentation's generator for one training round (or a cascade)."""
    return np.random.default_rng([seed, ILLUMINATION_STREAM, round_index])


def illuminate(faces: np.ndarray, settings: dict[str, float], rng: np.random.Generator
               ) -> np.ndarray:
    """Training faces (N, h, w) uint8 under random light, each with ``probability``.

    Per altered face, in this order: a cast shadow of ``shadow_family`` (the test variants'
    generator, :func:`pipeline.data.shadows.shadow_mask`, over the whole patch as the face box:
    an edge passing within the middle half of the patch, a logistic rim ``shadow_softness`` x
    the side wide; the shadow darkened by a factor drawn from [0, ``shadow_strength``]); a light
    gradient (a linear ramp in a random direction, up to +-``gradient`` grey levels at the
    middle of each edge, +-sqrt(2) x ``gradient`` at the corners); gamma drawn log-uniformly
    from [1/``gamma``, ``gamma``]; local contrast (CLAHE, clip limit drawn from
    [1, ``local_contrast``], 4x4 tiles; none when it is 1). Each part
    with its neutral setting (0, 0, 1, 1) leaves a face as it is. Only ``faces`` change: the
    caller applies it to the positives alone, the same way for the CNN and the cascade.
    """
    out = faces.copy()
    n, height, width = faces.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    face = Box(0.0, 0.0, float(width), float(height))
    for k in range(n):
        if rng.random() >= settings["probability"]:
            continue
        patch = out[k].astype(np.float32)
        mask = shadow_mask((height, width), [face], settings["shadow_softness"], 0.25, rng,
                           settings["shadow_family"])
        patch *= 1 - rng.uniform(0, settings["shadow_strength"]) * mask
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * (xs - width / 2) / max(width, 1)
                + np.sin(angle) * (ys - height / 2) / max(height, 1)) * 2
        patch += rng.uniform(-settings["gradient"], settings["gradient"]) * ramp
        gamma = float(np.exp(rng.uniform(-1, 1) * np.log(settings["gamma"])))
        patch = 255 * (np.clip(patch, 0, 255) / 255) ** gamma
        clip = rng.uniform(1, settings["local_contrast"])
        out[k] = np.clip(np.rint(patch), 0, 255).astype(np.uint8)
        if settings["local_contrast"] > 1:
            out[k] = cv2.createCLAHE(clipLimit=float(clip), tileGridSize=(4, 4)).apply(out[k])
    return out


# The low-resolution augmentation draws from its own stream, [seed, LOW_RESOLUTION_STREAM,
# round], so that turning it on changes no other draw.
LOW_RESOLUTION_STREAM = 7_027


def low_resolution(patches: np.ndarray, settings: dict[str, float], rng: np.random.Generator
                   ) -> np.ndarray:
    """Patches (N, s, s) uint8, each with ``probability`` shrunk to a side drawn uniformly from
    [``min_side``, s] by area averaging, then enlarged back to s bilinearly, as the CNN
    detector enlarges an image for the faces below its window size (a 24 px face in a 32 px
    window: x1.33). The others are returned as they are."""
    out = patches.copy()
    side = patches.shape[-1]
    if settings["min_side"] > side:
        raise ValueError(f"low_resolution.min_side {settings['min_side']} is larger than the "
                         f"{side} px window")
    for k in range(len(out)):
        if rng.random() >= settings["probability"]:
            continue
        small = int(rng.integers(settings["min_side"], side + 1))
        shrunk = cv2.resize(out[k], (small, small), interpolation=cv2.INTER_AREA)
        out[k] = cv2.resize(shrunk, (side, side), interpolation=cv2.INTER_LINEAR)
    return out


def faces_as_trained(patches: np.ndarray, settings: dict[str, Any], rng: np.random.Generator,
                     round_index: int, own_streams: bool = True) -> np.ndarray:
    """Jittered face patches after the entry's optional augmentations: ``illumination``
    (:func:`illuminate`), then ``low_resolution`` (:func:`low_resolution`). Each draws from its
    own stream when ``own_streams``, else from ``rng``."""
    if settings.get("illumination"):
        patches = illuminate(patches, settings["illumination"],
                             illumination_rng(settings["seed"], round_index)
                             if own_streams else rng)
    if settings.get("low_resolution"):
        patches = low_resolution(
            patches, settings["low_resolution"],
            np.random.default_rng([settings["seed"], LOW_RESOLUTION_STREAM, round_index])
            if own_streams else rng)
    return patches


# The positives draw from their own stream, [seed, POSITIVE_STREAM, round], so that a cascade
# and a CNN trained with one seed receive the same augmented faces (the same mirror, rotation,
# scale, shift, contrast and brightness per copy, each at its own window size), whatever
# else each trainer draws first.
POSITIVE_STREAM = 7_003


def positives_rng(seed: int, round_index: int = 0) -> np.random.Generator:
    """The generator of a training round's (or a cascade's: round 0) augmented positives."""
    return np.random.default_rng([seed, POSITIVE_STREAM, round_index])


def training_positives(faces: np.ndarray, settings: dict[str, Any], window: int,
                       rng: np.random.Generator, round_index: int = 0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The positives of a ``models:`` or ``cascades:`` entry and their face boxes:
    :func:`jitter_faces` as :func:`augment_faces` draws from ``rng`` (the trainers pass
    :func:`positives_rng`), then the entry's optional augmentations (:func:`faces_as_trained`),
    each from its own generator. Patches (K, window, window) uint8, boxes (K, 4) in window
    pixels."""
    positives, boxes = jitter_faces(faces, settings["positives_per_face"], window, rng)
    return faces_as_trained(positives, settings, rng, round_index), boxes


# Part faces draw from their own stream, [seed, PART_FACE_STREAM, round], so that turning box
# regression on changes no other draw of a training run.
PART_FACE_STREAM = 7_013
# MTCNN's labels by IoU between a jittered window and its face: positive at or above
# POSITIVE_IOU, part face (box regression only) in PART_FACE_IOU, negative below 0.3.
POSITIVE_IOU = 0.65
PART_FACE_IOU = (0.4, POSITIVE_IOU)
# The smallest scene window a scene face is blended into, in scene pixels, whatever the
# trainer's window: a 24 px cascade and a 32 px CNN then draw the same surroundings.
SURROUND_MIN_SIDE = 24


def scene_faces(faces: np.ndarray, scenes: list[Scene], settings: dict[str, Any], window: int,
                copies: int, round_index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` windows per face that overlap it by IoU >= 0.4
    (scale 0.7-1.45, shift +-30% of the window), each face blended into a random window of the
    face-free ``scenes``, with photometric and the entry's optional augmentations as the
    positives' (:func:`faces_as_trained`, drawn from this stream). Patches (K, window, window)
    uint8 and face boxes (K, 4) in window pixels: positives at IoU >= :data:`POSITIVE_IOU`,
    part faces below. Every draw is relative to the window, so two window sizes get the same
    faces on the same surroundings at two resolutions."""
    rng = np.random.default_rng([settings["seed"], PART_FACE_STREAM, round_index])
    surrounds = random_windows(scenes, len(faces) * copies, window, SURROUND_MIN_SIDE, rng)
    surrounds = (surrounds[np.arange(len(faces) * copies) % len(surrounds)] if len(surrounds)
                 else None)  # none only when every scene is crowded with faces (warned)
    patches, boxes = jitter_faces(faces, copies, window, rng, scale=(0.7, 1.45), shift=0.3,
                                  iou_range=(PART_FACE_IOU[0], np.inf), surrounds=surrounds)
    return faces_as_trained(patches, settings, rng, round_index, own_streams=False), boxes


def scene_positives(boxes: np.ndarray, window: int) -> np.ndarray:
    """Which scene faces (:func:`scene_faces`'s boxes (K, 4)) are positives: IoU with the
    whole window >= :data:`POSITIVE_IOU`; the others are part faces. Bool (K,)."""
    whole = np.array([[0.0, 0.0, window, window]])
    return iou_matrix(np.asarray(boxes, float).reshape(-1, 4), whole)[:, 0] >= POSITIVE_IOU


def cascade_positives(faces: np.ndarray, scenes: list[Scene], settings: dict[str, Any],
                      window: int) -> np.ndarray:
    """The cascade's positives (P, window, window) uint8: the augmented faces a CNN trained with
    the same seed receives in round 0 (:func:`training_positives` from :func:`positives_rng`),
    then, with ``scene_faces``, the scene-blended faces at IoU >= 0.65 that such a CNN's box
    regression draws (:func:`scene_faces`; the cascade has no use for its part faces)."""
    positives = training_positives(faces, settings, window, positives_rng(settings["seed"]))[0]
    if not settings.get("scene_faces"):
        return positives
    extra, boxes = scene_faces(faces, scenes, settings, window,
                               settings["scene_faces"]["faces_per_face"])
    return np.concatenate([positives, extra[scene_positives(boxes, window)]])


def resize_patches(patches: np.ndarray, window: int) -> np.ndarray:
    """Patches (N, h, w) resized to (N, window, window) uint8
    (:func:`pipeline.io.resize_image`)."""
    return np.array([resize_image(p, (window, window)) for p in patches],
                    dtype=np.uint8).reshape(-1, window, window)


def random_windows(scenes: list[Scene], count: int, window: int, min_size: int,
                   rng: np.random.Generator, tries: int = 50) -> np.ndarray:
    """Up to ``count`` random square windows away from faces, resized to (K, window, window).

    Each window gets ``tries`` draws to land away from the scenes' faces; a window whose every
    draw overlaps a face is skipped (never returned as a negative), and the skips are counted
    in a warning, so K < ``count`` only when the scenes are crowded with faces.
    """
    out = np.empty((count, window, window), np.uint8)
    kept = 0
    for _ in range(count):
        for _ in range(tries):
            scene = scenes[int(rng.integers(len(scenes)))]
            height, width = scene.image.shape
            side = int(rng.integers(min_size, min(height, width) + 1))
            x = int(rng.integers(0, width - side + 1))
            y = int(rng.integers(0, height - side + 1))
            if not len(scene.faces) or overlap_matrix(np.array([[x, y, side, side]], float),
                                                      scene.faces).max() < MAX_FACE_OVERLAP:
                break
        else:
            continue
        patch = resize_image(scene.image[y:y + side, x:x + side], (window, window))
        out[kept] = photometric(patch, rng) if rng.random() < 0.5 else patch
        kept += 1
    if kept < count:
        LOG.warning("random negative windows: %d of %d skipped, every one of their %d draws "
                    "overlapped a face; %d kept", count - kept, count, tries, kept)
    return out[:kept]


MINING_STREAM = 4_099


def scan_scenes(scenes: list[Scene], scan: Callable[[Scene], Any], wanted: int,
                min_scenes: int, seed: int, index: int, found: Callable[[Any], int] = len
                ) -> dict[int, Any]:
    """``scan(scene)`` for the scenes in a random order until at least ``min_scenes`` are
    scanned and ``found`` counts at least ``wanted`` results in them; ``min_scenes`` 0 scans
    every scene. Returns ``{scene index: result}`` in index order.

    The order of round or stage ``index`` comes from its own stream ``[seed, MINING_STREAM,
    index]``, so a resumed training scans the same scenes. As OpenCV's ``traincascade`` takes
    negatives from its background images in turn until it has enough, this bounds the cost of a
    round by what it needs, not by the size of the scene set.
    """
    order = np.random.default_rng([seed, MINING_STREAM, index]).permutation(len(scenes))
    results: dict[int, Any] = {}
    total = 0
    with progress(order, desc=f"mining {index}", unit="scene", leave=False) as bar:
        for position in bar:
            results[int(position)] = scan(scenes[position])
            total += found(results[int(position)])
            bar.set_postfix(found=total, refresh=False)
            if min_scenes and len(results) >= min_scenes and total >= wanted:
                break
    return dict(sorted(results.items()))


def load_backgrounds(manifest_path: str | Path) -> list[Scene]:
    """The training scenes of a manifest; unreadable ones are skipped with a warning."""
    manifest = Manifest.load(manifest_path)
    scenes = []
    for record in manifest.images:
        try:
            scenes.append(Scene(read_gray(manifest.image_path(record)),
                                boxes_to_array(record.boxes)))
        except (OSError, ValueError) as error:
            LOG.warning("skipping training scene: %s", error)
    return scenes


def load_training_data(train_npz: str | Path, backgrounds_json: str | Path
                       ) -> tuple[np.ndarray, np.ndarray, list[Scene]]:
    """Training faces (N, h, w), face-free patches (M, h, w) and face-free scenes; raises
    ``ValueError`` naming the file when there are no faces or no scenes."""
    with np.load(train_npz) as data:
        faces, nonfaces = data["faces"], data["nonfaces"]
    scenes = load_backgrounds(backgrounds_json)
    if len(faces) == 0 or not scenes:
        raise ValueError(f"{train_npz}: no training faces or no face-free scenes to train on")
    return faces, nonfaces, scenes

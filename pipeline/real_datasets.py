"""Builders for real datasets read through :mod:`pipeline.formats`.

- ``annotated``: any annotated format (box lists, dlib XML, FDDB, WIDER FACE, COCO). The test
  manifest points at the original images (nothing is copied); the training part holds the
  boxed faces cropped to squares, and the annotated images themselves as scenes whose face
  boxes negative sampling avoids.
- ``face_folders``: a folder of face crops and a folder of face-free scenes (training only).
- ``yale_b``: Extended Yale B crops (optionally of some ``subjects`` only, so that others can
  serve as development data) placed on a larger canvas, so each becomes a detection test image
  with a known box; the light direction is kept and binned into groups by its angle to the
  camera axis, so results can be grouped by it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.boxes import Box, ImageRecord, Manifest
from pipeline.datasets import feathered_mask, random_crop, save_training_arrays
from pipeline.formats import (
    attach_landmarks,
    image_files,
    image_size,
    light_angle,
    read_box_list,
    read_coco,
    read_dlib_xml,
    read_fddb,
    read_landmarks,
    read_wider,
    read_yale_b,
)
from pipeline.io import progress, read_gray, write_image

LOG = logging.getLogger(__name__)

CROP_SIZE = 36  # side of the stored training face crops, pixels


# Annotation format -> reader(annotation file, image folder) -> records named relative to that
# folder; ``box_list`` (read_box_list) also takes an image list, and is read apart.
ANNOTATION_READERS: dict[str, Callable[[str, Path], list[ImageRecord]]] = {
    "dlib_xml": read_dlib_xml,
    "fddb": read_fddb,
    "wider": read_wider,
    "coco": read_coco,
}
ANNOTATION_FORMATS = ["box_list", *ANNOTATION_READERS]


def _read_source(fmt: str, source: dict[str, Any], root: Path) -> list[ImageRecord]:
    """One annotation file of a dataset; image names made relative to the dataset ``root``."""
    images = Path(source.get("images", root))
    prefix = Path(images).resolve().relative_to(root.resolve()).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    annotations = source["annotations"]
    if fmt == "box_list":
        return read_box_list(annotations, root, prefix=prefix,
                             image_list=source.get("image_list"))
    records = ANNOTATION_READERS[fmt](annotations, images)
    for record in records:
        record.file = prefix + record.file
    return records


def build_annotated(settings: dict[str, Any], out_dir: Path) -> None:
    root = Path(settings["root"])
    records: list[ImageRecord] = []
    for source in settings["sources"]:
        records += _read_source(settings["format"], source, root)
    if "image_sample" in settings:
        records = sample_records(records, **settings["image_sample"])
    if settings.get("landmarks"):
        attach_landmarks(records, read_landmarks(settings["landmarks"]), settings["landmarks"])
    manifest = Manifest("ground_truth", root, records,
                        meta={"format": settings["format"],
                              "sources": [s["annotations"] for s in settings["sources"]]})
    manifest.save(out_dir / "test.json")
    manifest = Manifest.load(out_dir / "test.json")  # validated; boxes clipped, with warnings
    manifest.save(out_dir / "test.json")
    LOG.info("%s: %d images, %d faces", settings["format"], len(records), manifest.n_boxes)
    faces = [crop_square(read_gray(manifest.image_path(r)), b)
             for r in progress(records, desc="crop faces", unit="img") for b in r.boxes]
    save_training_arrays(out_dir, np.stack(faces) if faces else _empty(),
                         _empty())
    manifest.save(out_dir / "train_backgrounds.json")


def sample_records(records: list[ImageRecord], size: int, seed: int) -> list[ImageRecord]:
    """``size`` of the records drawn without replacement (numpy generator ``seed``), kept in
    their order; all of them when there are no more than ``size``."""
    if len(records) <= size:
        LOG.info("image_sample: all %d images (no more than the %d asked for)",
                 len(records), size)
        return records
    chosen = np.sort(np.random.default_rng(seed).choice(len(records), size, replace=False))
    LOG.info("image_sample: %d of %d images (seed %d)", size, len(records), seed)
    return [records[i] for i in chosen]


def crop_square(image: np.ndarray, box: Box, size: int = CROP_SIZE) -> np.ndarray:
    """The square of side (w + h) / 2 centred on ``box``, resized to (size, size) uint8.

    Parts outside the image are filled by replicating the border.
    """
    side = (box.w + box.h) / 2
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    scale = size / side
    matrix = np.array([[scale, 0, size / 2 - cx * scale], [0, scale, size / 2 - cy * scale]])
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_REPLICATE)


def _empty() -> np.ndarray:
    return np.zeros((0, CROP_SIZE, CROP_SIZE), np.uint8)


def build_face_folders(settings: dict[str, Any], out_dir: Path) -> None:
    faces = []
    for path in progress(image_files(settings["faces"]), desc="read faces", unit="img"):
        try:
            face = read_gray(path)
        except ValueError as error:
            LOG.warning("skipping face crop: %s", error)
            continue
        if face.shape != (CROP_SIZE, CROP_SIZE):
            face = cv2.resize(face, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA)
        faces.append(face)
    if not faces:
        raise ValueError(f"{settings['faces']}: no readable face images")
    save_training_arrays(out_dir, np.stack(faces), _empty())
    scenes_root = Path(settings["scenes"])
    records = []
    for path in image_files(scenes_root):
        try:
            width, height = image_size(path, str(scenes_root))
        except ValueError as error:
            LOG.warning("skipping face-free scene: %s", error)
            continue
        records.append(ImageRecord(path.relative_to(scenes_root).as_posix(), width, height))
    Manifest("ground_truth", scenes_root, records, meta={"purpose": "face-free scenes"}
             ).save(out_dir / "train_backgrounds.json")
    Manifest("ground_truth", scenes_root, [], meta={"note": "training-only dataset"}
             ).save(out_dir / "test.json")
    LOG.info("face folders: %d faces, %d face-free scenes", len(faces), len(records))


def angle_group(angle: float, edges: list[float]) -> str:
    """The bin label, e.g. ``25-50 deg``, of a light angle for the bin ``edges``."""
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        if low <= angle < high or (high == edges[-1] and angle == high):
            return f"{low:g}-{high:g} deg"
    return f">{edges[-1]:g} deg"


def build_yale_b(settings: dict[str, Any], out_dir: Path) -> None:
    rng = np.random.default_rng(settings["seed"])
    width, height = settings["canvas_size"]
    scenes = [read_gray(p) for p in image_files(settings["scenes"])] if settings.get(
        "scenes") else []
    records = []
    crops = [(path, light) for path, light in read_yale_b(settings["folder"])
             if light["subject"] in settings.get("subjects", [light["subject"]])]
    if not crops:
        raise ValueError(f"{settings['folder']}: no Yale B crops of subjects "
                         f"{settings.get('subjects')}")
    for index, (path, light) in enumerate(progress(crops, desc="place Yale B faces",
                                                   unit="img")):
        face = read_gray(path)
        if scenes:
            canvas = random_crop(scenes[index % len(scenes)], width, height, rng)
        else:
            canvas = np.clip(rng.normal(128, 8, (height, width)), 0, 255).astype(np.uint8)
        face_h = int(rng.integers(settings["face_size"][0], settings["face_size"][1] + 1))
        face_w = max(1, round(face_h * face.shape[1] / face.shape[0]))
        x = int(rng.integers(0, width - face_w + 1))
        y = int(rng.integers(0, height - face_h + 1))
        resized = cv2.resize(face, (face_w, face_h), interpolation=cv2.INTER_AREA)
        alpha = feathered_mask(face_h, 2.0, width=face_w)
        region = canvas[y:y + face_h, x:x + face_w].astype(np.float32)
        canvas[y:y + face_h, x:x + face_w] = np.clip(alpha * resized + (1 - alpha) * region,
                                                     0, 255).astype(np.uint8)
        angle = light_angle(light["azimuth"], light["elevation"])
        file = f"{path.stem}.png"
        write_image(out_dir / "test" / file, canvas)
        records.append(ImageRecord(file, width, height, [Box(x, y, face_w, face_h)],
                                   attributes={**light, "light_angle": round(angle, 2),
                                               "group": angle_group(angle,
                                                                    settings["angle_bins"])}))
    Manifest("ground_truth", out_dir / "test", records,
             meta={"source": str(settings["folder"])}).save(out_dir / "test.json")
    save_training_arrays(out_dir, _empty(), _empty())
    Manifest("ground_truth", out_dir / "test", [], meta={"note": "test-only dataset"}
             ).save(out_dir / "train_backgrounds.json")
    LOG.info("Yale B: %d test images", len(records))

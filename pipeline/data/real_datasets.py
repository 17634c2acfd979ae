"""Builders for real datasets read through :mod:`pipeline.data.formats`.

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

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline import paths
from pipeline.boxes import Box, ImageRecord, Manifest
from pipeline.data.compose import feathered_mask, random_crop, save_training_arrays
from pipeline.data.formats import AnnotationError, image_files, image_size, join_image_name
from pipeline.data.formats_box_list import attach_landmarks, read_box_list, read_landmarks
from pipeline.data.formats_dlib_coco import read_coco, read_dlib_xml
from pipeline.data.formats_fddb_wider import read_fddb, read_wider
from pipeline.data.formats_yale import light_angle, read_yale_b
from pipeline.data.roles import scene_part
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


def _read_source(fmt: str, source: dict[str, Any], root: Path, check_images: bool = True
                 ) -> list[ImageRecord]:
    """One annotation file of a dataset; image names made relative to the dataset ``root``
    (absolute names stay absolute). Without ``check_images``, names only (sizes 0)."""
    images = Path(source.get("images", root)).resolve()
    if images.is_relative_to(root.resolve()):
        prefix = images.relative_to(root.resolve()).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
    else:  # an image folder elsewhere: its images are named by absolute path
        prefix = images.as_posix() + "/"
    annotations = source["annotations"]
    if fmt == "box_list":
        return read_box_list(annotations, root, prefix=prefix,
                             image_list=source.get("image_list"), check_images=check_images)
    records = ANNOTATION_READERS[fmt](annotations, images, check_images=check_images)
    for record in records:
        record.file = join_image_name(prefix, record.file)
    return records


def annotated_inputs(settings: dict[str, Any]) -> list[Path]:
    """The files an ``annotated`` build reads: its annotation, image and landmark lists and
    every image they name (names parsed only; no image is decoded)."""
    root = Path(settings["root"])
    files = [Path(settings["landmarks"])] if settings.get("landmarks") else []
    for source in settings["sources"]:
        files += [Path(source[key]) for key in ("annotations", "image_list") if key in source]
        files += [root / r.file for r in _read_source(settings["format"], source, root,
                                                      check_images=False)]
    return list(dict.fromkeys(files))


def build_annotated(settings: dict[str, Any], out_dir: Path) -> None:
    root = Path(settings["root"])
    records = unique_records([(source["annotations"],
                               _read_source(settings["format"], source, root))
                              for source in settings["sources"]], root)
    if "image_sample" in settings:
        records = sample_records(records, **settings["image_sample"])
    if settings.get("landmarks"):
        attach_landmarks(records, read_landmarks(settings["landmarks"]), settings["landmarks"])
    manifest = Manifest("ground_truth", root, records,
                        meta={"format": settings["format"],
                              "sources": [s["annotations"] for s in settings["sources"]]})
    # validated before anything is written; boxes past the border clipped, with warnings
    manifest.check(", ".join(str(s["annotations"]) for s in settings["sources"]))
    manifest.save(out_dir / "test.json")
    LOG.info("%s: %d images, %d faces", settings["format"], len(records), manifest.n_boxes)
    faces = [crop_square(read_gray(manifest.image_path(r)), b)
             for r in progress(records, desc="crop faces", unit="img") for b in r.boxes]
    save_training_arrays(out_dir, np.stack(faces) if faces else _empty(),
                         _empty())
    manifest.save(out_dir / "train_backgrounds.json")


def unique_records(sources: list[tuple[str, list[ImageRecord]]], root: Path
                   ) -> list[ImageRecord]:
    """One record per image and one box per face, from each annotation file's records.

    An image is one file, whatever it is called (``a.png``, ``./a.png``, an absolute path or
    a symlink to it). A box listed twice for one image (a duplicated line) is kept once, with
    a warning, with its per-box attributes (lists as long as the boxes). An image named again,
    in the same or another annotation file, is kept once, with a warning, when both list the
    same boxes; with other boxes it is an ``AnnotationError`` naming both files. Files that
    are byte-identical copies stay separate images, with a warning (:func:`warn_copies`).
    """
    kept: dict[Path, tuple[ImageRecord, str]] = {}
    for source, records in sources:
        for record in records:
            _drop_repeated_boxes(record, source)
            image = (root / record.file).resolve()
            if image not in kept:
                kept[image] = (record, source)
                continue
            first, first_source = kept[image]
            if sorted(map(Box.to_list, first.boxes)) != sorted(map(Box.to_list, record.boxes)):
                raise AnnotationError(
                    f"{image}: one image annotated twice with different boxes: as "
                    f"{first.file!r} in {first_source} and as {record.file!r} in {source}; "
                    "merge the two into one annotation")
            LOG.warning("%s: one image annotated twice with the same boxes (as %r in %s and as "
                        "%r in %s); kept once", image, first.file, first_source, record.file,
                        source)
    warn_copies(list(kept))
    return [record for record, _ in kept.values()]


def warn_copies(files: list[Path]) -> None:
    """Log the files whose bytes repeat another file's (kept as separate images: two equal
    frames of a video are two samples; a copied folder is not, and the warning says so)."""
    first: dict[str, Path] = {}
    copies = []
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in first:
            copies.append((path, first[digest]))
        else:
            first[digest] = path
    if copies:
        LOG.warning("%d images are byte-identical copies of another image of the set, e.g. %s "
                    "of %s; each is kept as an image of its own", len(copies), *copies[0])


def _drop_repeated_boxes(record: ImageRecord, source: str) -> None:
    """Keep the first of identical boxes of ``record`` (and of its per-box attributes)."""
    seen: set[tuple[float, ...]] = set()
    keep = []
    for index, box in enumerate(record.boxes):
        key = tuple(box.to_list())
        if key in seen:
            LOG.warning("%s: %s: box %s listed more than once; counted once", source,
                        record.file, box.to_list())
        else:
            seen.add(key)
            keep.append(index)
    if len(keep) == len(record.boxes):
        return
    for name, values in record.attributes.items():
        if isinstance(values, list) and len(values) == len(record.boxes):
            record.attributes[name] = [values[i] for i in keep]
    record.boxes = [record.boxes[i] for i in keep]


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
    for path in scene_part(scenes_root, settings.get("scene_split")):
        try:
            width, height = image_size(path, str(scenes_root))
        except ValueError as error:
            LOG.warning("skipping face-free scene: %s", error)
            continue
        records.append(ImageRecord(path.relative_to(scenes_root).as_posix(), width, height))
    if not records and settings.get("scene_split"):
        raise ValueError(f"{scenes_root}: no face-free scene in scene_split "
                         f"{settings['scene_split']}")
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


def light_group(azimuth: float, elevation: float, edges: list[float], by: str) -> str:
    """The group of a Yale B image: its angle bin (``by="angle"``), or beyond the first bin
    also the axis the light moved along most (``by="axis"``: ``azimuth 45-70 deg`` for side
    light, ``elevation 45-70 deg`` for light from above or below)."""
    label = angle_group(light_angle(azimuth, elevation), edges)
    if by == "angle" or label == angle_group(edges[0], edges):
        return label
    return f"{'azimuth' if abs(azimuth) >= abs(elevation) else 'elevation'} {label}"


def build_yale_b(settings: dict[str, Any], out_dir: Path) -> None:
    rng = np.random.default_rng(settings["seed"])
    width, height = settings["canvas_size"]
    scenes = [read_gray(p) for p in scene_part(settings["scenes"], settings.get("scene_split"))
              ] if settings.get("scenes") else []
    if settings.get("scenes") and not scenes:
        raise ValueError(f"{settings['scenes']}: no face-free scene in scene_split "
                         f"{settings.get('scene_split')}")
    records = []
    crops = [(path, light) for path, light in read_yale_b(settings["folder"])
             if light["subject"] in settings.get("subjects", [light["subject"]])]
    if not crops:
        raise ValueError(f"{settings['folder']}: no Yale B crops of subjects "
                         f"{settings.get('subjects')}")
    warn_copies([path for path, _ in crops])
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
        file = paths.image_name(index, path)
        write_image(out_dir / "test" / file, canvas)
        records.append(ImageRecord(file, width, height, [Box(x, y, face_w, face_h)],
                                   attributes={**light, "source_file": path.name,
                                               "light_angle": round(angle, 2),
                                               "group": light_group(
                                                   light["azimuth"], light["elevation"],
                                                   settings["angle_bins"],
                                                   settings.get("light_groups", "angle"))}))
    Manifest("ground_truth", out_dir / "test", records,
             meta={"source": str(settings["folder"])}).save(out_dir / "test.json")
    save_training_arrays(out_dir, _empty(), _empty())
    Manifest("ground_truth", out_dir / "test", [], meta={"note": "test-only dataset"}
             ).save(out_dir / "train_backgrounds.json")
    LOG.info("Yale B: %d test images", len(records))

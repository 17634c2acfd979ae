"""Detector registry and the detection stage that runs one detector over one manifest."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from pipeline import paths
from pipeline.boxes import Box, ImageRecord, Manifest
from pipeline.io import progress, read_gray, read_json, write_json

LOG = logging.getLogger(__name__)


class Detector(Protocol):
    """Finds faces in a grayscale uint8 image (H, W); boxes carry a score, higher = surer.

    A detector that does not compute with OpenCV's thread pool has a ``threads`` attribute
    (the timing files record it; OpenCV's thread count otherwise).
    """

    def detect(self, image: np.ndarray) -> list[Box]: ...


def _haar(settings: dict[str, Any], models: list[str]) -> Detector:
    from pipeline.detection.detectors.haar import HaarDetector, cascade_path

    if "trained_cascade" in settings:
        if len(models) != 1:
            raise ValueError("a haar detector with trained_cascade needs the trained cascade "
                             "XML (--model)")
        return HaarDetector.from_file(models[0], settings)
    return HaarDetector.from_file(cascade_path(settings["cascade"]), settings)


def _cnn(settings: dict[str, Any], models: list[str]) -> Detector:
    from pipeline.detection.detectors.cnn import CnnDetector

    if len(models) != 1:
        raise ValueError("the cnn detector needs one trained model checkpoint (--model)")
    return CnnDetector.from_settings(settings, models[0])


def _cnn_cascade(settings: dict[str, Any], models: list[str]) -> Detector:
    from pipeline.detection.detectors.cnn import CnnCascadeDetector

    wanted = 3 if "output_model" in settings else 2
    if len(models) != wanted:
        raise ValueError(f"the cnn_cascade detector needs {wanted} checkpoints: --model "
                         f"PROPOSAL VERIFIER{' OUTPUT' if wanted == 3 else ''}")
    return CnnCascadeDetector.from_settings(settings, *models)


# Detector settings that the detect stage itself applies (run_detector), not the detector.
STAGE_KEYS = {"kind", "max_pixels"}


def _reference(kind: str) -> Callable[[dict[str, Any], list[str]], Detector]:
    """The factory of a reference detector kind (pipeline.detection.detectors.references): its
    settings less :data:`STAGE_KEYS` are the class's fields; it takes no trained model."""

    def factory(settings: dict[str, Any], models: list[str]) -> Detector:
        from pipeline.detection.detectors import references

        if models:
            raise ValueError(f"the {kind} detector takes no trained model (--model)")
        require_packages([kind])
        cls = getattr(references, REFERENCE_CLASSES[kind])
        fields = {k: v for k, v in settings.items() if k not in STAGE_KEYS}
        if kind in ("yunet", "retinaface"):  # their own thread pools, pinned to OpenCV's count
            fields["threads"] = _threads()
        return cls(**fields)

    return factory


# Reference kinds -> their class in pipeline.detection.detectors.references. Detectors of these
# kinds come from other libraries (the ``references`` extra); the report lists them apart from the
# matched Haar-vs-CNN arms.
REFERENCE_CLASSES = {
    "hog": "HogDetector",
    "dnn_ssd": "SsdDetector",
    "mtcnn": "MtcnnDetector",
    "blazeface": "BlazeFaceDetector",
    "yunet": "YunetDetector",
    "centerface": "CenterFaceDetector",
    "retinaface": "RetinaFaceDetector",
    "dlib_cnn": "DlibCnnDetector",
}

@dataclass(frozen=True)
class DetectorKind:
    """One detector kind, the one place that says what it is.

    ``factory(settings, model paths)`` builds it; ``role`` is its side in the comparison
    (:data:`ROLES`); ``trainer`` is the rule that trains its models (a key of
    :data:`TRAINERS`, or None) and ``model_keys`` the settings keys that name them, in the
    order the factory takes their files (each key optional: a haar detector with ``cascade``
    instead of ``trained_cascade`` trains nothing).
    """

    factory: Callable[[dict[str, Any], list[str]], Detector]
    role: str
    trainer: str | None = None
    model_keys: tuple[str, ...] = ()


# cascade: Viola-Jones, hand-chosen Haar features; cnn: features learned here; reference:
# another library's pretrained model, reported apart from the matched arms.
ROLES = ("cascade", "cnn", "reference")

# Training rule -> the config section its models are defined in, and their file pattern.
TRAINERS: dict[str, tuple[str, Callable[[str, str], str]]] = {
    "train_haar": ("cascades", paths.trained_cascade),
    "train_cnn": ("models", paths.checkpoint),
}

# Detector kind -> what it is (config checks, rules, report and registry tests read this).
DETECTORS: dict[str, DetectorKind] = {
    "haar": DetectorKind(_haar, "cascade", "train_haar", ("trained_cascade",)),
    "cnn": DetectorKind(_cnn, "cnn", "train_cnn", ("model",)),
    "cnn_cascade": DetectorKind(_cnn_cascade, "cnn", "train_cnn",
                                ("proposal_model", "model", "output_model")),
    **{kind: DetectorKind(_reference(kind), "reference") for kind in REFERENCE_CLASSES},
}


def role(settings: dict[str, Any]) -> str:
    """The role (:data:`ROLES`) of a configured detector."""
    return DETECTORS[settings["kind"]].role


def trained_models(settings: dict[str, Any]) -> list[tuple[str, str]]:
    """(config section, name) of each model a detector needs trained, in factory order."""
    kind = DETECTORS[settings["kind"]]
    if kind.trainer is None:
        return []
    section = TRAINERS[kind.trainer][0]
    return [(section, settings[key]) for key in kind.model_keys if key in settings]


def require_packages(kinds: list[str]) -> None:
    """Raise ``ModuleNotFoundError`` naming the extra to install when any of these detector
    kinds needs a package that is not installed (call before anything runs)."""
    from pipeline.detection.detectors.references import (
        REFERENCE_INSTALL,
        REFERENCE_PACKAGES,
        missing_packages,
    )

    missing = missing_packages(kinds)
    if missing:
        lacking = sorted({k for k in kinds if REFERENCE_PACKAGES.get(k) in missing})
        raise ModuleNotFoundError(
            f"detector kinds {lacking} need {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed; install the reference "
            f"detectors (the 'references' extra): {REFERENCE_INSTALL}")


def model_names(settings: dict[str, Any]) -> list[str]:
    """The ``models:`` (CNN) entries a detector needs, in the order its factory takes them."""
    return [name for section, name in trained_models(settings) if section == "models"]


def draws(settings: dict[str, Any], seeds: list[int]) -> list[str]:
    """The training draws a detector is run under (:func:`pipeline.paths.draw`): one per
    training seed when it needs a trained model, else the one label of an untrained run."""
    return [paths.draw(seed) for seed in seeds] if trained_models(settings) else [
        paths.draw(None)]


def search_min_size(detectors: dict[str, dict[str, Any]]) -> int:
    """The smallest face every detector of ``detectors`` (a ``detectors:`` section) searches:
    the largest ``min_size``, pixels (0: none sets one). The evaluation counts smaller faces
    apart, so that every detector is scored on the faces all of them look for."""
    return max((settings.get("min_size", 0) for settings in detectors.values()), default=0)


def model_files(settings: dict[str, Any], folder: str) -> list[str]:
    """The trained files a detector needs, in the order its factory takes them: CNN
    checkpoints, or a trained cascade, in ``folder`` (one training seed's:
    :func:`pipeline.paths.models_folder`)."""
    trainer = DETECTORS[settings["kind"]].trainer
    return [TRAINERS[trainer][1](name, folder) for _, name in trained_models(settings)
            ] if trainer else []


def build_detector(settings: dict[str, Any], models: str | list[str] | None = None
                   ) -> Detector:
    """The detector ``settings`` describe (their schema defaults filled in), with its
    trained model files."""
    from pipeline.defaults import with_defaults

    if isinstance(models, str):
        models = [models]
    return DETECTORS[settings["kind"]].factory(with_defaults(settings, "detectors.*"),
                                               list(models or []))


def limit_pixels(image: np.ndarray, max_pixels: int | None) -> tuple[np.ndarray, float]:
    """``image`` (H, W) downscaled by area interpolation to at most ``max_pixels`` pixels, and
    the scale applied (1.0: unchanged, also when ``max_pixels`` is None)."""
    height, width = image.shape[:2]
    if not max_pixels or height * width <= max_pixels:
        return image, 1.0
    scale = (max_pixels / (height * width)) ** 0.5
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), size[0] / width


def run_detector(detector: Detector, source: Manifest, name: str, batch_images: int = 1,
                 max_pixels: int | None = None) -> tuple[Manifest, dict[str, float]]:
    """Detect on every image of ``source``: the detections and the seconds spent per image.

    Detectors with ``detect_many`` get ``batch_images`` images at a time (a GPU scores them
    together); each image is then charged an equal share of the batch's time. Only one batch
    of images is held in memory. Images over ``max_pixels`` are downscaled first
    (:func:`limit_pixels`), their boxes scaled back, and the scale kept in the record's
    ``detection_scale`` attribute.
    """
    records, seconds = [], {}
    batched = batch_images > 1 and hasattr(detector, "detect_many")
    size = batch_images if batched else 1
    bar = progress(total=len(source.images), desc=f"detect {name}", unit="img")
    for start_index in range(0, len(source.images), size):
        chunk = source.images[start_index:start_index + size]
        images, scales = zip(*(limit_pixels(read_gray(source.image_path(record)), max_pixels)
                               for record in chunk), strict=True)
        start = time.perf_counter()
        found = detector.detect_many(list(images)) if batched else [detector.detect(images[0])]
        share = (time.perf_counter() - start) / len(chunk)
        for record, boxes, scale in zip(chunk, found, scales, strict=True):
            seconds[record.file] = share
            if scale != 1.0:
                boxes = [Box(b.x / scale, b.y / scale, b.w / scale, b.h / scale, b.score)
                         for b in boxes]
            records.append(ImageRecord(record.file, record.width, record.height, boxes,
                                       {"detection_scale": scale} if scale != 1.0 else {}))
        bar.update(len(chunk))
    bar.close()
    result = Manifest("detections", source.root, records, meta={**source.meta, "detector": name})
    downscaled = sum(1 for r in records if r.attributes)
    LOG.info("%s: %d boxes on %d images, %.1f ms per image%s", name, result.n_boxes,
             len(records), 1000 * sum(seconds.values()) / max(len(records), 1),
             f"; {downscaled} images over {max_pixels} pixels downscaled" if downscaled else "")
    return result, seconds


def shard(manifest: Manifest, index: int, count: int) -> Manifest:
    """Images ``index``, ``index + count``, ... of ``manifest`` (interleaved, so balanced)."""
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is not in [0, {count})")
    return Manifest(manifest.kind, manifest.root, manifest.images[index::count], manifest.meta)


def detect_manifest(settings: dict[str, Any], source: Manifest, name: str,
                    model: str | list[str] | None = None
                    ) -> tuple[Manifest, dict[str, float], Detector]:
    """The detector ``settings`` describe (schema defaults filled in) run over every image of
    ``source`` as the detect stage runs it (its ``batch_images`` and ``max_pixels``): the
    detections, with the settings in their meta, the seconds per image and the detector."""
    from pipeline.defaults import with_defaults

    settings = with_defaults(settings, "detectors.*")
    detector = build_detector(settings, model)
    # only the cnn kind batches images (a settings key of its own); the others take one
    result, seconds = run_detector(detector, source, name, settings.get("batch_images", 1),
                                   settings["max_pixels"])
    result.meta["detector_settings"] = settings
    return result, seconds, detector


def detect_to_file(settings: dict[str, Any], manifest_path: str | Path, out_path: str | Path,
                   timing_path: str | Path, name: str, model: str | list[str] | None = None,
                   shard_index: int = 0, shard_count: int = 1) -> Manifest:
    """Run a detector over one shard of a manifest; write detections and per-image timing.

    Detection files hold boxes only, so they are identical between runs; wall times vary and go
    to the separate timing file ``{"seconds": {file: s}}``.
    """
    source = shard(Manifest.load(manifest_path), shard_index, shard_count)
    LOG.info("detector %s (%s) on %s, shard %d of %d: %d images", name, settings["kind"],
             manifest_path, shard_index + 1, shard_count, len(source.images))
    result, seconds, detector = detect_manifest(settings, source, name, model)
    result.save(out_path)
    write_json(timing_path, {"detector": name, "threads": getattr(detector, "threads", None)
                             or _threads(), "seconds": seconds})
    return result


def _threads() -> int:
    """OpenCV's thread count: the threads of detectors without a ``threads`` attribute."""
    return cv2.getNumThreads()


def merge_shards(source_path: str | Path, shard_paths: list[str], timing_paths: list[str],
                 out_path: str | Path, timing_out: str | Path, labels: dict[str, str]) -> None:
    """Join shard detections into one file in the source manifest's image order.

    ``labels`` (detector, dataset, variant) are stored in the merged timing file. Raises
    ``ValueError`` naming the image when an image is missing from, or repeated in, the shards.
    """
    source = Manifest.load(source_path)
    parts = [Manifest.load(p) for p in shard_paths]
    found: dict[str, ImageRecord] = {}
    seconds: dict[str, float] = {}
    for path, part, timing in zip(shard_paths, parts, timing_paths, strict=True):
        for record in part.images:
            if record.file in found:
                raise ValueError(f"{path}: image {record.file!r} is in more than one shard")
            found[record.file] = record
        seconds.update(read_json(timing)["seconds"])
    missing = [r.file for r in source.images if r.file not in found]
    if missing:
        raise ValueError(f"shards {shard_paths} lack {len(missing)} images, e.g. {missing[0]!r}")
    merged = Manifest("detections", source.root, [found[r.file] for r in source.images],
                      meta=parts[0].meta)
    merged.save(out_path)
    values = np.array([seconds[r.file] for r in source.images])
    write_json(timing_out, {
        **labels,
        "n_images": len(values),
        "ms_per_image_mean": float(values.mean() * 1000) if values.size else None,
        "ms_per_image_median": float(np.median(values) * 1000) if values.size else None,
        "threads": read_json(timing_paths[0])["threads"],
        "seconds": {r.file: seconds[r.file] for r in source.images},
    })
    LOG.info("merged %d shards: %d images, %d boxes", len(parts), len(source.images),
             merged.n_boxes)

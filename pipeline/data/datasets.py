"""Dataset registry and the embedded dataset built from images shipped inside installed packages.

A dataset builder writes, under one output folder:

- ``test.json``: a ground-truth :class:`~pipeline.boxes.Manifest` of test images (written to
  ``test/`` when composed, else pointing at the original files);
- ``train.npz``: training face crops ``faces`` (N, h, w) uint8 and face-free patches
  ``nonfaces`` (M, h, w) uint8;
- ``train_backgrounds.json``: a manifest of training scenes for negative sampling and
  hard-negative mining; boxes in it mark faces that negatives must avoid.

Real-data builders live in :mod:`pipeline.data.real_datasets`.

The embedded dataset uses scikit-image's ``lfw_subset`` (100 real 25x25 faces, 100 face-free
patches) and face-free sample scenes of scikit-image and scikit-learn. Test and training faces
are disjoint, and so are test and training scenes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pipeline.boxes import ImageRecord, Manifest
from pipeline.data.compose import paste_face, place_boxes, random_crop, save_training_arrays
from pipeline.io import progress, staged_outputs, to_gray_uint8, write_image

LOG = logging.getLogger(__name__)


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _sklearn(file: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(file)

    return load


def _motorcycle_left() -> np.ndarray:
    import skimage.data

    return skimage.data.stereo_motorcycle()[0]


# Face-free sample scenes shipped inside scikit-image and scikit-learn (RGB or gray).
BACKGROUNDS: dict[str, Callable[[], np.ndarray]] = {
    **{n: _skimage(n) for n in ["brick", "cell", "chelsea", "coffee", "coins", "grass", "gravel",
                                "hubble_deep_field", "moon", "page", "rocket", "text"]},
    "clock_motion": _skimage("clock"),
    "motorcycle_left": _motorcycle_left,
    "china": _sklearn("china.jpg"),
    "flower": _sklearn("flower.jpg"),
}


def load_background(name: str) -> np.ndarray:
    """A face-free scene as grayscale uint8, shape (H, W)."""
    if name not in BACKGROUNDS:
        raise KeyError(f"unknown background '{name}'; known: {', '.join(sorted(BACKGROUNDS))}")
    image = BACKGROUNDS[name]()
    if image.ndim == 3:  # packages return RGB; OpenCV's gray conversion expects BGR order
        image = image[:, :, ::-1]
    return to_gray_uint8(np.ascontiguousarray(image))


def lfw_patches() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's LFW subset: (faces, nonfaces), each (100, 25, 25) uint8."""
    import skimage.data

    patches = (np.clip(skimage.data.lfw_subset(), 0, 1) * 255).round().astype(np.uint8)
    return patches[:100], patches[100:]


def build_embedded(settings: dict[str, Any], out_dir: str | Path) -> None:
    """Compose the embedded dataset's test scenes and training set under ``out_dir``."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(settings["seed"])
    faces, nonfaces = lfw_patches()
    order = rng.permutation(len(faces))
    test_ids, train_ids = order[: settings["n_test_faces"]], order[settings["n_test_faces"] :]
    LOG.info("embedded: %d test faces, %d training faces (disjoint)", len(test_ids),
             len(train_ids))

    width, height = settings["scene_size"]
    backgrounds = {name: load_background(name) for name in settings["test_backgrounds"]}
    face_queue: list[int] = []
    records = []
    for index in progress(range(settings["n_scenes"]), desc="compose test scenes", unit="scene"):
        name = settings["test_backgrounds"][index % len(settings["test_backgrounds"])]
        scene = random_crop(backgrounds[name], width, height, rng)
        empty = rng.random() < settings["empty_scene_fraction"]
        count = 0 if empty else int(rng.integers(settings["faces_per_scene"][0],
                                                 settings["faces_per_scene"][1] + 1))
        boxes = place_boxes(count, tuple(settings["face_size"]), width, height, rng)
        face_ids = []
        for box in boxes:
            if not face_queue:
                face_queue = list(rng.permutation(test_ids))
            face_id = int(face_queue.pop())
            face_ids.append(face_id)
            paste_face(scene, faces[face_id], box)
        file = f"scene_{index:04d}.png"
        write_image(out_dir / "test" / file, scene)
        records.append(ImageRecord(file, width, height, boxes,
                                   attributes={"background": name, "lfw_face_ids": face_ids}))
    Manifest("ground_truth", out_dir / "test", records,
             meta={"dataset": "embedded", "source": "scikit-image lfw_subset + sample scenes"}
             ).save(out_dir / "test.json")

    _save_training_set(out_dir, faces[train_ids], nonfaces, settings["train_backgrounds"])
    LOG.info("embedded: %d test scenes with %d faces written to %s", len(records),
             sum(len(r.boxes) for r in records), out_dir)


def _save_training_set(out_dir: Path, faces: np.ndarray, nonfaces: np.ndarray,
                       background_names: list[str]) -> None:
    save_training_arrays(out_dir, faces, nonfaces)
    records = []
    for name in background_names:
        image = load_background(name)
        write_image(out_dir / "train_backgrounds" / f"{name}.png", image)
        records.append(ImageRecord(f"{name}.png", image.shape[1], image.shape[0], []))
    Manifest("ground_truth", out_dir / "train_backgrounds", records,
             meta={"purpose": "face-free scenes for negatives"}
             ).save(out_dir / "train_backgrounds.json")


def _real(name: str) -> Callable[..., Any]:
    """A function of :mod:`pipeline.data.real_datasets` (imported when called)."""
    def call(*args: Any) -> Any:
        from pipeline.data import real_datasets

        return getattr(real_datasets, name)(*args)

    return call


def folder_inputs(*keys: str) -> Callable[[dict[str, Any]], list[Path]]:
    """The image files under the folders that ``settings[key]`` name, for each key present."""
    def inputs(settings: dict[str, Any]) -> list[Path]:
        from pipeline.data.formats import image_files

        return [path for key in keys if settings.get(key) for path in image_files(settings[key])]

    return inputs


class DatasetKind(NamedTuple):
    """A dataset kind: ``build(settings, out_dir)`` writes test.json, train.npz and
    train_backgrounds.json (see the module docstring; a set used only for testing or only for
    training writes the other part empty); ``inputs(settings)`` lists every file the build
    reads, so that the workflow rebuilds the set when one of them changes."""

    build: Callable[[dict[str, Any], Path], None]
    inputs: Callable[[dict[str, Any]], list[Path]]


DATASETS: dict[str, DatasetKind] = {
    "embedded": DatasetKind(build_embedded, lambda settings: []),  # installed packages only
    "annotated": DatasetKind(_real("build_annotated"), _real("annotated_inputs")),
    "face_folders": DatasetKind(_real("build_face_folders"),
                                folder_inputs("faces", "scenes")),
    "yale_b": DatasetKind(_real("build_yale_b"), folder_inputs("folder", "scenes")),
}


def dataset_inputs(settings: dict[str, Any]) -> list[str]:
    """The files a dataset's build reads (:class:`DatasetKind`), as strings, for Snakemake."""
    return [str(path) for path in DATASETS[settings["kind"]].inputs(settings)]


def build_dataset(settings: dict[str, Any], out_dir: str | Path) -> None:
    """Build with the registered builder; ``test/`` and ``train_backgrounds/`` always exist
    afterwards (empty for sets whose images stay where they are). The outputs are written
    to a staging folder and moved into ``out_dir`` only when the build succeeds.

    A test set must hold faces, unless it is marked ``negatives_only`` (then it must hold
    none, and the mark goes into ``test.json`` for the evaluation); ``ValueError`` otherwise.
    """
    from pipeline.data.roles import is_evaluated, keep_part
    from pipeline.defaults import with_defaults

    settings = with_defaults(settings, "datasets.*")
    with staged_outputs(out_dir) as staging:
        DATASETS[settings["kind"]].build(settings, staging)
        for folder in ("test", "train_backgrounds"):
            (staging / folder).mkdir(parents=True, exist_ok=True)
        if is_evaluated(settings) and settings.get("split"):
            test = Manifest.load(staging / "test.json")
            part = keep_part(test, settings["split"], settings.get("resample_unit", "image"))
            LOG.info("split part %s: %d of %d test images", settings["split"]["part"],
                     len(part.images), len(test.images))
            part.save(staging / "test.json")
        if is_evaluated(settings):
            # a kind without the key (yale_b) always holds faces
            mark_negatives_only(staging / "test.json", settings.get("negatives_only", False),
                                Path(out_dir) / "test.json")


def mark_negatives_only(test_json: Path, negatives_only: bool, name: Path | None = None
                        ) -> None:
    """Check a test manifest's face count against ``negatives_only`` and record the mark;
    errors name the manifest as ``name`` (default ``test_json``)."""
    manifest = Manifest.load(test_json)
    name = name or test_json
    if negatives_only and manifest.n_boxes:
        raise ValueError(f"{name}: the dataset is marked negatives_only but holds "
                         f"{manifest.n_boxes} faces")
    if not negatives_only and not manifest.n_boxes:
        raise ValueError(f"{name}: the test set has no faces ({len(manifest.images)} "
                         "images), so AP and detection rates are undefined; mark a face-free "
                         "test set negatives_only: true to report false positives per image, "
                         "or evaluate: false")
    if negatives_only:
        manifest.meta["negatives_only"] = True
        manifest.save(test_json)

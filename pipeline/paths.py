"""Where the workflow keeps trained models, test-set variants and detections: the patterns
that the Snakefile's rules write and that the detectors' inputs, the figures and the
benchmarks read."""

from __future__ import annotations

import re
from pathlib import PurePath

MODELS = "results/models"
# The label of a detector run that trains nothing (a bundled cascade, a pretrained reference):
# one run stands for every training seed.
UNTRAINED = "fixed"


def draw(seed: int | None) -> str:
    """The label of one training draw in output paths: ``seed3``, or ``fixed`` (None) for a
    detector that trains nothing."""
    return UNTRAINED if seed is None else f"seed{seed}"


def seed_of(label: str) -> int | None:
    """The training seed of a draw label (:func:`draw`'s inverse)."""
    if label == UNTRAINED:
        return None
    if not re.fullmatch(r"seed\d+", label):
        raise ValueError(f"{label!r} is not a draw label (seed<N> or {UNTRAINED})")
    return int(label[4:])


def training_faces(dataset: str) -> str:
    """A built dataset's training faces and face-free patches (``build_dataset``): npz;
    ``dataset`` may be the rules' ``"{dataset}"`` wildcard."""
    return f"results/data/{dataset}/train.npz"


def training_scenes(dataset: str) -> str:
    """A built dataset's face-free training scenes (``build_dataset``): manifest JSON."""
    return f"results/data/{dataset}/train_backgrounds.json"


def models_folder(seed: int | str) -> str:
    """Where the models trained with ``seed`` are kept (one folder per training seed); ``seed``
    may be the rules' ``"{seed}"`` wildcard."""
    return f"{MODELS}/{draw(seed)}"


def checkpoint(name: str, folder: str) -> str:
    """A trained CNN (``models:`` entry): PyTorch checkpoint."""
    return f"{folder}/{name}.pt"


def trained_cascade(name: str, folder: str) -> str:
    """A trained Viola-Jones cascade (``cascades:`` entry): OpenCV XML."""
    return f"{folder}/{name}.xml"


def cascade_history(name: str, folder: str) -> str:
    """The per-stage record of a trained cascade: JSON."""
    return f"{folder}/{name}.stages.json"


def variant_manifest(dataset: str, variant: str) -> str:
    """A test set's variant (``make_variant``): its manifest JSON of images and boxes."""
    return f"results/variants/{dataset}/{variant}/manifest.json"


def detections(detector: str, draw: str, dataset: str, variant: str) -> str:
    """One detector draw's merged detections on one variant (``merge_detections``): manifest
    JSON; ``draw`` is the training seed's label (:func:`draw`)."""
    return f"results/detections/{detector}/{draw}/{dataset}/{variant}.json"


def tuning(detector: str, draw: str) -> str:
    """One detector draw's operating point chosen on tune sets (``tune_operating_point``):
    every candidate's scores and the choice, JSON."""
    return f"results/tuning/{detector}/{draw}.json"


def box_calibration(detector: str, draw: str, dataset: str) -> str:
    """One detector draw's box calibration fitted on ``dataset`` (``calibrate``): every
    candidate's AP there and the choice, JSON."""
    return f"results/tuning/box_calibration/{detector}/{draw}/{dataset}.json"


def image_name(index: int, source: str | PurePath) -> str:
    """The file name of the ``index``-th image of a set written under ``results/``, e.g.
    ``00007_photo.png`` for ``../elsewhere/photo.jpg``.

    The position keeps names unique (``a.png`` and ``a.jpg`` stay two files); of the source
    name only its stem, in letters, digits, ``_``, ``+`` and ``-``, is kept for the reader. No
    folder, absolute path or ``..`` taken from an input ever reaches an output path.
    """
    stem = PurePath(str(source)).stem
    stem = re.sub(r"^\d{5}_", "", stem)  # an image named so already (a Yale B canvas)
    stem = re.sub(r"[^A-Za-z0-9_+-]+", "_", stem).strip("_")[:60]
    return f"{index:05d}_{stem or 'image'}.png"

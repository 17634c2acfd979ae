import hashlib

import numpy as np
import pytest

from pipeline.boxes import Manifest, iou_matrix
from pipeline.data.compose import feathered_mask
from pipeline.data.datasets import BACKGROUNDS, build_dataset, lfw_patches, load_background
from pipeline.io import read_gray


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_embedded_dataset_layout_and_boxes(tiny_dataset, tiny_config):
    settings = tiny_config["datasets"]["embedded"]
    truth = Manifest.load(tiny_dataset / "test.json")
    assert len(truth.images) == settings["n_scenes"]
    low, high = settings["face_size"]
    for record in truth.images:
        image = read_gray(truth.image_path(record))
        assert image.shape == (record.height, record.width) == tuple(settings["scene_size"][::-1])
        for box in record.boxes:
            assert box.x >= 0 and box.x + box.w <= record.width
            assert box.y >= 0 and box.y + box.h <= record.height
            assert low <= box.w == box.h <= high
        if len(record.boxes) > 1:  # faces never overlap
            overlaps = iou_matrix(record.boxes, record.boxes)
            assert np.allclose(overlaps, np.eye(len(record.boxes)))


def test_train_and_test_faces_are_disjoint(tiny_dataset, tiny_config):
    truth = Manifest.load(tiny_dataset / "test.json")
    test_ids = {i for r in truth.images for i in r.attributes["lfw_face_ids"]}
    faces, _ = lfw_patches()
    with np.load(tiny_dataset / "train.npz") as data:
        train_faces = data["faces"]
    assert len(train_faces) == 100 - tiny_config["datasets"]["embedded"]["n_test_faces"]
    train_keys = {f.tobytes() for f in train_faces}
    assert not any(faces[i].tobytes() in train_keys for i in test_ids)
    backgrounds = Manifest.load(tiny_dataset / "train_backgrounds.json")
    used = {r.attributes["background"] for r in truth.images}
    assert used.isdisjoint({r.file.removesuffix(".png") for r in backgrounds.images})


def test_scenes_vary_and_some_are_empty(tiny_config, tmp_path):
    settings = dict(tiny_config["datasets"]["embedded"], n_scenes=30)
    build_dataset(settings, tmp_path)
    counts = [len(r.boxes) for r in Manifest.load(tmp_path / "test.json").images]
    assert 0 in counts and max(counts) >= 3
    sizes = [b.w for r in Manifest.load(tmp_path / "test.json").images for b in r.boxes]
    assert max(sizes) - min(sizes) > 30


def test_build_is_deterministic(tiny_config, tmp_path):
    settings = tiny_config["datasets"]["embedded"]
    build_dataset(settings, tmp_path / "a")
    build_dataset(settings, tmp_path / "b")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    build_dataset(dict(settings, seed=settings["seed"] + 1), tmp_path / "c")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_pasted_face_is_in_the_image(tiny_dataset):
    """The face pixels inside a box correlate with the LFW face they were pasted from."""
    import cv2

    truth = Manifest.load(tiny_dataset / "test.json")
    faces, _ = lfw_patches()
    record = next(r for r in truth.images if r.boxes)
    image = read_gray(truth.image_path(record))
    box, face_id = record.boxes[0], record.attributes["lfw_face_ids"][0]
    crop = image[int(box.y):int(box.y + box.h), int(box.x):int(box.x + box.w)]
    small = cv2.resize(crop, (25, 25), interpolation=cv2.INTER_AREA).astype(float)
    assert np.corrcoef(small.ravel(), faces[face_id].astype(float).ravel())[0, 1] > 0.9


def test_every_background_loads_offline():
    for name in BACKGROUNDS:
        image = load_background(name)
        assert image.dtype == np.uint8 and image.ndim == 2 and min(image.shape) >= 128
    with pytest.raises(KeyError, match="unknown background"):
        load_background("astronaut")


def test_feathered_mask_shape_and_range():
    mask = feathered_mask(20, 3)
    assert mask.shape == (20, 20)
    assert mask[10, 10] == 1.0 and 0 < mask[0, 0] < 0.5
    assert np.allclose(mask, mask.T) and np.allclose(mask, mask[::-1, ::-1])

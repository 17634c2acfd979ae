import numpy as np
import pytest

from pipeline.boxes import Box, Manifest
from pipeline.data.variants import VARIANTS, make_variant, shadow_mask, variant_instances
from pipeline.io import read_gray


@pytest.fixture(scope="module")
def variants(tiny_dataset, tiny_config, tmp_path_factory):
    """The tiny dataset in each configured variant."""
    truth = Manifest.load(tiny_dataset / "test.json")
    out = tmp_path_factory.mktemp("variants")
    return truth, {name: make_variant(truth, settings, out / name, name)
                   for name, settings in variant_instances(tiny_config).items()}


def images(manifest):
    return [read_gray(manifest.image_path(r)) for r in manifest.images]


def box_region(record, margin=1):
    mask = np.zeros((record.height, record.width), bool)
    for b in record.boxes:
        mask[max(int(b.y) - margin, 0):int(b.y + b.h) + margin,
             max(int(b.x) - margin, 0):int(b.x + b.w) + margin] = True
    return mask


def test_variants_keep_the_boxes(variants):
    truth, made = variants
    for manifest in made.values():
        assert [r.boxes for r in manifest.images] == [r.boxes for r in truth.images]


def test_original_is_unchanged(variants):
    truth, made = variants
    for a, b in zip(images(truth), images(made["original"]), strict=True):
        assert np.array_equal(a, b)


def test_shadow_changes_only_the_faces_and_darkens_them(variants):
    truth, made = variants
    darker = 0
    for record, a, b in zip(truth.images, images(truth), images(made["shadow"]), strict=True):
        near_faces = box_region(record)
        assert np.array_equal(a[~near_faces], b[~near_faces])
        assert np.all(b.astype(int) <= a.astype(int))  # a shadow only removes light
        if record.boxes:
            darker += int(b[near_faces].mean() < a[near_faces].mean() - 5)
    assert darker == sum(1 for r in truth.images if r.boxes)


def test_shadow_covers_part_of_each_face_not_all():
    rng = np.random.default_rng(0)
    box = Box(20, 20, 60, 60)
    shaded, lit = [], []
    for _ in range(40):
        mask = shadow_mask((100, 100), [box], softness=0.08, offset=0.2, rng=rng)
        inside = mask[26:74, 26:74]  # away from the fading rim
        shaded.append((inside > 0.9).mean())
        lit.append((inside < 0.1).mean())
    assert min(shaded) > 0.02 and min(lit) > 0.02
    assert 0.25 < np.mean(shaded) < 0.75 and 0.25 < np.mean(lit) < 0.75


def test_sweep_strength_zero_is_original_and_dose_is_monotone(variants):
    truth, made = variants
    assert all(np.array_equal(a, b) for a, b in
               zip(images(truth), images(made["shadow_sweep_0.00"]), strict=True))
    light = [np.mean([i.mean() for i in images(made[n])])
             for n in ("shadow_sweep_0.00", "shadow_sweep_0.50")]
    assert light[1] < light[0]


def test_cartoon_flattens_shading(variants):
    """Fewer grey levels and near-zero gradients away from the outlines."""
    truth, made = variants
    import cv2

    settings = made["cartoon"].meta["variant_settings"]
    for a, b in zip(images(truth), images(made["cartoon"]), strict=True):
        assert len(np.unique(b)) <= settings["levels"] + 1  # levels plus the outline grey
        flat_a = np.abs(cv2.Laplacian(a, cv2.CV_32F)) < 1
        flat_b = np.abs(cv2.Laplacian(b, cv2.CV_32F)) < 1
        assert flat_b.mean() > flat_a.mean()


def test_registry_lists_the_documented_variants():
    assert set(VARIANTS) == {"original", "shadow", "cartoon"}


def test_variant_instances_include_the_sweep(tiny_config):
    instances = variant_instances(tiny_config)
    assert instances["shadow_sweep_0.50"] == dict(tiny_config["variants"]["shadow"],
                                                  strength=0.5)
    assert {"original", "shadow", "cartoon"} <= set(instances)

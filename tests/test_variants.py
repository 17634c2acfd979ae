import numpy as np
import pytest

from pipeline.boxes import Box, Manifest
from pipeline.data.shadows import shadow_mask
from pipeline.data.stylise import face_scale, quantise, stylise
from pipeline.data.variants import VARIANTS, make_variant, variant_instances
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


def reach_region(record, reach):
    """Pixels within ``reach`` face sizes of any face centre."""
    ys, xs = np.mgrid[0:record.height, 0:record.width] + 0.5
    near = np.zeros((record.height, record.width), bool)
    for b in record.boxes:
        size = max(b.w, b.h)
        near |= np.hypot(xs - b.x - b.w / 2, ys - b.y - b.h / 2) <= reach * size + 1
    return near


@pytest.mark.parametrize("variant", ["shadow", "shadow_occluder"])
def test_shadow_darkens_the_faces_and_stops_within_its_reach(variants, variant):
    truth, made = variants
    settings = made[variant].meta["variant_settings"]
    darker = 0
    for record, a, b in zip(truth.images, images(truth), images(made[variant]), strict=True):
        near = reach_region(record, settings["reach"])
        assert np.array_equal(a[~near], b[~near])
        assert np.all(b.astype(int) <= a.astype(int))  # a shadow only removes light
        if record.boxes:
            faces = box_region(record, margin=0)
            darker += int(b[faces].mean() < a[faces].mean() - 3)
    assert darker >= 0.8 * sum(1 for r in truth.images if r.boxes)


@pytest.mark.parametrize(("family", "softness"), [("edge", 0.08), ("occluder", 0.01)])
def test_shadow_covers_part_of_each_face_and_continues_past_the_box(family, softness):
    """Both families shade part of the face, leave part lit, and a cast shadow does not stop
    at the face box: shadow lies outside it too."""
    rng = np.random.default_rng(0)
    box = Box(70, 70, 60, 60)
    shaded, lit, outside = [], [], []
    ring = np.ones((200, 200), bool)
    ring[64:136, 64:136] = False  # more than 6 px outside the box
    for _ in range(40):
        mask = shadow_mask((200, 200), [box], softness, 0.2, rng, family=family)
        inside = mask[70:130, 70:130]
        shaded.append((inside > 0.9).mean())
        lit.append((inside < 0.1).mean())
        outside.append((mask[ring] > 0.5).mean())
    assert np.mean([s > 0.02 for s in shaded]) > 0.8 and np.mean([x > 0.02 for x in lit]) > 0.8
    assert 0.1 < np.mean(shaded) < 0.75 and 0.25 < np.mean(lit) < 0.9
    assert np.mean([o > 0.01 for o in outside]) > 0.8


def test_soft_shadow_leaves_no_edge_at_the_box_border():
    """The old shadow stopped at the box (a box-shaped edge); across the border the mask now
    changes no more than the shadow's own soft ramp does over 2 pixels."""
    rng = np.random.default_rng(1)
    box = Box(70, 70, 60, 60)
    ramp = 2 / (4 * 0.08 * 60)  # the logistic's steepest change over 2 px
    for _ in range(40):
        mask = shadow_mask((200, 200), [box], 0.08, 0.2, rng, family="edge")
        across = [np.abs(mask[70:130, 69] - mask[70:130, 71]),
                  np.abs(mask[70:130, 129] - mask[70:130, 131]),
                  np.abs(mask[69, 70:130] - mask[71, 70:130]),
                  np.abs(mask[129, 70:130] - mask[131, 70:130])]
        assert max(float(a.max()) for a in across) <= ramp + 1e-4


def test_occluder_edge_is_hard_and_edge_family_is_soft():
    """Share of the face in the half-shadow (mask between 0.1 and 0.9): small for the hard
    occluder rim, larger for the soft straight edge."""
    rng = np.random.default_rng(2)
    box = Box(70, 70, 60, 60)

    def penumbra(family, softness):
        masks = [shadow_mask((200, 200), [box], softness, 0.2, rng, family=family)
                 [70:130, 70:130] for _ in range(30)]
        return np.mean([((m > 0.1) & (m < 0.9)).mean() for m in masks])
    # the rim's 0.1-0.9 band is about 2.6 px wide at softness 0.01 of a 60 px face, the soft
    # edge's about 21 px
    assert penumbra("occluder", 0.01) < 0.08 < 0.25 < penumbra("edge", 0.08)


def test_unknown_shadow_family_is_refused():
    with pytest.raises(ValueError, match="shadow family 'blob'"):
        shadow_mask((10, 10), [], 0.1, 0.1, np.random.default_rng(0), family="blob")


def test_sweep_strength_zero_is_original_and_dose_is_monotone(variants):
    truth, made = variants
    assert all(np.array_equal(a, b) for a, b in
               zip(images(truth), images(made["shadow_sweep_0.00"]), strict=True))
    light = [np.mean([i.mean() for i in images(made[n])])
             for n in ("shadow_sweep_0.00", "shadow_sweep_0.50")]
    assert light[1] < light[0]


@pytest.mark.parametrize("variant", ["cartoon", "cartoon_lab"])
def test_cartoon_flattens_shading(variants, variant):
    """Fewer grey levels and more flat area than the photo."""
    truth, made = variants
    import cv2

    settings = made[variant].meta["variant_settings"]
    outline = int(settings["style"] == "posterise")
    for a, b in zip(images(truth), images(made[variant]), strict=True):
        assert len(np.unique(b)) <= settings["levels"] + outline  # levels (+ outline grey)
        flat_a = np.abs(cv2.Laplacian(a, cv2.CV_32F)) < 1
        flat_b = np.abs(cv2.Laplacian(b, cv2.CV_32F)) < 1
        assert flat_b.mean() > flat_a.mean()


def test_lab_levels_are_even_in_lightness_not_in_grey():
    """A grey ramp through the lab style gives ``levels`` greys whose CIELAB L* (OpenCV's
    8-bit L, L* x 255/100) are the quantisation steps' middles: even in L*, uneven in grey."""
    import cv2

    ramp = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    settings = {"style": "lab", "levels": 4, "smoothing_passes": 1, "flatten": 0.01,
                "reference_face": 64}
    greys = np.unique(stylise(ramp, [], settings))
    assert len(greys) == 4
    lightness = cv2.cvtColor(cv2.cvtColor(greys.reshape(1, -1), cv2.COLOR_GRAY2BGR),
                             cv2.COLOR_BGR2Lab)[0, :, 0].astype(float)
    assert np.allclose(lightness, quantise(np.array([0.0, 64, 128, 192]), 4), atol=2)
    steps = np.diff(greys.astype(float))
    assert steps.max() - steps.min() > 10  # grey steps are not even


def test_cartoon_sizes_scale_with_the_face():
    """Enlarging an image and its box 3x leaves the outlined share of the face about the same,
    where fixed pixel sizes (reference_face at the face's own size) thin the outlines ~3x."""
    import cv2

    from pipeline.data.datasets import lfw_patches

    small = cv2.resize(lfw_patches()[0][0], (48, 48), interpolation=cv2.INTER_CUBIC)
    large = cv2.resize(small, (144, 144), interpolation=cv2.INTER_CUBIC)
    settings = {"style": "posterise", "levels": 6, "smoothing_passes": 2, "outline_low": 40,
                "outline_high": 100, "outline_value": 0}

    def outlined(image, side, reference):
        out = stylise(image, [Box(0, 0, side, side)], dict(settings, reference_face=reference))
        return (out == 0).mean()
    base = outlined(small, 48, 48)
    assert face_scale([Box(0, 0, 144, 144)], 48) == 3
    assert 0.5 < outlined(large, 144, 48) / base < 2.0        # sized to the face
    assert outlined(large, 144, 144) / base < 0.6              # fixed pixel sizes


def test_registry_lists_the_documented_variants():
    assert set(VARIANTS) == {"original", "shadow", "cartoon"}


def test_variant_instances_include_the_sweep(tiny_config):
    instances = variant_instances(tiny_config)
    assert instances["shadow_sweep_0.50"] == dict(tiny_config["variants"]["shadow"],
                                                  strength=0.5)
    assert {"original", "shadow", "cartoon"} <= set(instances)

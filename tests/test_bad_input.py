"""Bad input and faults: each case fails loudly, or is counted and reported, never silently
wrong (issue 12's cases, one test or more each)."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.boxes import Box, ImageRecord, Manifest
from pipeline.config import ConfigError, load_config, resolve_data_paths, validate_config
from pipeline.io import atomic_open, write_image, write_json

REPO = Path(__file__).resolve().parents[1]


def strict_json(path: Path) -> object:
    """Parse as strict JSON: NaN and Infinity are not JSON."""
    def refuse(token: str) -> None:
        raise ValueError(f"{path}: {token} is not strict JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


# 1. Silently wrong metrics ------------------------------------------------------------------

def face_free_settings(default_config: dict, **extra: object) -> dict:
    return dict(default_config["datasets"]["embedded"], n_scenes=3, empty_scene_fraction=1.0,
                **extra)


def test_test_set_without_faces_is_an_error(default_config, tmp_path):
    from pipeline.data.datasets import build_dataset

    with pytest.raises(ValueError, match=r"test.json: the test set has no faces.*negatives_only"):
        build_dataset(face_free_settings(default_config), tmp_path / "empty")


def test_negatives_only_set_reports_false_positives_per_image(default_config, tmp_path):
    from pipeline.data.datasets import build_dataset
    from pipeline.evaluation.metrics import evaluate
    from pipeline.evaluation.statistics import analyse

    build_dataset(face_free_settings(default_config, negatives_only=True), tmp_path / "neg")
    truth = Manifest.load(tmp_path / "neg/test.json")
    assert truth.meta["negatives_only"] and truth.n_boxes == 0
    detections = {
        "a": [[Box(0, 0, 30, 30, 0.9), Box(50, 50, 30, 30, 0.5)], [], [Box(9, 9, 30, 30, 0.2)]],
        "b": [[], [], []],
    }
    runs = []
    for name, boxes in detections.items():
        found = Manifest("detections", truth.root, [
            ImageRecord(r.file, r.width, r.height, b)
            for r, b in zip(truth.images, boxes, strict=True)])
        metrics = evaluate(truth, found, 0.5, [0, 10])
        runs.append({"detector": name, "dataset": "neg", "variant": "original", **metrics})
        write_json(tmp_path / f"{name}.json", runs[-1])
        stored = strict_json(tmp_path / f"{name}.json")
        assert stored["average_precision"] is None
        assert stored["detection_rate_at_fp"] == {"0": None, "10": None}
    assert runs[0]["false_positives_per_image"] == pytest.approx(3 / 3)
    assert runs[1]["false_positives_per_image"] == 0.0
    result = analyse(runs, {"bootstrap_samples": 200, "confidence": 0.95, "seed": 0,
                            "fp_for_summary": 10})
    by_detector = {r["detector"]: r for r in result["runs"]}
    assert by_detector["a"]["false_positives_per_image"]["estimate"] == pytest.approx(1.0)
    assert by_detector["a"]["average_precision"] is None
    (test,) = result["comparisons"]
    assert test["false_positives_per_image"]["estimate"] == pytest.approx(1.0)
    write_json(tmp_path / "statistics.json", result)
    strict_json(tmp_path / "statistics.json")


def test_nan_is_written_as_null(tmp_path):
    write_json(tmp_path / "x.json", {"ap": float("nan"), "inf": [float("inf"), 1.5]})
    assert strict_json(tmp_path / "x.json") == {"ap": None, "inf": [None, 1.5]}


def test_report_shows_undefined_not_nan():
    from pipeline.report.numbers import ci as _ci
    from pipeline.report.numbers import fmt as _fmt

    assert _fmt(None) == _fmt(float("nan")) == "undefined"
    assert _ci({"estimate": None, "low": None, "high": None}) == "undefined"
    assert _ci({"estimate": 0.5, "low": None, "high": None}) == "0.500 [undefined, undefined]"


def test_faces_below_the_smallest_search_size_are_counted_and_can_be_excluded():
    from pipeline.evaluation.metrics import evaluate

    small, large = Box(0, 0, 12, 12), Box(40, 0, 40, 40)
    truth = Manifest("ground_truth", ".", [ImageRecord("a.png", 100, 100, [small, large])])
    found = Manifest("detections", ".", [ImageRecord("a.png", 100, 100, [
        Box(40, 0, 40, 40, 0.9), Box(0, 0, 12, 12, 0.8), Box(60, 60, 30, 30, 0.1)])])
    scored = evaluate(truth, found, 0.5, [0, 1], search_min_size=24)
    assert scored["n_faces"] == 2 and scored["n_faces_below_search_size"] == 1
    assert scored["n_faces_excluded"] == 0
    excluded = evaluate(truth, found, 0.5, [0, 1], min_face_size=24, search_min_size=24)
    assert excluded["n_faces"] == 1 and excluded["n_faces_excluded"] == 1
    # the detection of the small face is dropped: neither a hit nor a false positive
    assert excluded["n_detections"] == 2
    assert excluded["per_image"][0]["hits"] == [1, 0]
    assert excluded["average_precision"] == pytest.approx(1.0)
    assert excluded["detection_rate_at_fp"] == {"0": 1.0, "1": 1.0}
    with pytest.raises(ValueError, match="all smaller than evaluation.min_face_size"):
        evaluate(truth, found, 0.5, [0], min_face_size=100)


# 2. Memory grows with image size -------------------------------------------------------------

@pytest.mark.parametrize("box_regression", [False, True])
@pytest.mark.parametrize("architecture", ["lenet5", "proposal", "vgg", "googlenet"])
def test_tiled_scoring_equals_one_pass_and_bounds_each_pass(architecture, box_regression):
    from pipeline.models.cnn import build_model
    from pipeline.models.cnn_scoring import score_level

    window = 16 if architecture == "proposal" else 32
    torch.manual_seed(0)
    model = build_model(architecture, window, box_regression).eval()
    levels = np.random.default_rng(0).integers(0, 256, (2, 150, 203), dtype=np.uint8)
    with torch.no_grad():
        outputs = model(torch.from_numpy(levels).float()[:, None])
    passes: list[tuple[int, ...]] = []
    hook = model.register_forward_pre_hook(lambda _m, args: passes.append(args[0].shape))
    tiled, offsets = score_level(model, levels, tile_size=64)
    hook.remove()
    whole = torch.sigmoid(outputs[:, 0]).numpy()
    assert tiled.shape == whole.shape
    np.testing.assert_allclose(tiled, whole, atol=1e-6)
    if box_regression:
        assert outputs.shape[1] == 5 and offsets.shape == (2, 4, *whole.shape[1:])
        np.testing.assert_allclose(offsets, outputs[:, 1:].numpy(), atol=1e-5)
    else:
        assert outputs.shape[1] == 1 and offsets is None
    assert len(passes) > 1 and max(max(shape[-2:]) for shape in passes) <= 64


# 3. Unreadable outputs -------------------------------------------------------------------------

@pytest.mark.parametrize(("umask", "file_mode", "folder_mode"),
                         [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_outputs_get_the_permissions_open_would_give(tmp_path, umask, file_mode, folder_mode):
    from pipeline.io import atomic_folder

    old = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_open(tmp_path / "b.bin", "wb") as handle:
            handle.write(b"1")
        write_image(tmp_path / "c.png", np.zeros((4, 4), np.uint8))
        with atomic_folder(tmp_path / "images") as folder:
            write_image(folder / "d.png", np.zeros((4, 4), np.uint8))
        with open(tmp_path / "plain.txt", "w") as handle:
            handle.write("reference")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "plain.txt") == file_mode
    for name in ("a.json", "b.bin", "c.png", "images/d.png"):
        assert mode(tmp_path / name) == file_mode, name
    assert mode(tmp_path / "images") == folder_mode


# 5. Late errors --------------------------------------------------------------------------------

def test_integers_must_be_integers(default_config):
    config = json.loads(json.dumps(default_config))
    config["datasets"]["embedded"]["n_scenes"] = 6.0
    with pytest.raises(ConfigError, match=r"datasets.embedded.n_scenes: 6.0 is not of type "
                                          "'integer'"):
        validate_config(config)


def test_a_missing_cascade_file_stops_before_anything_runs(default_config, tmp_path):
    config = json.loads(json.dumps(default_config))
    config["detectors"]["haar"]["cascade"] = str(tmp_path / "nothere.xml")
    with pytest.raises(ConfigError, match=r"detectors.haar.cascade: .*nothere.xml is not a "
                                          "file"):
        resolve_data_paths(config)


def truncated_jpeg(path: Path) -> None:
    import cv2

    image = np.random.default_rng(0).integers(0, 256, (60, 80), dtype=np.uint8)
    data = cv2.imencode(".jpg", image)[1].tobytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_image_in_an_image_list_stops_the_build(tmp_path):
    from pipeline.data.datasets import build_dataset

    write_image(tmp_path / "face.png", np.full((60, 80), 128, np.uint8))
    truncated_jpeg(tmp_path / "broken.jpg")
    (tmp_path / "boxes.txt").write_text("face.png 10 10 40 40\n")
    (tmp_path / "list.txt").write_text("face.png\nbroken.jpg\n")
    settings = {"kind": "annotated", "format": "box_list", "root": str(tmp_path),
                "sources": [{"annotations": str(tmp_path / "boxes.txt"),
                             "image_list": str(tmp_path / "list.txt")}]}
    with pytest.raises(ValueError, match=r"list.txt:2: image .*broken.jpg is not a readable "
                                         "image"):
        build_dataset(settings, tmp_path / "out")


def test_a_failed_variant_leaves_no_partial_images_folder(tmp_path):
    from pipeline.data.variants import make_variant

    write_image(tmp_path / "good.png", np.full((60, 80), 128, np.uint8))
    truncated_jpeg(tmp_path / "broken.jpg")
    source = Manifest("ground_truth", tmp_path, [
        ImageRecord("good.png", 80, 60, [Box(10, 10, 30, 30)]),
        ImageRecord("broken.jpg", 80, 60, [Box(10, 10, 30, 30)])])
    with pytest.raises(ValueError, match="broken.jpg"):
        make_variant(source, {"kind": "original"}, tmp_path / "variant", "original")
    assert not (tmp_path / "variant/images").exists()
    assert not [p for p in (tmp_path / "variant").iterdir()]  # no temporary folder left


# 6. Stage commands validate their settings -----------------------------------------------------

def test_stage_settings_are_checked_against_the_schema(tmp_path):
    from pipeline.cli import main

    with pytest.raises(SystemExit) as error:
        main(["detect", "--settings", '{"kind": "haar"}', "--manifest", "m.json", "--name",
              "haar", "--out", str(tmp_path / "d.json"), "--timing", str(tmp_path / "t.json")])
    message = str(error.value)
    assert "--settings: invalid detectors settings" in message
    assert "detectors.<name>: 'scale_factor' is a required property" in message


# 7. --config of an overlay file -----------------------------------------------------------------

def test_an_overlay_config_is_merged_over_the_default(tmp_path):
    from pipeline.cli import build_parser
    from pipeline.commands import stage_settings

    overlay = tmp_path / "mine.yaml"
    overlay.write_text("detectors:\n  haar:\n    min_neighbors: 5\n")
    args = build_parser().parse_args(["detect", "--config", str(overlay), "--section",
                                      "detectors.haar", "--manifest", "m", "--name", "haar",
                                      "--out", "o", "--timing", "t"])
    settings = stage_settings(args)
    assert settings["min_neighbors"] == 5
    assert settings["scale_factor"] == load_config()["detectors"]["haar"]["scale_factor"]


def test_an_overlay_with_data_root_needs_the_folder():
    with pytest.raises(ConfigError, match="--data-root PATH"):
        load_config(REPO / "config/research.yaml")


@pytest.mark.skipif(not (REPO.parent / "shared/data").is_dir(), reason="needs ../shared/data")
def test_the_research_overlay_loads_with_its_data_root():
    config = load_config(REPO / "config/research.yaml", str(REPO.parent / "shared/data"))
    assert "{data_root}" not in json.dumps(config["datasets"])
    assert config["statistics"] == load_config()["statistics"] | config["statistics"]


# 8. Messages --------------------------------------------------------------------------------------

class Payload:
    """An arbitrary class: a weights_only load refuses it."""


@pytest.mark.parametrize("content", ["empty", "garbage", "pickled"])
def test_bad_checkpoints_get_a_reason_and_no_unsafe_advice(tmp_path, content):
    from pipeline.models.cnn import load_checkpoint

    path = tmp_path / "model.pt"
    if content == "empty":
        path.write_bytes(b"")
    elif content == "garbage":
        path.write_bytes(b"not a checkpoint " * 20)
    else:
        torch.save({"weights": Payload()}, path)
    with pytest.raises(ValueError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert message.startswith(f"{path}: not a valid model checkpoint (")
    assert "()" not in message and "weights_only" not in message
    assert "likely succeed" not in message
    if content == "empty":
        assert "empty (0 bytes)" in message


# 9. Training negatives never hold a face ----------------------------------------------------

def test_random_windows_skip_draws_that_cannot_avoid_a_face(caplog):
    from pipeline.boxes import overlap_matrix
    from pipeline.training.samples import MAX_FACE_OVERLAP, Scene, random_windows

    image = np.zeros((40, 40), np.uint8)
    image[4:36, 4:36] = 255  # a face filling nearly the whole scene
    scene = Scene(image, np.array([[4.0, 4.0, 32.0, 32.0]]))
    assert overlap_matrix(np.array([[0.0, 0.0, 40.0, 40.0]]),
                          scene.faces).max() >= MAX_FACE_OVERLAP
    with caplog.at_level(logging.WARNING):
        out = random_windows([scene], 20, 16, 36, np.random.default_rng(0), tries=5)
    assert len(out) == 0
    assert "20 of 20 skipped" in caplog.text


def test_every_detector_kind_takes_max_pixels(default_config):
    from pipeline.config import validate_section
    from pipeline.defaults import section_schema

    kinds = section_schema("detectors.*")["properties"]["kind"]["enum"]
    assert len(kinds) >= 3
    for name, settings in default_config["detectors"].items():
        validate_section(dict(settings, max_pixels=4_000_000), "detectors.*", name)
    with pytest.raises(ConfigError, match="max_pixels"):
        validate_section(dict(default_config["detectors"]["haar"], max_pixels=10),
                         "detectors.*")


def test_reference_detectors_leave_max_pixels_to_the_detect_stage():
    from pipeline.config import load_yaml
    from pipeline.detection.detectors import REFERENCE_CLASSES, build_detector
    from pipeline.detection.detectors.references import missing_packages

    research = load_yaml(REPO / "config/research.yaml")["detectors"]
    kinds = [k for k in REFERENCE_CLASSES if not missing_packages([k])]
    if not kinds:
        pytest.skip("no reference detector installed (the 'references' extra)")
    for settings in (d for d in research.values() if d["kind"] in kinds):
        detector = build_detector(dict(settings, max_pixels=4_000_000))
        assert not hasattr(detector, "max_pixels")


def test_images_over_max_pixels_are_downscaled_and_boxes_scaled_back(tmp_path):
    from pipeline.detection.detectors import run_detector

    class Recorder:
        """Finds one face at a fixed place of whatever image it is given."""

        shapes: list[tuple[int, ...]] = []

        def detect(self, image: np.ndarray) -> list[Box]:
            self.shapes.append(image.shape)
            return [Box(10, 20, 30, 40, 0.9)]

    write_image(tmp_path / "big.png", np.zeros((300, 400), np.uint8))
    write_image(tmp_path / "small.png", np.zeros((100, 100), np.uint8))
    source = Manifest("ground_truth", tmp_path, [ImageRecord("big.png", 400, 300),
                                                 ImageRecord("small.png", 100, 100)])
    detector = Recorder()
    found, _ = run_detector(detector, source, "recorder", max_pixels=30_000)
    assert detector.shapes == [(150, 200), (100, 100)]
    big, small = found.images
    assert big.attributes == {"detection_scale": 0.5} and small.attributes == {}
    assert big.boxes[0].to_list(True) == [20, 40, 60, 80, 0.9]
    assert small.boxes[0].to_list(True) == [10, 20, 30, 40, 0.9]

"""Dataset builders for real data, and data-root resolution, on files the tests write."""

import copy

import cv2
import numpy as np
import pytest

from pipeline.boxes import Box, Manifest
from pipeline.config import ConfigError, resolve_data_paths, validate_config
from pipeline.data.datasets import build_dataset
from pipeline.data.real_datasets import angle_group, crop_square
from pipeline.data.roles import evaluated_datasets
from pipeline.evaluation.metrics import evaluate


def scene(path, width=120, height=90, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((height, width), value, np.uint8))


def test_annotated_dataset_points_at_original_images(tmp_path):
    scene(tmp_path / "data" / "andy" / "1.jpg")
    (tmp_path / "data" / "andy.txt").write_text("1.jpg 10 10 50 60 andy\n1.jpg 100 70 130 95\n")
    settings = {"kind": "annotated", "format": "box_list", "root": str(tmp_path / "data"),
                "sources": [{"annotations": str(tmp_path / "data" / "andy.txt"),
                             "images": str(tmp_path / "data" / "andy")}]}
    build_dataset(settings, tmp_path / "out")
    truth = Manifest.load(tmp_path / "out" / "test.json")
    assert truth.image_path(truth.images[0]) == (tmp_path / "data" / "andy" / "1.jpg").resolve()
    assert truth.images[0].boxes == [Box(10, 10, 40, 50), Box(100, 70, 20, 20)]  # clipped
    with np.load(tmp_path / "out" / "train.npz") as data:
        assert data["faces"].shape == (2, 36, 36)
    scenes = Manifest.load(tmp_path / "out" / "train_backgrounds.json")
    assert scenes.images[0].boxes == truth.images[0].boxes  # negatives will avoid the faces
    assert (tmp_path / "out" / "test").is_dir()


def test_image_sample_draws_a_seeded_subset_across_sources(tmp_path):
    """image_sample keeps ``size`` images drawn over all sources, the same for a seed, in
    their reading order, with their own boxes; asking for more than there are keeps all."""
    root = tmp_path / "data"
    sources = []
    for folder in ("andy", "ora"):
        lines = []
        for k in range(10):
            scene(root / folder / f"{k}.jpg")
            lines.append(f"{k}.jpg {k} 5 {k + 40} 45\n")
        (root / f"{folder}.txt").write_text("".join(lines))
        sources.append({"annotations": str(root / f"{folder}.txt"),
                        "images": str(root / folder)})
    settings = {"kind": "annotated", "format": "box_list", "root": str(root),
                "sources": sources}
    build_dataset(settings, tmp_path / "all")
    everything = [(r.file, r.boxes) for r in Manifest.load(tmp_path / "all" / "test.json").images]

    def sampled(size, seed, out):
        build_dataset({**settings, "image_sample": {"size": size, "seed": seed}}, tmp_path / out)
        return [(r.file, r.boxes) for r in Manifest.load(tmp_path / out / "test.json").images]

    first = sampled(6, 0, "a")
    assert first == sampled(6, 0, "b") != sampled(6, 1, "c")
    expected = np.sort(np.random.default_rng(0).choice(20, 6, replace=False))
    assert first == [everything[i] for i in expected]
    assert {file.split("/")[0] for file, _ in first} == {"andy", "ora"}
    assert sampled(50, 0, "d") == everything
    with np.load(tmp_path / "a" / "train.npz") as data:
        assert data["faces"].shape == (6, 36, 36)


def test_crop_square_is_centred_and_replicates_borders():
    image = np.zeros((50, 50), np.uint8)
    image[20:30, 20:30] = 255
    crop = crop_square(image, Box(20, 20, 10, 10), size=10)
    assert crop.min() == 255
    edge = crop_square(image, Box(-10, -10, 20, 20), size=20)
    assert edge.shape == (20, 20)


def test_face_folders(tmp_path):
    for k in range(3):
        scene(tmp_path / "faces" / f"{k}.jpg", 36, 36, 50 * k)
    (tmp_path / "faces" / "README.txt").write_text("not an image")
    scene(tmp_path / "scenes" / "s.png", 200, 100)
    build_dataset({"kind": "face_folders", "faces": str(tmp_path / "faces"),
                   "scenes": str(tmp_path / "scenes")}, tmp_path / "out")
    with np.load(tmp_path / "out" / "train.npz") as data:
        assert data["faces"].shape == (3, 36, 36)
    scenes = Manifest.load(tmp_path / "out" / "train_backgrounds.json")
    assert [(r.file, r.width, r.height) for r in scenes.images] == [("s.png", 200, 100)]
    assert Manifest.load(tmp_path / "out" / "test.json").images == []


def test_yale_b_placement_and_light_groups(tmp_path):
    folder = tmp_path / "yale" / "yaleB01"
    folder.mkdir(parents=True)
    for name in ("yaleB01_P00A+000E+00", "yaleB01_P00A+085E+20", "yaleB01_P00A-050E+00"):
        face = np.full((192, 168), 200, np.uint8)
        face[60:80, 40:70] = 20  # an eye-dark band, so the face is visible on the canvas
        cv2.imwrite(str(folder / f"{name}.pgm"), face)
    settings = {"kind": "yale_b", "folder": str(tmp_path / "yale"), "seed": 0,
                "canvas_size": [320, 240], "face_size": [80, 120],
                "angle_bins": [0, 20, 45, 90]}
    build_dataset(settings, tmp_path / "out")
    truth = Manifest.load(tmp_path / "out" / "test.json")
    groups = {r.file: r.attributes["group"] for r in truth.images}
    assert groups == {"00000_yaleB01_P00A+000E+00.png": "0-20 deg",
                      "00001_yaleB01_P00A+085E+20.png": "45-90 deg",
                      "00002_yaleB01_P00A-050E+00.png": "45-90 deg"}
    for record in truth.images:
        (box,) = record.boxes
        assert 80 <= box.h <= 120 and box.w == pytest.approx(box.h * 168 / 192, abs=1)
        image = cv2.imread(str(truth.image_path(record)), 0)
        inside = image[int(box.y) + 5:int(box.y + box.h) - 5, int(box.x) + 5:int(box.x + box.w) - 5]
        assert inside.max() >= 190  # the bright face lies inside its box
    metrics = evaluate(truth, truth_as_detections(truth), 0.5, [0])
    assert set(metrics["groups"]) == {"0-20 deg", "45-90 deg"}
    assert metrics["groups"]["45-90 deg"]["n_images"] == 2
    assert metrics["groups"]["45-90 deg"]["average_precision"] == 1.0


def truth_as_detections(truth):
    return Manifest("detections", truth.root, copy.deepcopy(truth.images))


def test_angle_groups():
    assert angle_group(0, [0, 20, 45]) == "0-20 deg"
    assert angle_group(45, [0, 20, 45]) == "20-45 deg"
    assert angle_group(60, [0, 20, 45]) == ">45 deg"


def test_data_root_is_required_and_checked(tmp_path, default_config):
    config = copy.deepcopy(default_config)
    config["datasets"]["real"] = {"kind": "face_folders", "faces": "{data_root}/faces",
                                  "scenes": "{data_root}/scenes"}
    validate_config(config)  # fills in the schema's defaults (evaluate: false)
    with pytest.raises(ConfigError, match="--config data_root=PATH"):
        resolve_data_paths(copy.deepcopy(config))
    config["data_root"] = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="nowhere is not a folder"):
        resolve_data_paths(copy.deepcopy(config))
    config["data_root"] = str(tmp_path)
    (tmp_path / "faces").mkdir()
    with pytest.raises(ConfigError, match=r"datasets.real.scenes: .*scenes does not exist "
                                          r"\(expected a folder of face-free scene images\)"):
        resolve_data_paths(copy.deepcopy(config))
    (tmp_path / "scenes").mkdir()
    resolve_data_paths(config)
    assert config["datasets"]["real"]["faces"] == f"{tmp_path}/faces"
    assert evaluated_datasets(config) == ["embedded"]  # face folders are for training only


def test_research_config_is_valid(default_config):
    from pipeline.config import deep_merge, load_yaml, validate_config

    research = deep_merge(default_config, load_yaml("config/research.yaml"))
    validate_config(research)
    assert set(evaluated_datasets(research)) == {"mitcmu", "mitcmu_tune", "yaleb", "louie_val"}
    assert research["datasets"]["yaleb"]["calibration"] == "yaleb_dev"
    # MIT+CMU: a tune half chooses the operating points, the other half is judged
    roles = {n: research["datasets"][n]["role"] for n in ("mitcmu", "mitcmu_tune")}
    assert roles == {"mitcmu": "test", "mitcmu_tune": "tune"}
    assert set(research["tuning"]) >= {"haar_trained", "cnn", "haar_lit", "cnn_lit"}
    assert research["seeds"] == [0, 1, 2]


def test_yale_b_subject_filter(tmp_path):
    for subject in (1, 2):
        folder = tmp_path / "yale" / f"yaleB{subject:02d}"
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / f"yaleB{subject:02d}_P00A+000E+00.pgm"),
                    np.full((192, 168), 200, np.uint8))
    settings = {"kind": "yale_b", "folder": str(tmp_path / "yale"), "seed": 0,
                "canvas_size": [320, 240], "face_size": [80, 120], "angle_bins": [0, 90],
                "subjects": [2]}
    build_dataset(settings, tmp_path / "out")
    files = [r.file for r in Manifest.load(tmp_path / "out" / "test.json").images]
    assert files == ["00000_yaleB02_P00A+000E+00.png"]
    with pytest.raises(ValueError, match="no Yale B crops of subjects"):
        build_dataset(dict(settings, subjects=[7]), tmp_path / "none")


def test_output_stage_config_trains_as_the_research_cnn(default_config):
    """config/output_stage.yaml layers on the research configuration: its 48x48 model is
    trained exactly as research's cnn, and its detector is research's cnn_cascade plus the
    third stage."""
    from pipeline.config import deep_merge, load_yaml, validate_config

    research = deep_merge(default_config, load_yaml("config/research.yaml"))
    config = deep_merge(research, load_yaml("config/output_stage.yaml"))
    validate_config(config)
    validate_config(research)  # both with the schema's defaults filled in
    output = dict(config["models"]["output"])
    assert (output.pop("architecture"), output.pop("window")) == ("output", 48)
    assert output == {k: v for k, v in research["models"]["cnn"].items()
                      if k not in ("architecture", "window")}
    detector = dict(config["detectors"]["cnn_cascade48"])
    assert detector.pop("output_model") == "output"
    assert detector == research["detectors"]["cnn_cascade"]


def test_architectures_config_is_valid(default_config):
    from pipeline.config import deep_merge, load_yaml, validate_config

    config = deep_merge(default_config, load_yaml("config/architectures.yaml"))
    validate_config(config)
    assert {m["architecture"] for m in config["models"].values()} == {
        "lenet5", "vgg", "googlenet", "proposal"}


def test_scene_split_gives_training_and_yale_canvases_disjoint_scenes(tmp_path):
    """Scenes of one folder, each a flat grey of its own: face_folders keeps part a as its
    negatives, and every Yale B canvas is a crop of a part b scene (its background grey)."""
    from pipeline.data.roles import in_part

    levels = {f"s{k:02d}.png": 10 + 8 * k for k in range(20)}
    for name, value in levels.items():
        scene(tmp_path / "scenes" / name, 400, 300, value)
    scene(tmp_path / "faces" / "f.png", 36, 36, 128)
    split = {"part": "a", "fraction": 0.6}
    build_dataset({"kind": "face_folders", "faces": str(tmp_path / "faces"),
                   "scenes": str(tmp_path / "scenes"), "scene_split": split}, tmp_path / "train")
    trained = {r.file for r in Manifest.load(tmp_path / "train" / "train_backgrounds.json").images}
    assert trained == {n for n in levels if in_part(n, split)}
    assert 0 < len(trained) < len(levels)

    folder = tmp_path / "yale" / "yaleB01"
    folder.mkdir(parents=True)
    for azimuth in range(0, 60, 5):
        cv2.imwrite(str(folder / f"yaleB01_P00A+{azimuth:03d}E+00.pgm"),
                    np.full((192, 168), 250, np.uint8))
    build_dataset({"kind": "yale_b", "folder": str(tmp_path / "yale"), "seed": 0,
                   "canvas_size": [160, 120], "face_size": [40, 60], "angle_bins": [0, 90],
                   "scenes": str(tmp_path / "scenes"),
                   "scene_split": {"part": "b", "fraction": 0.6}}, tmp_path / "yaleb")
    truth = Manifest.load(tmp_path / "yaleb" / "test.json")
    held_out = {v for n, v in levels.items() if n not in trained}
    backgrounds = set()
    for record in truth.images:
        image = cv2.imread(str(truth.image_path(record)), 0)
        backgrounds.add(int(image[0, 0]) if record.boxes[0].x > 2 else int(image[-1, -1]))
    assert backgrounds <= held_out and len(backgrounds) > 1


def test_yale_canvases_from_training_scenes_need_a_disjoint_scene_split(default_config):
    config = copy.deepcopy(default_config)
    config["datasets"]["train_faces"] = {"kind": "face_folders", "faces": "/f",
                                         "scenes": "/scenes"}
    config["datasets"]["yale"] = {"kind": "yale_b", "folder": "/y", "seed": 0,
                                  "canvas_size": [320, 240], "face_size": [80, 140],
                                  "angle_bins": [0, 90], "scenes": "/scenes/"}
    with pytest.raises(ConfigError, match="datasets.yale.scenes: the face-free scenes "
                                          "datasets.train_faces trains on"):
        validate_config(copy.deepcopy(config))
    config["datasets"]["train_faces"]["scene_split"] = {"part": "a", "fraction": 0.8}
    config["datasets"]["yale"]["scene_split"] = {"part": "a", "fraction": 0.8}
    with pytest.raises(ConfigError, match="different parts"):
        validate_config(copy.deepcopy(config))
    config["datasets"]["yale"]["scene_split"] = {"part": "b", "fraction": 0.8}
    validate_config(config)

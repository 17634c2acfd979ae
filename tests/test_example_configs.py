"""The example configurations config/fddb.yaml and config/wider.yaml, on tiny files written in
the official FDDB and WIDER FACE layouts: they load and validate with a data root, their test
sets build with the known boxes, and a Snakemake dry run plans them. Offline, no shared data."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.boxes import Box, ImageRecord, Manifest
from pipeline.config import ConfigError, load_config, load_yaml
from pipeline.data.datasets import build_dataset
from pipeline.data.formats_fddb_wider import ellipse_to_box
from pipeline.data.roles import evaluated_datasets
from pipeline.evaluation.metrics import Criterion, evaluate, face_sizes
from tests.test_workflow import job_counts, snakemake

REPO = Path(__file__).resolve().parents[1]
FDDB_CONFIG = REPO / "config" / "fddb.yaml"
WIDER_CONFIG = REPO / "config" / "wider.yaml"


def write_image(path: Path, width: int, height: int, seed: int = 0) -> None:
    """A small colour JPEG (the originals are colour photos), of noise so it is not blank."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    assert cv2.imwrite(str(path), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def write_training_data(root: Path) -> None:
    """faces-train/ as config/research.yaml reads it: face crops and face-free scenes."""
    for k in range(3):
        write_image(root / "faces-train" / "faces36" / f"caltech_web_crop_{k:05d}.jpg", 36, 36, k)
    write_image(root / "faces-train" / "nonface-scenes" / "11707.jpg", 200, 150, 9)


# FDDB: per fold, (image name without .jpg, width, height, ellipses ra rb theta cx cy).
FDDB_FOLDS = {
    fold: [(f"2003/01/{fold:02d}/big/img_{100 + fold}", 160, 120, [(20.0, 14.0, 1.5, 80.0, 60.0)])]
    for fold in range(1, 11)
}
FDDB_FOLDS[1] = [
    ("2002/07/19/big/img_130", 160, 120,
     [(30.0, 20.0, 1.570796, 50.0, 60.0),   # upright ellipse: box 40 wide, 60 high
      (15.0, 10.0, 0.0, 120.0, 30.0)]),     # major axis horizontal: box 30 x 20
    ("2002/08/26/big/img_265", 160, 120, [(25.0, 18.0, -1.476417, 80.0, 60.0)]),  # tilted
]
# The real fold 08 holds a degenerate ellipse (radii 1, centre 0 0) beside real faces.
FDDB_FOLDS[8] = [("2002/07/24/big/img_67", 160, 120,
                  [(20.0, 14.0, 1.546461, 60.0, 50.0), (1.0, 1.0, 0.0, 0.0, 0.0)])]


def write_fddb(root: Path) -> None:
    """fddb/FDDB-folds/ (fold lists and ellipse lists) and fddb/originalPics/ (images)."""
    folds = root / "fddb" / "FDDB-folds"
    folds.mkdir(parents=True)
    for fold, entries in FDDB_FOLDS.items():
        ellipse_list, image_list = [], []
        for index, (name, width, height, ellipses) in enumerate(entries):
            write_image(root / "fddb" / "originalPics" / f"{name}.jpg", width, height,
                        fold * 10 + index)
            image_list.append(name)
            ellipse_list += [name, str(len(ellipses))]
            ellipse_list += [f"{ra:f} {rb:f} {theta:f} {cx:f} {cy:f}  1"
                             for ra, rb, theta, cx, cy in ellipses]
        (folds / f"FDDB-fold-{fold:02d}.txt").write_text("\n".join(image_list) + "\n")
        (folds / f"FDDB-fold-{fold:02d}-ellipseList.txt").write_text(
            "\n".join(ellipse_list) + "\n")


# WIDER FACE val: x y w h blur expression illumination invalid occlusion pose per face (the
# official file ends these lines with a space); a count of 0 is followed by one line of zeros.
WIDER_IMAGES = {
    "0--Parade/0_Parade_marchingband_1_465.jpg": (200, 100),
    "1--Handshaking/1_Handshaking_Handshaking_1_35.jpg": (120, 90),
    "2--Demonstration/2_Demonstration_Demonstrators_2_100.jpg": (100, 80),
}
WIDER_GT = """\
0--Parade/0_Parade_marchingband_1_465.jpg
4
10 12 40 48 0 0 0 0 0 0
70 15 30 36 2 0 0 0 1 0
120 20 20 24 0 0 0 1 0 0
150 10 6 8 2 0 0 0 0 0
1--Handshaking/1_Handshaking_Handshaking_1_35.jpg
0
0 0 0 0 0 0 0 0 0 0
2--Demonstration/2_Demonstration_Demonstrators_2_100.jpg
1
5 5 50 60 0 1 1 0 2 1
"""


def write_wider(root: Path) -> None:
    """wider-face/wider_face_split/wider_face_val_bbx_gt.txt and wider-face/WIDER_val/images/."""
    for index, (file, (width, height)) in enumerate(WIDER_IMAGES.items()):
        write_image(root / "wider-face" / "WIDER_val" / "images" / file, width, height, index)
    split = root / "wider-face" / "wider_face_split"
    split.mkdir(parents=True)
    lines = [line + " " if len(line.split()) == 10 else line for line in WIDER_GT.splitlines()]
    (split / "wider_face_val_bbx_gt.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data_root")
    write_training_data(root)
    write_fddb(root)
    write_wider(root)
    return root


def boxes_close(found: list[Box], expected: list[Box]) -> bool:
    return len(found) == len(expected) and all(
        np.allclose(f.to_list(), e.to_list(), atol=1e-3) for f, e in zip(found, expected,
                                                                          strict=True))


@pytest.mark.parametrize("path", [FDDB_CONFIG, WIDER_CONFIG], ids=["fddb", "wider"])
def test_example_config_trains_as_the_research_config(path):
    """Same training data and settings as config/research.yaml (kept in step by this test)."""
    overlay, research = load_yaml(path), load_yaml(REPO / "config" / "research.yaml")
    assert overlay["datasets"]["webfaces"] == research["datasets"]["webfaces"]
    assert overlay["models"] == {k: research["models"][k] for k in ("cnn", "proposal")}
    assert "haar_trained" in overlay["cascades"]  # the photo arm; the others are research's own
    assert overlay["cascades"] == {k: research["cascades"][k] for k in overlay["cascades"]}
    assert (set(overlay["report"]["arms"]["photo"]["differences"])
            == set(research["report"]["arms"]["photo"]["differences"]))


def test_example_configs_need_a_data_root():
    for path in (FDDB_CONFIG, WIDER_CONFIG):
        with pytest.raises(ConfigError, match="--data-root PATH"):
            load_config(path)


def test_fddb_config_builds_all_ten_folds(data_root, tmp_path):
    config = load_config(FDDB_CONFIG, data_root=str(data_root))
    assert set(evaluated_datasets(config)) == {"embedded", "fddb"}
    settings = config["datasets"]["fddb"]
    assert [Path(s["annotations"]).name for s in settings["sources"]] == [
        f"FDDB-fold-{k:02d}-ellipseList.txt" for k in range(1, 11)]
    assert config["evaluation"]["min_face_size"] is None  # FDDB scores every annotated face
    build_dataset(settings, tmp_path / "fddb")
    truth = Manifest.load(tmp_path / "fddb" / "test.json")
    expected = [(name + ".jpg", width, height, ellipses)
                for entries in FDDB_FOLDS.values() for name, width, height, ellipses in entries]
    assert [(r.file, r.width, r.height) for r in truth.images] == [e[:3] for e in expected]
    assert truth.image_path(truth.images[0]) == (
        data_root / "fddb" / "originalPics" / "2002/07/19/big/img_130.jpg").resolve()
    records = {r.file: r for r in truth.images}
    # Known answers: an upright ellipse and a horizontal one, then the converter's own result.
    assert boxes_close(records["2002/07/19/big/img_130.jpg"].boxes,
                       [Box(30, 30, 40, 60), Box(105, 20, 30, 20)])
    for file, _, _, ellipses in expected:
        converted = [ellipse_to_box(*e) for e in ellipses]
        if file == "2002/07/24/big/img_67.jpg":  # the degenerate ellipse, clipped to the image
            assert converted[1] == Box(-1, -1, 2, 2)
            converted[1] = Box(0, 0, 1, 1)
        assert boxes_close(records[file].boxes, converted), file
    assert truth.n_boxes == 13
    with np.load(tmp_path / "fddb" / "train.npz") as arrays:
        assert arrays["faces"].shape == (13, 36, 36)


def test_wider_config_builds_the_val_set(data_root, tmp_path):
    config = load_config(WIDER_CONFIG, data_root=str(data_root))
    assert set(evaluated_datasets(config)) == {"embedded", "wider_val"}
    build_dataset(config["datasets"]["wider_val"], tmp_path / "wider")
    truth = Manifest.load(tmp_path / "wider" / "test.json")
    assert [(r.file, r.width, r.height) for r in truth.images] == [
        (file, width, height) for file, (width, height) in WIDER_IMAGES.items()]
    parade, handshake, demonstration = truth.images
    # x y w h; the invalid face (120 20 20 24) is left out; blur and occlusion flags do not
    # drop a face; the image with a count of 0 stays as a face-free image.
    assert parade.boxes == [Box(10, 12, 40, 48), Box(70, 15, 30, 36), Box(150, 10, 6, 8)]
    assert handshake.boxes == []
    assert demonstration.boxes == [Box(5, 5, 50, 60)]
    assert truth.image_path(parade) == (data_root / "wider-face" / "WIDER_val" / "images"
                                        / "0--Parade/0_Parade_marchingband_1_465.jpg").resolve()

    # The config's evaluation: the 6x8 face is below min_face_size (the detectors' smallest
    # searched face) and not scored; a detection on it is no false positive, one on the face
    # flagged invalid is.
    evaluation = config["evaluation"]
    min_size = max(d.get("min_size", 0) for d in config["detectors"].values())
    assert evaluation["min_face_size"] == min_size == 24
    assert (face_sizes([b for r in truth.images for b in r.boxes]) < min_size).sum() == 1
    found = copy.deepcopy(truth.images)
    found[0].boxes.append(Box(120, 20, 20, 24))  # on the invalid face
    detections = Manifest("detections", truth.root, [
        ImageRecord(r.file, r.width, r.height, [Box(*b.to_list(), score=0.9) for b in r.boxes])
        for r in found])
    metrics = evaluate(truth, detections, Criterion.from_settings(evaluation),
                       evaluation["false_positive_points"], evaluation["min_face_size"])
    assert metrics["n_faces"] == 3 and metrics["n_faces_excluded"] == 1
    assert metrics["max_recall"] == 1.0
    assert metrics["curve"]["false_positives"][-1] == 1


def test_a_missing_official_file_is_named_before_anything_runs(data_root, tmp_path):
    root = tmp_path / "root"
    (root / "fddb" / "FDDB-folds").mkdir(parents=True)
    for source in (data_root / "fddb" / "FDDB-folds").glob("*"):
        if source.name != "FDDB-fold-10-ellipseList.txt":
            (root / "fddb" / "FDDB-folds" / source.name).write_text(source.read_text())
    with pytest.raises(ConfigError) as error:
        load_config(FDDB_CONFIG, data_root=str(root))
    message = str(error.value)
    assert "datasets.fddb.sources[9].annotations" in message
    assert "FDDB-fold-10-ellipseList.txt does not exist" in message
    assert "datasets.fddb.root" in message and "datasets.webfaces.faces" in message


@pytest.mark.parametrize("path,dataset,annotations", [
    (FDDB_CONFIG, "fddb", "fddb/FDDB-folds/FDDB-fold-10-ellipseList.txt"),
    (WIDER_CONFIG, "wider_val", "wider-face/wider_face_split/wider_face_val_bbx_gt.txt"),
], ids=["fddb", "wider"])
def test_dry_run_plans_the_example_config(data_root, tmp_path, path, dataset, annotations):
    output = snakemake(tmp_path, path, "-n", "--printshellcmds", "--config",
                       f"data_root={data_root}")
    counts = job_counts(output)
    assert counts["build_dataset"] == 3  # embedded, webfaces (training only) and the test set
    assert counts["train_cnn"] == 2 and counts["train_haar"] == 1
    for detector in ("haar", "haar_trained", "cnn", "cnn_cascade"):
        for variant in ("original", "shadow", "cartoon"):
            draw = "fixed" if detector == "haar" else "seed0"
            assert f"results/metrics/{detector}/{draw}/{dataset}/{variant}.json" in output
    assert f"results/variants/{dataset}/shadow_sweep" not in output  # only the listed variants
    assert "results/data/webfaces/train.npz" in output
    assert "results/metrics/haar/fixed/webfaces" not in output  # training data is not tested
    assert f"{data_root}/{annotations}" in output and "{data_root}" not in output
    assert not (tmp_path / "results").exists()

"""Optional checks of the readers on the real sample data beside the repository.

Skipped unless ``../shared/data`` (or ``$FACECOMPARE_DATA``) exists: a fresh clone has no
such folder, and nothing else in the suite needs it. The counts are those of its README.
"""

import os
from pathlib import Path

import pytest

from pipeline.data.formats import image_files
from pipeline.data.formats_box_list import attach_landmarks, read_box_list, read_landmarks
from pipeline.data.formats_dlib_coco import read_dlib_xml
from pipeline.data.formats_fddb_wider import read_fddb
from pipeline.data.formats_yale import read_yale_b

DATA = Path(os.environ.get("FACECOMPARE_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"no real data at {DATA}")


def test_mitcmu_boxes_and_landmarks():
    root = DATA / "mitcmu-dev"
    records = read_box_list(root / "ground_truth_bboxes_face_only.txt", root / "images",
                            image_list=root / "images.txt")
    assert len(records) == 49 and sum(len(r.boxes) for r in records) == 210
    attach_landmarks(records, read_landmarks(root / "ground_truth_landmarks.txt"), "mitcmu")
    assert all(p is not None for r in records for p in r.attributes["landmarks"])


def test_cartoon_frames():
    root = DATA / "louie-train"
    faces = sum(len(r.boxes) for c in ("andy", "louie", "ora", "tommy")
                for r in read_box_list(root / f"{c}_annotations.txt", root, prefix=f"{c}/"))
    assert faces == 1818
    val = read_box_list(DATA / "louie-val" / "gt.txt", DATA / "louie-val" / "images")
    assert len(val) == 200 and sum(len(r.boxes) for r in val) == 415


def test_dlib_fddb_yale_and_folders():
    dlib = [read_dlib_xml(DATA / "dlib-faces" / f"{s}.xml", DATA / "dlib-faces")
            for s in ("training", "testing")]
    assert sum(len(r.boxes) for records in dlib for r in records) == 43
    folds = [read_fddb(p, ".", check_images=False)
             for p in sorted((DATA / "fddb-folds").glob("FDDB-fold-*-ellipseList.txt"))]
    assert sum(len(f) for f in folds) == 2845
    lit = read_yale_b(DATA / "yaleb-dev")
    assert len(lit) + len(list((DATA / "yaleb-dev").rglob("*_Ambient.pgm"))) == 832
    assert len(image_files(DATA / "faces-train" / "faces36")) == 6713
    assert len(image_files(DATA / "faces-train" / "nonface-scenes")) == 274

"""Annotation readers on small files written here (the shared real data is never needed)."""

import json
import math

import cv2
import numpy as np
import pytest

from pipeline.boxes import Box
from pipeline.data.formats import AnnotationError, image_files
from pipeline.data.formats_box_list import attach_landmarks, read_box_list, read_landmarks
from pipeline.data.formats_dlib_coco import read_coco, read_dlib_xml, write_coco
from pipeline.data.formats_fddb_wider import (
    ellipse_to_box,
    read_fddb,
    read_wider,
    write_fddb_detections,
)
from pipeline.data.formats_yale import light_angle, read_yale_b


def image(path, width=100, height=80):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((height, width), 128, np.uint8))
    return path


def test_box_list_with_crlf_labels_prefix_and_image_list(tmp_path):
    image(tmp_path / "andy" / "a.jpg")
    image(tmp_path / "andy" / "b.jpg")
    (tmp_path / "list.txt").write_bytes(b"a.jpg 10 20 40 60 andy\r\n\r\na.jpg 50 5 90 45\r\n")
    (tmp_path / "all.txt").write_text("a.jpg\nb.jpg\n")
    records = read_box_list(tmp_path / "list.txt", tmp_path, prefix="andy/",
                            image_list=tmp_path / "all.txt")
    by_file = {r.file: r for r in records}
    assert by_file["andy/a.jpg"].boxes == [Box(10, 20, 30, 40), Box(50, 5, 40, 40)]
    assert by_file["andy/a.jpg"].attributes["labels"] == ["andy", None]
    assert (by_file["andy/a.jpg"].width, by_file["andy/a.jpg"].height) == (100, 80)
    assert by_file["andy/b.jpg"].boxes == []


@pytest.mark.parametrize("line, message", [
    ("a.jpg 10 20 40", r"list.txt:2: expected '<file> x_min"),
    ("a.jpg 10 20 forty 60", r"list.txt:2: expected numbers"),
    ("a.jpg 40 20 10 60", r"list.txt:2: box .* zero or negative size"),
    ("missing.jpg 1 2 3 4", r"list.txt:2: image .*missing.jpg not found"),
])
def test_box_list_errors_name_file_and_line(tmp_path, line, message):
    image(tmp_path / "a.jpg")
    (tmp_path / "list.txt").write_text(f"a.jpg 1 1 5 5\n{line}\n")
    with pytest.raises(AnnotationError, match=message):
        read_box_list(tmp_path / "list.txt", tmp_path)


def test_empty_and_missing_annotation_files(tmp_path):
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(AnnotationError, match="empty.txt: annotation file is empty"):
        read_box_list(tmp_path / "empty.txt", tmp_path)
    with pytest.raises(FileNotFoundError, match="nothere.txt"):
        read_box_list(tmp_path / "nothere.txt", tmp_path)


def test_non_image_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "a.jpg").write_text("not an image")
    (tmp_path / "list.txt").write_text("a.jpg 1 1 5 5\n")
    with pytest.raises(AnnotationError, match="a.jpg is not a readable image"):
        read_box_list(tmp_path / "list.txt", tmp_path)


def test_landmarks_attach_to_the_box_that_holds_them(tmp_path, caplog):
    image(tmp_path / "a.jpg")
    (tmp_path / "list.txt").write_text("a.jpg 10 10 40 40\na.jpg 60 10 90 40\n")
    points = "62 15 88 15 75 25 65 35 75 36 85 35"
    (tmp_path / "marks.txt").write_text(f"a.jpg {points}\n")
    records = read_box_list(tmp_path / "list.txt", tmp_path)
    attach_landmarks(records, read_landmarks(tmp_path / "marks.txt"), "marks.txt")
    first, second = records[0].attributes["landmarks"]
    assert first is None and second == [float(v) for v in points.split()]
    assert "holds 0 landmark sets" in caplog.text
    (tmp_path / "bad.txt").write_text("a.jpg 1 2 3\n")
    with pytest.raises(AnnotationError, match="bad.txt:1: expected '<file>' and 12 numbers"):
        read_landmarks(tmp_path / "bad.txt")


def test_dlib_xml(tmp_path):
    image(tmp_path / "img" / "a.jpg")
    (tmp_path / "faces.xml").write_text(
        "<?xml version='1.0'?><dataset><images>"
        "<image file='img/a.jpg'><box top='5' left='10' width='20' height='30'/>"
        "<box top='1' left='1' width='5' height='5' ignore='1'/></image>"
        "</images></dataset>")
    records = read_dlib_xml(tmp_path / "faces.xml", tmp_path)
    assert [(r.file, r.boxes) for r in records] == [("img/a.jpg", [Box(10, 5, 20, 30)])]
    (tmp_path / "broken.xml").write_text("<dataset><images>")
    with pytest.raises(AnnotationError, match="broken.xml: not valid XML"):
        read_dlib_xml(tmp_path / "broken.xml", tmp_path)


def test_ellipse_to_box_known_answers():
    assert ellipse_to_box(20, 10, 0.0, 50, 50) == Box(30, 40, 40, 20)
    upright = ellipse_to_box(20, 10, math.pi / 2, 50, 50)
    assert (upright.w, upright.h) == pytest.approx((20, 40))
    diagonal = ellipse_to_box(10, 10, 0.7, 0, 0)  # a circle ignores the angle
    assert (diagonal.w, diagonal.h) == pytest.approx((20, 20))


def test_fddb_read_and_write(tmp_path):
    image(tmp_path / "2002" / "img_1.jpg", 200, 200)
    image(tmp_path / "2002" / "img_2.jpg", 200, 200)
    (tmp_path / "fold.txt").write_text(
        "2002/img_1\n2\n20 10 1.5707963 50 60 1\n10 10 0 150 150 1\n2002/img_2\n0\n")
    records = read_fddb(tmp_path / "fold.txt", tmp_path)
    assert [r.file for r in records] == ["2002/img_1.jpg", "2002/img_2.jpg"]
    assert records[0].boxes[0].w == pytest.approx(20) and records[0].boxes[0].h == pytest.approx(40)
    assert records[1].boxes == []
    records[0].boxes = [Box(1, 2, 3, 4, 0.5)]
    write_fddb_detections(records, tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text().splitlines() == [
        "2002/img_1", "1", "1.00 2.00 3.00 4.00 0.500000", "2002/img_2", "0"]
    (tmp_path / "short.txt").write_text("2002/img_1\n3\n20 10 0 50 60 1\n")
    with pytest.raises(AnnotationError, match="announces 3 faces"):
        read_fddb(tmp_path / "short.txt", tmp_path)
    (tmp_path / "nocount.txt").write_text("2002/img_1\nabc\n")
    with pytest.raises(AnnotationError, match="nocount.txt:2: expected a face count"):
        read_fddb(tmp_path / "nocount.txt", tmp_path)


def test_wider(tmp_path):
    image(tmp_path / "0--Parade" / "a.jpg")
    image(tmp_path / "0--Parade" / "b.jpg")
    (tmp_path / "gt.txt").write_text(
        "0--Parade/a.jpg\n2\n10 10 20 30 0 0 0 0 0 0\n50 10 20 20 0 0 0 1 0 0\n"
        "0--Parade/b.jpg\n0\n0 0 0 0 0 0 0 0 0 0\n")
    records = {r.file: r for r in read_wider(tmp_path / "gt.txt", tmp_path)}
    assert records["0--Parade/a.jpg"].boxes == [Box(10, 10, 20, 30)]  # invalid face dropped
    assert records["0--Parade/b.jpg"].boxes == []


def test_wider_leaves_out_zero_size_faces_with_a_warning(tmp_path, caplog):
    image(tmp_path / "0--Parade" / "a.jpg")
    (tmp_path / "gt.txt").write_text(
        "0--Parade/a.jpg\n3\n10 10 20 30 0 0 0 0 0 0\n40 40 0 12 0 0 0 0 0 0\n"
        "60 5 9 0 2 0 0 0 1 0\n")
    with caplog.at_level("WARNING"):
        records = read_wider(tmp_path / "gt.txt", tmp_path)
    assert records[0].boxes == [Box(10, 10, 20, 30)]
    assert "2 faces of zero width or height" in caplog.text and "line 4" in caplog.text


def test_coco_round_trip_and_pycocotools_reads_it(tmp_path):
    from pipeline.boxes import ImageRecord

    image(tmp_path / "a.jpg")
    records = [ImageRecord("a.jpg", 100, 80, [Box(10, 20, 30, 40), Box(50, 5, 10, 10)])]
    write_coco(records, tmp_path / "gt.json")
    back = read_coco(tmp_path / "gt.json", tmp_path)
    assert [(r.file, r.width, r.boxes) for r in back] == [("a.jpg", 100, records[0].boxes)]
    records[0].boxes = [Box(10, 20, 30, 40, 0.9)]
    write_coco(records, tmp_path / "det.json", detections=True)
    assert json.loads((tmp_path / "det.json").read_text()) == [
        {"image_id": 0, "category_id": 1, "bbox": [10, 20, 30, 40], "score": 0.9}]
    coco = pytest.importorskip("pycocotools.coco")
    ground = coco.COCO(str(tmp_path / "gt.json"))
    assert len(ground.getAnnIds()) == 2 and ground.loadRes(str(tmp_path / "det.json"))
    (tmp_path / "bad.json").write_text('{"annotations": []}')
    with pytest.raises(AnnotationError, match="bad.json: not a COCO file"):
        read_coco(tmp_path / "bad.json", tmp_path)


def test_image_folders_skip_other_files(tmp_path, caplog):
    caplog.set_level("INFO")
    image(tmp_path / "a.png")
    image(tmp_path / "sub" / "b.pgm")
    (tmp_path / "DEADJOE").write_text("x")
    (tmp_path / "notes.info").write_text("x")
    assert [p.name for p in image_files(tmp_path)] == ["a.png", "b.pgm"]
    assert "skipped 2 non-image files" in caplog.text


def test_yale_names_and_light_angle(tmp_path):
    for name in ("yaleB01_P00A+000E+00.pgm", "yaleB01_P00A-035E+15.pgm",
                 "yaleB01_P00_Ambient.pgm"):
        image(tmp_path / "yaleB01" / name, 42, 48)
    (tmp_path / "yaleB01" / "WS_FTP.LOG").write_text("x")
    found = read_yale_b(tmp_path)
    assert [light for _, light in found] == [
        {"subject": 1, "pose": 0, "azimuth": 0, "elevation": 0},
        {"subject": 1, "pose": 0, "azimuth": -35, "elevation": 15}]
    assert light_angle(0, 0) == 0
    assert light_angle(90, 0) == pytest.approx(90)
    assert light_angle(0, 45) == pytest.approx(45)
    assert light_angle(-60, 60) == pytest.approx(math.degrees(math.acos(0.25)))


@pytest.mark.parametrize("azimuth, elevation", [(20, 0), (0, 20), (0, -20), (-20, 0)])
def test_light_at_a_bin_edge_falls_in_the_bin_it_starts(azimuth, elevation):
    """cos and acos gave 19.999999999999993 degrees for light 20 degrees off the axis, so it
    landed in the 0-20 baseline bin."""
    from pipeline.data.real_datasets import angle_group

    assert light_angle(azimuth, elevation) == 20.0
    assert angle_group(light_angle(azimuth, elevation), [0, 20, 45]) == "20-45 deg"

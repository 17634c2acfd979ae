import numpy as np
import pytest

from pipeline.boxes import Box, ImageRecord, Manifest, iou_matrix


def test_iou_known_values():
    a = Box(0, 0, 10, 10)
    assert a.iou(a) == pytest.approx(1.0)
    assert a.iou(Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert a.iou(Box(10, 0, 10, 10)) == 0.0  # touching edges share no area
    assert a.iou(Box(2, 2, 5, 5)) == pytest.approx(25 / 100)
    assert a.iou(Box(0, 0, 0, 0)) == 0.0


def test_iou_matrix_matches_pixel_count():
    """IoU equals the ratio of pixel counts of rasterised integer boxes."""
    rng = np.random.default_rng(0)
    boxes = [Box(*rng.integers(0, 30, 2), *rng.integers(1, 20, 2)) for _ in range(12)]
    matrix = iou_matrix(boxes, boxes)
    for i, a in enumerate(boxes):
        for j, b in enumerate(boxes):
            canvas_a = np.zeros((60, 60), bool)
            canvas_b = np.zeros((60, 60), bool)
            canvas_a[int(a.y):int(a.y + a.h), int(a.x):int(a.x + a.w)] = True
            canvas_b[int(b.y):int(b.y + b.h), int(b.x):int(b.x + b.w)] = True
            expected = (canvas_a & canvas_b).sum() / (canvas_a | canvas_b).sum()
            assert matrix[i, j] == pytest.approx(expected)
    assert iou_matrix([], boxes).shape == (0, 12)


def test_clip_and_list_round_trip():
    box = Box(-5, 10, 20, 100, score=0.25).clipped(10, 50)
    assert (box.x, box.y, box.w, box.h, box.score) == (0, 10, 10, 40, 0.25)
    assert Box.from_list(box.to_list(with_score=True)) == box
    with pytest.raises(ValueError, match="4 or 5 numbers"):
        Box.from_list([1, 2, 3])


def test_manifest_round_trip_keeps_root_relative(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    manifest = Manifest("detections", images,
                        [ImageRecord("a.png", 40, 30, [Box(1, 2, 3, 4, 0.5)])],
                        meta={"detector": "x"})
    manifest.save(tmp_path / "out" / "det.json")
    loaded = Manifest.load(tmp_path / "out" / "det.json")
    assert loaded.root == images.resolve()
    assert loaded.images[0].boxes == [Box(1, 2, 3, 4, 0.5)]
    assert loaded.meta == {"detector": "x"}


def test_manifest_load_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [{"file": "a.png"}]}')
    with pytest.raises(ValueError, match="broken.json"):
        Manifest.load(path)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        Manifest.load(tmp_path / "missing.json")


def write_manifest(path, boxes, kind="ground_truth"):
    import json

    path.write_text(json.dumps({"kind": kind, "root": ".", "images": [
        {"file": "a.png", "width": 50, "height": 40, "boxes": boxes}]}))
    return path


@pytest.mark.parametrize("box, message", [
    ([1, 2, 0, 5], "zero or negative size"),
    ([1, 2, 5, -3], "zero or negative size"),
    ([60, 2, 5, 5], "lies outside"),
    ([1, 2, 3], "not a valid record"),
    (["x", 2, 3, 4], "not a valid record"),
])
def test_bad_boxes_name_file_and_image(tmp_path, box, message):
    path = write_manifest(tmp_path / "gt.json", [box])
    with pytest.raises(ValueError, match=f"gt.json.*{message}"):
        Manifest.load(path)


def test_boxes_past_the_border_are_clipped_with_a_warning(tmp_path, caplog):
    path = write_manifest(tmp_path / "gt.json", [[40, 30, 20, 20]])
    assert Manifest.load(path).images[0].boxes == [Box(40, 30, 10, 10)]
    assert "clipped" in caplog.text and "a.png" in caplog.text
    detections = write_manifest(tmp_path / "det.json", [[40, 30, 20, 20, 0.5]], "detections")
    assert Manifest.load(detections).images[0].boxes == [Box(40, 30, 20, 20, 0.5)]


def test_overlap_matrix_is_one_for_nested_boxes():
    from pipeline.boxes import overlap_matrix

    big, small, apart = Box(0, 0, 100, 100), Box(10, 10, 20, 20), Box(200, 0, 10, 10)
    assert overlap_matrix([big], [small, apart]).tolist() == [[1.0, 0.0]]
    assert overlap_matrix([Box(0, 0, 10, 10)], [Box(5, 0, 20, 10)])[0, 0] == pytest.approx(0.5)


def test_edge_offsets_known_values_and_refine_inverts_them():
    """Offsets are edge differences in window widths/heights; refining undoes them."""
    from pipeline.boxes import edge_offsets, refine_boxes

    windows = np.array([[10.0, 20.0, 40.0, 20.0]])
    faces = np.array([[14.0, 18.0, 32.0, 26.0]])   # left +4, top -2, right -4, bottom +4
    np.testing.assert_allclose(edge_offsets(windows, faces), [[0.1, -0.1, -0.1, 0.2]])
    rng = np.random.default_rng(0)
    windows = np.c_[rng.uniform(-50, 50, (20, 2)), rng.uniform(5, 80, (20, 2))]
    faces = np.c_[rng.uniform(-50, 50, (20, 2)), rng.uniform(5, 80, (20, 2))]
    np.testing.assert_allclose(refine_boxes(windows, edge_offsets(windows, faces)), faces)
    np.testing.assert_allclose(refine_boxes(windows, np.zeros((20, 4))), windows)

import cv2
import numpy as np
import pytest

from pipeline.io import atomic_open, read_gray, read_json, write_image, write_json


def test_read_gray_handles_depths_and_channels(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    cases = {
        "gray.png": gray,
        "rgb.png": np.dstack([gray] * 3),
        "rgba.png": np.dstack([gray] * 3 + [np.full_like(gray, 255)]),
        "deep.png": gray.astype(np.uint16) * 257,
    }
    for name, image in cases.items():
        cv2.imwrite(str(tmp_path / name), image)
        out = read_gray(tmp_path / name)
        assert out.dtype == np.uint8 and out.shape == (8, 8)
        assert np.abs(out.astype(int) - gray).max() <= 1, name


def test_read_gray_errors_name_the_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png: image file is empty"):
        read_gray(tmp_path / "empty.png")
    cv2.imwrite(str(tmp_path / "ok.png"), np.zeros((20, 20), np.uint8))
    (tmp_path / "cut.png").write_bytes((tmp_path / "ok.png").read_bytes()[:30])
    with pytest.raises(ValueError, match="cut.png: not a decodable image"):
        read_gray(tmp_path / "cut.png")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt"):
        read_gray(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="gone.png"):
        read_gray(tmp_path / "gone.png")


def test_atomic_write_leaves_no_half_file(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write('{"a": 2, "trunc')
        raise RuntimeError("killed mid-write")
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_write_image_round_trip(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (10, 12), dtype=np.uint8)
    write_image(tmp_path / "sub" / "x.png", image)
    assert np.array_equal(read_gray(tmp_path / "sub" / "x.png"), image)


def test_read_json_names_the_file(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        read_json(tmp_path / "bad.json")


def test_windows_are_enlarged_smoothly_and_shrunk_by_area():
    """A window enlarged for a net is interpolated, not made of repeated pixels (OpenCV's area
    resampling at 2x repeats each pixel in a 2x2 block); a shrunk one is area-averaged, so
    its mean grey level is kept. crop_windows resamples this way too."""
    from pipeline.io import resize_image
    from pipeline.models.cnn_scoring import crop_windows

    patch = np.random.default_rng(0).integers(0, 256, (24, 24)).astype(np.uint8)

    def repeated_neighbours(image: np.ndarray) -> float:
        return float(np.mean(image[:, 1:] == image[:, :-1]))

    blocky = cv2.resize(patch, (48, 48), interpolation=cv2.INTER_AREA)
    assert repeated_neighbours(blocky) >= 0.5  # what the helper avoids
    enlarged = resize_image(patch, (48, 48))
    assert repeated_neighbours(enlarged) < 0.1
    np.testing.assert_array_equal(enlarged, cv2.resize(patch, (48, 48),
                                                       interpolation=cv2.INTER_LINEAR))
    shrunk = resize_image(patch, (12, 12))
    np.testing.assert_allclose(shrunk, patch.reshape(12, 2, 12, 2).mean(axis=(1, 3)),
                               atol=0.5 + 1e-9)  # 2x2 means, rounded
    image = np.zeros((60, 60), np.uint8)
    image[10:34, 20:44] = patch
    np.testing.assert_array_equal(crop_windows(image, np.array([[20.0, 10, 24, 24]]), 48)[0],
                                  enlarged)

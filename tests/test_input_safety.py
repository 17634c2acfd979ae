"""Nothing the user owns is written, one record per image and one box per face, images read
as a viewer shows them, and messages that name the user's file (issue 26's cases, one test or
more each). The configuration's cases are in tests/test_config_limits.py."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.boxes import Box, ImageRecord, Manifest
from pipeline.data.datasets import build_dataset, dataset_inputs
from pipeline.data.formats import AnnotationError
from pipeline.data.variants import make_variant
from pipeline.evaluation.metrics import evaluate
from pipeline.io import read_gray

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "original": {"kind": "original"},
    "shadow": {"kind": "shadow", "seed": 1, "strength": 0.75, "softness": 0.08, "offset": 0.2},
    "cartoon": {"kind": "cartoon", "seed": 2, "smoothing_passes": 1, "levels": 6,
                "outline_low": 40, "outline_high": 100, "outline_value": 25},
}
BOX = (30, 40, 90, 100)  # x_min, y_min, x_max, y_max of the one face in every image


def colour_photo(path: Path, seed: int) -> None:
    """A 160x120 colour JPEG of noise (each file different)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(path), image)


def file_digests(folder: Path, skip: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` except those under ``skip``; symlinks by target
    name."""
    digests = {}
    for path in sorted(folder.rglob("*")):
        if skip in path.parents or path == skip:
            continue
        if path.is_symlink():
            digests[str(path)] = "-> " + os.readlink(path)
        elif path.is_file():
            digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def write_annotations(fmt: str, folder: Path, names: list[str]) -> Path:
    """One face box (BOX) per named image, in ``fmt``; the annotation file's path."""
    x1, y1, x2, y2 = BOX
    if fmt == "box_list":
        path = folder / "faces.txt"
        path.write_text("".join(f"{n} {x1} {y1} {x2} {y2}\n" for n in names))
    elif fmt == "dlib_xml":
        path = folder / "faces.xml"
        path.write_text("<dataset><images>" + "".join(
            f"<image file='{n}'><box top='{y1}' left='{x1}' width='{x2 - x1}' "
            f"height='{y2 - y1}'/></image>" for n in names) + "</images></dataset>")
    elif fmt == "fddb":  # names without the .jpg that FDDB appends; an ellipse inside BOX
        path = folder / "faces.txt"
        path.write_text("".join(f"{n.removesuffix('.jpg')}\n1\n{(y2 - y1) / 2} "
                                f"{(x2 - x1) / 2} 0 {(x1 + x2) / 2} {(y1 + y2) / 2} 1\n"
                                for n in names))
    elif fmt == "wider":
        path = folder / "faces.txt"
        path.write_text("".join(f"{n}\n1\n{x1} {y1} {x2 - x1} {y2 - y1} 0 0 0 0 0 0\n"
                                for n in names))
    else:
        path = folder / "faces.json"
        path.write_text(json.dumps({
            "images": [{"id": i, "file_name": n, "width": 160, "height": 120}
                       for i, n in enumerate(names)],
            "annotations": [{"id": i + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                             "bbox": [x1, y1, x2 - x1, y2 - y1]} for i in range(len(names))],
            "categories": [{"id": 1, "name": "face"}]}))
    return path


def annotated(fmt: str, root: Path, annotations: Path | list[Path], **extra: object) -> dict:
    files = annotations if isinstance(annotations, list) else [annotations]
    return {"kind": "annotated", "format": fmt, "root": str(root),
            "sources": [{"annotations": str(f)} for f in files], **extra}


def perfect_ap(truth: Manifest) -> float:
    """AP of detections equal to the ground truth (1.0 unless the truth is inconsistent)."""
    found = Manifest("detections", truth.root, [
        ImageRecord(r.file, r.width, r.height, [Box(b.x, b.y, b.w, b.h, 0.9) for b in r.boxes])
        for r in truth.images])
    return evaluate(truth, found, 0.5, [0])["average_precision"]


# 1. The pipeline writes only under its results folder -----------------------------------

@pytest.mark.parametrize("fmt", ["box_list", "dlib_xml", "fddb", "wider", "coco"])
def test_absolute_climbing_and_linked_image_paths_write_nothing_outside_results(tmp_path, fmt):
    """An annotation naming its images by absolute path, by ``../`` and through a symlink:
    the images are read, every variant is written under results/, no other byte changes."""
    data, outside = tmp_path / "data", tmp_path / "elsewhere"
    colour_photo(outside / "photo.jpg", 0)
    colour_photo(outside / "climbed.jpg", 1)
    colour_photo(outside / "target.jpg", 2)
    colour_photo(data / "inside.jpg", 3)
    (data / "linked.jpg").symlink_to(outside / "target.jpg")
    names = [str(outside / "photo.jpg"), "../elsewhere/climbed.jpg", "linked.jpg", "inside.jpg"]
    annotation = write_annotations(fmt, data, names)
    before = file_digests(tmp_path, tmp_path / "results")

    results = tmp_path / "results"
    build_dataset(annotated(fmt, data, annotation), results / "data/set")
    truth = Manifest.load(results / "data/set/test.json")
    assert len(truth.images) == 4 and truth.n_boxes == 4
    for name, settings in VARIANTS.items():
        variant = make_variant(truth, settings, results / "variants/set" / name, name)
        written = sorted((results / "variants/set" / name / "images").iterdir())
        assert [p.name for p in written] == sorted(r.file for r in variant.images)
        assert len(written) == 4 and all(p.parent.parent.parent.parent == results / "variants"
                                         for p in written)
        assert [r.attributes["source_file"] for r in variant.images] == [
            r.file for r in truth.images]
    assert file_digests(tmp_path, results) == before  # nothing outside results/ changed
    original = Manifest.load(results / "variants/set/original/manifest.json")
    for source, copy in zip(truth.images, original.images, strict=True):
        assert np.array_equal(read_gray(original.image_path(copy)),
                              read_gray(truth.image_path(source)))


def test_image_names_keep_no_folder_and_stay_unique():
    from pipeline.paths import image_name

    assert image_name(7, "/data/elsewhere/photo.png") == "00007_photo.png"
    assert image_name(0, "../../etc/passwd") == "00000_passwd.png"
    assert image_name(1, "a b/..") == "00001_image.png"
    assert image_name(2, "x/ü&ß.tif") == "00002_image.png"
    names = {image_name(i, f) for i, f in enumerate(["a.png", "a.jpg", "d/a.png", "a.png"])}
    assert len(names) == 4 and all("/" not in n and not n.startswith(".") for n in names)


# 2. Inputs are inputs ----------------------------------------------------------------------

def test_a_build_declares_every_file_it_reads(tmp_path):
    data = tmp_path / "data"
    for k in range(3):
        colour_photo(data / "images" / f"{k}.jpg", k)
    annotation = write_annotations("box_list", data, ["0.jpg", "1.jpg"])
    (data / "list.txt").write_text("2.jpg\n")
    settings = annotated("box_list", data / "images", [])
    settings["sources"] = [{"annotations": str(annotation), "images": str(data / "images"),
                            "image_list": str(data / "list.txt")}]
    assert sorted(dataset_inputs(settings)) == sorted(
        [str(annotation), str(data / "list.txt")]
        + [str(data / "images" / f"{k}.jpg") for k in range(3)])
    (data / "images/notes.txt").write_text("not an image")
    folders = {"kind": "face_folders", "faces": str(data / "images"), "scenes": str(data)}
    inputs = dataset_inputs(folders)
    assert str(data / "images/notes.txt") not in inputs
    assert inputs.count(str(data / "images/0.jpg")) == 2  # a face and, under data/, a scene


# 3. and 4. One record per image, one box per face -----------------------------------------

def test_same_stem_different_suffix_stays_two_images(tmp_path):
    """``a.png`` and ``a.jpg`` were written to one variant file with two records (AP 0.25)."""
    data = tmp_path / "data"
    colour_photo(data / "a.jpg", 0)
    cv2.imwrite(str(data / "a.png"), np.full((120, 160), 90, np.uint8))
    annotation = write_annotations("box_list", data, ["a.png", "a.jpg"])
    build_dataset(annotated("box_list", data, annotation), tmp_path / "results/data")
    truth = Manifest.load(tmp_path / "results/data/test.json")
    variant = make_variant(truth, VARIANTS["shadow"], tmp_path / "results/shadow", "shadow")
    assert len({r.file for r in variant.images}) == 2
    assert len(list((tmp_path / "results/shadow/images").iterdir())) == 2
    assert perfect_ap(variant) == 1.0


def test_yale_b_files_of_one_name_in_two_folders_stay_two_images(tmp_path, caplog):
    name = "yaleB01_P00A+000E+00.pgm"
    for k, folder in enumerate(("session1", "session2")):
        (tmp_path / "yale" / folder).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "yale" / folder / name), np.full((192, 168), 100 + k,
                                                                     np.uint8))
    cv2.imwrite(str(tmp_path / "yale/session2/yaleB01_P00A+010E+00.pgm"),
                np.full((192, 168), 100, np.uint8))  # a copy of session1's crop
    settings = {"kind": "yale_b", "folder": str(tmp_path / "yale"), "seed": 0,
                "canvas_size": [320, 240], "face_size": [80, 120], "angle_bins": [0, 90]}
    with caplog.at_level(logging.WARNING):
        build_dataset(settings, tmp_path / "out")
    truth = Manifest.load(tmp_path / "out/test.json")
    assert len(truth.images) == 3
    assert sorted(p.name for p in (tmp_path / "out/test").iterdir()) == sorted(
        r.file for r in truth.images)
    assert "1 images are byte-identical copies" in caplog.text


def test_a_duplicated_annotation_line_is_one_face(tmp_path, caplog):
    data = tmp_path / "data"
    colour_photo(data / "a.jpg", 0)
    annotation = write_annotations("box_list", data, ["a.jpg", "a.jpg"])
    with caplog.at_level(logging.WARNING):
        build_dataset(annotated("box_list", data, annotation), tmp_path / "out")
    truth = Manifest.load(tmp_path / "out/test.json")
    assert truth.n_boxes == 1 and perfect_ap(truth) == 1.0
    assert "listed more than once; counted once" in caplog.text
    assert truth.images[0].attributes["labels"] == [None]  # per-box attributes follow


def test_an_image_in_two_annotation_files_is_one_record(tmp_path, caplog):
    from pipeline.detection.detectors import merge_shards
    from pipeline.io import write_json

    data = tmp_path / "data"
    for name in ("a.jpg", "b.jpg"):
        colour_photo(data / name, len(name) + ord(name[0]))
    first = write_annotations("box_list", data, ["a.jpg", "b.jpg"])
    second = first.rename(data / "first.txt").with_name("second.txt")
    second.write_text(f"./a.jpg {' '.join(map(str, BOX))}\n")
    with caplog.at_level(logging.WARNING):
        build_dataset(annotated("box_list", data, [data / "first.txt", second]),
                      tmp_path / "out")
    truth = Manifest.load(tmp_path / "out/test.json")
    assert [r.file for r in truth.images] == ["a.jpg", "b.jpg"] and truth.n_boxes == 2
    assert "annotated twice with the same boxes" in caplog.text
    write_json(tmp_path / "timing.json", {"threads": 1,
                                          "seconds": {r.file: 0.1 for r in truth.images}})
    Manifest("detections", truth.root, truth.images).save(tmp_path / "shard0.json")
    merge_shards(tmp_path / "out/test.json", [str(tmp_path / "shard0.json")],
                 [str(tmp_path / "timing.json")], tmp_path / "merged.json",
                 tmp_path / "merged_timing.json", {})  # one shard: no "in more than one"

    second.write_text(f"./a.jpg 0 0 20 20\n{' '.join(['a.jpg', *map(str, BOX)])}\n")
    with pytest.raises(AnnotationError, match=r"a.jpg: one image annotated twice with "
                       r"different boxes: as 'a.jpg' in .*first.txt and as './a.jpg' in "
                       r".*second.txt"):
        build_dataset(annotated("box_list", data, [data / "first.txt", second]),
                      tmp_path / "out2")


def test_a_manifest_lists_each_image_once(tmp_path):
    record = {"file": "a.png", "width": 10, "height": 10, "boxes": []}
    (tmp_path / "m.json").write_text(json.dumps({"kind": "ground_truth", "root": ".",
                                                 "images": [record, record]}))
    with pytest.raises(ValueError, match=r"m.json: image 'a.png' is listed more than once"):
        Manifest.load(tmp_path / "m.json")


# 5. Images read as a viewer shows them ----------------------------------------------------

def test_exif_orientation_is_applied_as_a_viewer_does(tmp_path):
    """A phone JPEG stored landscape with EXIF orientation 6 (rotate 90 degrees clockwise)
    is read portrait, pixel for pixel as Pillow's exif_transpose shows it."""
    from PIL import Image, ImageOps

    stored = np.zeros((60, 100), np.uint8)
    stored[:, :30] = 255  # bright band on the stored image's left
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    read = read_gray(tmp_path / "phone.jpg")
    shown = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "phone.jpg")).convert("L"))
    assert read.shape == shown.shape == (100, 60)
    assert np.abs(read.astype(int) - shown.astype(int)).max() <= 2
    assert read[:30].mean() > 200 and read[40:].mean() < 50  # the band is now at the top


def test_a_float_image_file_is_refused_naming_it(tmp_path):
    """A float32 TIFF in 0-255 was read as all white."""
    path = tmp_path / "scan.tiff"
    assert cv2.imwrite(str(path), np.full((20, 30), 200.0, np.float32))
    with pytest.raises(ValueError, match=r"scan.tiff: float32 pixels \(values 200 to 200\) "
                       r"have no known intensity range"):
        read_gray(path)


def test_a_float_array_outside_zero_one_is_refused():
    from pipeline.io import to_gray_uint8

    assert to_gray_uint8(np.full((2, 2), 0.5)).tolist() == [[128, 128], [128, 128]]
    with pytest.raises(ValueError, match="must hold values in \\[0, 1\\], not 0 to 200"):
        to_gray_uint8(np.array([[0.0, 200.0]]))


# 7. Messages name the user's file and line --------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_box_numbers_name_the_line_and_leave_no_output(tmp_path, value):
    data = tmp_path / "data"
    colour_photo(data / "a.jpg", 0)
    (data / "faces.txt").write_text(f"a.jpg 30 40 90 100\na.jpg 10 {value} 50 60\n")
    with pytest.raises(AnnotationError, match=rf"faces.txt:2: expected finite numbers, got "
                       rf"'10 {value} 50 60'"):
        build_dataset(annotated("box_list", data, data / "faces.txt"), tmp_path / "out")
    assert not (tmp_path / "out").exists() and list(tmp_path.glob(".*")) == []


def test_non_finite_numbers_in_a_manifest_are_refused(tmp_path):
    record = {"file": "a.png", "width": 10, "height": 10, "boxes": [[1, 1, 5, 5, 0.5]]}
    (tmp_path / "m.json").write_text(json.dumps({"kind": "detections", "root": ".",
                                                 "images": [record]}).replace("0.5", "NaN"))
    with pytest.raises(ValueError, match=r"m.json: a.png: box 0 .* not finite"):
        Manifest.load(tmp_path / "m.json")


def test_dlib_xml_non_finite_box_names_the_image(tmp_path):
    from pipeline.data.formats_dlib_coco import read_dlib_xml

    colour_photo(tmp_path / "a.jpg", 0)
    (tmp_path / "f.xml").write_text("<dataset><images><image file='a.jpg'><box top='nan' "
                                    "left='1' width='5' height='5'/></image></images></dataset>")
    with pytest.raises(AnnotationError, match=r"f.xml: image a.jpg: expected finite numbers"):
        read_dlib_xml(tmp_path / "f.xml", tmp_path)


def test_byte_order_marks_are_stripped(tmp_path):
    """An annotation file saved by a Windows editor starts with a UTF-8 BOM: the first image
    was 'not found'."""
    colour_photo(tmp_path / "a.jpg", 0)
    (tmp_path / "faces.txt").write_text("\ufeffa.jpg 30 40 90 100\n", encoding="utf-8")
    build_dataset(annotated("box_list", tmp_path, tmp_path / "faces.txt"), tmp_path / "out")
    assert Manifest.load(tmp_path / "out/test.json").images[0].file == "a.jpg"
    write_annotations("coco", tmp_path, ["a.jpg"])
    text = (tmp_path / "faces.json").read_text()
    (tmp_path / "faces.json").write_text("\ufeff" + text, encoding="utf-8")
    build_dataset(annotated("coco", tmp_path, tmp_path / "faces.json"), tmp_path / "coco")
    assert Manifest.load(tmp_path / "coco/test.json").n_boxes == 1


# 8. A stopped stage leaves nothing half-written ------------------------------------------

def test_sigterm_leaves_no_hidden_temporary_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    records = []
    for k in range(40):
        cv2.imwrite(str(folder / f"{k}.png"), np.full((1200, 1600), k, np.uint8))
        records.append(ImageRecord(f"{k}.png", 1600, 1200, [Box(100, 100, 400, 400)]))
    Manifest("ground_truth", folder, records).save(tmp_path / "test.json")
    out = tmp_path / "results"
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "make-variant", "--manifest",
         str(tmp_path / "test.json"), "--name", "cartoon", "--settings",
         json.dumps(dict(VARIANTS["cartoon"], smoothing_passes=3)), "--out", str(out)],
        cwd=REPO, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any(p.is_file() for p in out.glob(".images.*.tmp/*")):  # a first image written
        assert process.poll() is None and time.monotonic() < deadline, "finished too soon"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert not out.exists() or list(out.iterdir()) == []


def test_a_failed_build_keeps_the_previous_outputs_whole(tmp_path):
    """Outputs are staged: a build that fails half-way leaves the folder as it was."""
    data = tmp_path / "data"
    colour_photo(data / "a.jpg", 0)
    (data / "faces.txt").write_text("a.jpg 30 40 90 100\n")
    settings = annotated("box_list", data, data / "faces.txt")
    build_dataset(settings, tmp_path / "out")
    (tmp_path / "out/notes.md").write_text("mine")
    before = file_digests(tmp_path / "out", tmp_path / "none")
    (data / "faces.txt").write_text("a.jpg 30 40 90 100\na.jpg 500 500 600 600\n")
    with pytest.raises(ValueError, match=r"a.jpg: box 1 .* lies outside the 160x120 image"):
        build_dataset(settings, tmp_path / "out")
    assert file_digests(tmp_path / "out", tmp_path / "none") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out"]



# Found by a probe after the fix: a user's --out folder, COCO ids and sizes, landmarks -------

def test_a_users_folder_as_out_is_refused_and_left_whole(tmp_path):
    """``--out`` pointed at the user's data folder: its ``test/`` and ``images/`` sub-folders
    were replaced by the stage's outputs."""
    data = tmp_path / "mydata"
    colour_photo(data / "images/a.jpg", 0)
    (data / "test").mkdir()
    (data / "test/keep.txt").write_text("mine")
    annotation = write_annotations("box_list", data, ["a.jpg"])
    before = file_digests(tmp_path, tmp_path / "none")
    settings = annotated("box_list", data / "images", annotation)
    with pytest.raises(FileExistsError, match=r"mydata: this folder holds files the pipeline "
                       r"did not write"):
        build_dataset(settings, data)
    build_dataset(settings, tmp_path / "results/data")
    truth = Manifest.load(tmp_path / "results/data/test.json")
    with pytest.raises(FileExistsError, match="mydata: this folder holds files"):
        make_variant(truth, VARIANTS["shadow"], data, "shadow")
    assert file_digests(tmp_path, tmp_path / "results") == before
    build_dataset(settings, tmp_path / "results/data")  # its own folder: rebuilt in place
    make_variant(truth, VARIANTS["shadow"], tmp_path / "results/shadow", "shadow")
    make_variant(truth, VARIANTS["shadow"], tmp_path / "results/shadow", "shadow")


def test_coco_image_ids_and_sizes_are_checked(tmp_path):
    from pipeline.data.formats_dlib_coco import read_coco

    colour_photo(tmp_path / "a.jpg", 0)
    colour_photo(tmp_path / "b.jpg", 1)
    images = [{"id": 1, "file_name": "a.jpg", "width": 160, "height": 120},
              {"id": 1, "file_name": "b.jpg", "width": 160, "height": 120}]
    face = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50]}
    coco = {"images": images, "annotations": [face], "categories": [{"id": 1, "name": "face"}]}
    (tmp_path / "dup.json").write_text(json.dumps(coco))
    with pytest.raises(AnnotationError, match=r"dup.json: image id 1 is used twice, for "
                       r"'a.jpg' and 'b.jpg'"):
        read_coco(tmp_path / "dup.json", tmp_path)
    images[1]["id"] = 2
    face["image_id"] = 7
    (tmp_path / "lost.json").write_text(json.dumps(coco))
    with pytest.raises(AnnotationError, match=r"lost.json: annotations\[0\]: image_id 7 is "
                       r"not the id of an image"):
        read_coco(tmp_path / "lost.json", tmp_path)
    face["image_id"], images[1]["width"], images[1]["height"] = 2, 2000, 2000
    (tmp_path / "size.json").write_text(json.dumps(coco))
    with pytest.raises(AnnotationError, match=r"size.json: image b.jpg is 160x120 pixels, the "
                       r"file gives 2000x2000"):
        read_coco(tmp_path / "size.json", tmp_path)
    images[1].update(width=160, height=120, file_name="broken.jpg")
    (tmp_path / "broken.jpg").write_text("not an image")
    (tmp_path / "broken.json").write_text(json.dumps(coco))
    with pytest.raises(AnnotationError, match=r"broken.json: image .*broken.jpg is not a "
                       r"readable image"):
        read_coco(tmp_path / "broken.json", tmp_path)


def test_an_image_folder_outside_the_root_is_read_by_absolute_path(tmp_path):
    colour_photo(tmp_path / "other/a.jpg", 0)
    annotation = write_annotations("box_list", tmp_path, ["a.jpg"])
    (tmp_path / "root").mkdir()
    settings = {"kind": "annotated", "format": "box_list", "root": str(tmp_path / "root"),
                "sources": [{"annotations": str(annotation),
                             "images": str(tmp_path / "other")}]}
    build_dataset(settings, tmp_path / "out")
    (record,) = Manifest.load(tmp_path / "out/test.json").images
    assert record.file == str((tmp_path / "other/a.jpg").resolve()) and len(record.boxes) == 1
    assert dataset_inputs(settings)[-1] == record.file


def test_landmarks_are_one_set_per_face_whatever_the_spelling(tmp_path, caplog):
    """A duplicated landmark line left its face without landmarks (scored by IoU instead)."""
    from pipeline.data.formats_box_list import attach_landmarks, read_landmarks

    points = " ".join(["20 50", "40 50", "30 60", "22 70", "30 72", "38 70"])
    (tmp_path / "marks.txt").write_text(f"a.jpg {points}\n./a.jpg {points}\n")
    record = ImageRecord("a.jpg", 160, 120, [Box(10, 40, 40, 40)])
    with caplog.at_level(logging.WARNING):
        attach_landmarks([record], read_landmarks(tmp_path / "marks.txt"), "marks.txt")
    assert record.attributes["landmarks"] == [[float(v) for v in points.split()]]
    assert "marks.txt:2: landmarks listed more than once" in caplog.text

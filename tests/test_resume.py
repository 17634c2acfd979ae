"""The one resume-state loader both trainers use (pipeline/training/resume.py)."""

from __future__ import annotations

import json
import logging

from pipeline.training.resume import load_resume_state, resume_key, resume_path


def _read(path):
    return json.loads(path.read_text())


def test_resume_file_sits_hidden_beside_the_output(tmp_path):
    assert resume_path(tmp_path / "models" / "cnn.pt") == tmp_path / "models" / ".cnn.pt.resume"


def test_key_changes_with_the_settings_and_with_any_input_byte(tmp_path):
    data = tmp_path / "train.npz"
    data.write_bytes(b"abc")
    key = resume_key({"seed": 1}, data)
    assert key == resume_key({"seed": 1}, data)
    assert key != resume_key({"seed": 2}, data)
    data.write_bytes(b"abd")
    assert key != resume_key({"seed": 1}, data)


def test_state_is_used_only_when_its_key_matches(tmp_path, caplog):
    path = tmp_path / ".m.resume"
    assert load_resume_state(path, "k", _read) is None  # no file: a fresh start, no warning
    path.write_text(json.dumps({"key": "k", "stage": 3}))
    assert load_resume_state(path, "k", _read) == {"key": "k", "stage": 3}
    with caplog.at_level(logging.WARNING):
        assert load_resume_state(path, "other", _read) is None
    assert "other settings or inputs" in caplog.text


def test_unreadable_state_costs_a_restart_with_a_warning(tmp_path, caplog):
    path = tmp_path / ".m.resume"
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert load_resume_state(path, "k", _read) is None
    assert "unreadable resume state" in caplog.text and str(path) in caplog.text

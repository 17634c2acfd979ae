import cv2
import numpy as np
import pytest
import torch

from pipeline.boxes import iou_matrix
from pipeline.data.datasets import lfw_patches
from pipeline.models.cnn import load_checkpoint
from pipeline.training.cnn_samples import mine_hard_negatives
from pipeline.training.samples import (
    MINING_STREAM,
    PART_FACE_IOU,
    POSITIVE_IOU,
    Scene,
    augment_faces,
    cascade_positives,
    jitter_faces,
    photometric,
    random_windows,
    scan_scenes,
    scene_faces,
    scene_positives,
)
from pipeline.training.train_cnn import train_cnn


def test_augmented_faces_stay_faces():
    faces, _ = lfw_patches()
    rng = np.random.default_rng(0)
    out = augment_faces(faces[:3], copies=5, window=32, rng=rng)
    assert out.shape == (15, 32, 32) and out.dtype == np.uint8
    import cv2

    reference = cv2.resize(faces[0], (32, 32)).astype(float)
    correlations = [abs(np.corrcoef(reference.ravel(), o.astype(float).ravel())[0, 1])
                    for o in out[:5]]
    assert np.median(correlations) > 0.5  # still the same face after flips and small warps
    assert len({o.tobytes() for o in out}) == 15  # and every copy differs


def test_jittered_face_boxes_are_where_the_faces_land():
    """Known answer: a crop holding a bright disk at its centre (radius a quarter of the
    side); in every variant the disk's centroid is the label box's centre and its radius a
    quarter of the box side, whatever the mirror, rotation, scale, shift and photometry."""
    crop = np.zeros((36, 36), np.uint8)
    ys, xs = np.mgrid[0:36, 0:36]
    crop[(xs - 17.5) ** 2 + (ys - 17.5) ** 2 <= 9 ** 2] = 255
    patches, boxes = jitter_faces(crop[None], 30, 32, np.random.default_rng(0),
                                  scale=(0.7, 1.3), shift=0.2)
    assert patches.shape == (30, 32, 32) and boxes.shape == (30, 4)
    gy, gx = np.mgrid[0:32, 0:32] + 0.5
    for patch, (x, y, w, h) in zip(patches, boxes, strict=True):
        disk = patch > (int(patch.min()) + int(patch.max())) / 2
        assert gx[disk].mean() == pytest.approx(x + w / 2, abs=0.5)
        assert gy[disk].mean() == pytest.approx(y + h / 2, abs=0.5)
        assert np.sqrt(disk.sum() / np.pi) == pytest.approx(w / 4, rel=0.1)
        assert w == h


def test_positives_and_scene_faces_have_their_iou_labels():
    """The default positives' boxes overlap their window by IoU >= 0.65 (MTCNN's positive);
    the scene faces of box regression all reach IoU 0.4, span both labels, come from their
    own stream (the positives' generator is untouched) and nearly all copies are found."""
    faces = lfw_patches()[0][:20]
    _, boxes = jitter_faces(faces, 10, 32, np.random.default_rng(0))
    whole = np.array([[0.0, 0.0, 32.0, 32.0]])
    assert iou_matrix(boxes, whole).min() >= POSITIVE_IOU
    settings = {"seed": 0}
    scenes = [Scene(np.random.default_rng(1).integers(0, 256, (80, 90)).astype(np.uint8),
                    np.zeros((0, 4)))]
    patches, scene_boxes = scene_faces(faces, scenes, settings, 32, 5, round_index=1)
    iou = iou_matrix(scene_boxes, whole)[:, 0]
    assert len(patches) >= 95 and iou.min() >= PART_FACE_IOU[0]
    assert 0.2 < np.mean(iou < POSITIVE_IOU) < 0.9
    assert np.array_equal(scene_positives(scene_boxes, 32), iou >= POSITIVE_IOU)
    again, _ = scene_faces(faces, scenes, settings, 32, 5, round_index=1)
    other, _ = scene_faces(faces, scenes, settings, 32, 5, round_index=2)
    assert np.array_equal(patches, again) and not np.array_equal(patches, other[:len(patches)])


def test_matched_trainers_receive_the_same_positive_arrays():
    """A cascade and a CNN trained with one seed, the same copies and the same scene-blended
    faces get the same positives (at one window size: identical arrays) in every CNN round
    when the CNN does not redraw them; redrawn, later rounds differ."""
    from pipeline.training.cnn_samples import round_faces

    faces = lfw_patches()[0][:12]
    scenes = [Scene(np.random.default_rng(1).integers(0, 256, (90, 120)).astype(np.uint8),
                    np.zeros((0, 4)))]
    cascade = {"seed": 3, "positives_per_face": 3, "scene_faces": {"faces_per_face": 2}}
    cnn = {"seed": 3, "positives_per_face": 3, "redraw_positives": False,
           "box_regression": {"faces_per_face": 2, "weight": 0.5}}
    pool = cascade_positives(faces, scenes, cascade, 32)
    assert len(pool) > len(faces) * 3  # the scene faces at IoU >= 0.65 are added
    for round_index in (0, 2):
        positives, parts, _ = round_faces(faces, scenes, cnn, 32, round_index)
        assert np.array_equal(positives, pool) and len(parts) > 0
    redrawn = round_faces(faces, scenes, {**cnn, "redraw_positives": True}, 32, 2)[0]
    assert not np.array_equal(redrawn[:len(faces) * 3], pool[:len(faces) * 3])
    plain = cascade_positives(faces, scenes, {"seed": 3, "positives_per_face": 3}, 32)
    assert np.array_equal(plain, pool[:len(plain)])


def test_a_24_and_a_32_px_trainer_get_the_same_scene_faces_at_two_resolutions():
    """The shipped arms pair a 24 px cascade with a 32 px CNN: the scene-blended faces are
    the same draws (boxes equal relative to the window, the 32 px patches shrunk to 24 px
    close to the 24 px ones), also where the scenes hold faces to avoid."""
    faces = lfw_patches()[0][:10]
    y, x = np.mgrid[:90, :120]
    image = (127 + 120 * np.sin(x / 7.0) * np.cos(y / 11.0)).astype(np.uint8)  # no two alike
    scenes = [Scene(image, np.array([[10.0, 10.0, 30.0, 30.0]]))]
    settings = {"seed": 5}
    small, small_boxes = scene_faces(faces, scenes, settings, 24, 3)
    large, large_boxes = scene_faces(faces, scenes, settings, 32, 3)
    assert len(small) == len(large) > 0
    np.testing.assert_allclose(small_boxes / 24, large_boxes / 32, atol=1e-9)
    shrunk = np.array([cv2.resize(p, (24, 24), interpolation=cv2.INTER_AREA) for p in large])
    same = np.abs(shrunk.astype(int) - small).mean()
    other = np.abs(shrunk.astype(int) - np.roll(small, 1, axis=0)).mean()
    assert same < 6 and same < other / 3, (same, other)
    assert np.array_equal(scene_positives(small_boxes, 24), scene_positives(large_boxes, 32))


def test_photometric_changes_brightness_and_keeps_range():
    rng = np.random.default_rng(1)
    patch = np.full((8, 8), 120, np.uint8)
    patch[:4] = 60
    means = [photometric(patch, rng).mean() for _ in range(50)]
    assert np.std(means) > 5


def test_random_windows_come_from_the_images():
    image = np.zeros((100, 100), np.uint8)
    out = random_windows([Scene(image, np.zeros((0, 4)))], 10, 32, 24, np.random.default_rng(0))
    assert out.shape == (10, 32, 32) and out.max() <= 40  # black plus brightness jitter


def test_random_windows_avoid_faces():
    """A white face box in a black scene: no sampled window overlaps it much."""
    image = np.zeros((120, 120), np.uint8)
    image[40:80, 40:80] = 255
    scene = Scene(image, np.array([[40.0, 40.0, 40.0, 40.0]]))
    out = random_windows([scene], 200, 32, 24, np.random.default_rng(0))
    assert (out > 200).mean(axis=(1, 2)).max() < 0.5


def test_training_history(tiny_model):
    _, payload = load_checkpoint(tiny_model)
    history = payload["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_accuracy"] > 0.9
    assert {h["round"] for h in history} == {0, 1}


def test_training_is_deterministic_on_the_cpu(tiny_config, tiny_dataset, tmp_path):
    """The same seed and thread count give bit-identical weights; another seed does not."""
    settings = dict(tiny_config["models"]["cnn"], seed=0, epochs=1, negatives_per_round=300)
    states = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train_cnn(dict(settings, seed=seed), tiny_dataset / "train.npz",
                  tiny_dataset / "train_backgrounds.json", tmp_path / f"{name}.pt")
        states.append(load_checkpoint(tmp_path / f"{name}.pt")[1]["state_dict"])
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key
    assert not torch.equal(states[0]["body.0.weight"], states[2]["body.0.weight"])


def test_training_log_is_not_redrawn_every_step(tiny_config, tiny_dataset, tmp_path, capsys):
    """Written to a file (stderr not a terminal), a round's progress bar is drawn when it
    opens and closes, not once per step as the running loss changes: logs stay small."""
    settings = dict(tiny_config["models"]["cnn"], seed=0, epochs=2, hard_negative_rounds=0,
                    negatives_per_round=600)
    history = train_cnn(settings, tiny_dataset / "train.npz",
                        tiny_dataset / "train_backgrounds.json", tmp_path / "m.pt")
    redraws = capsys.readouterr().err.count("\r")
    assert 0 < redraws <= 3 * len(history) + 2, redraws  # 34 when redrawn every step


def test_hard_negatives_are_high_scoring_windows(tiny_model):
    model, _ = load_checkpoint(tiny_model)
    rng = np.random.default_rng(0)
    noise = [Scene(rng.integers(0, 256, (120, 160), dtype=np.uint8), np.zeros((0, 4)))
             for _ in range(2)]
    mined = mine_hard_negatives(model, noise, 5, torch.device("cpu"))
    assert mined.shape[1:] == (32, 32) and len(mined) <= 5
    if len(mined):
        with torch.no_grad():
            probs = torch.sigmoid(model(torch.from_numpy(mined).float()[:, None])).reshape(-1)
        assert float(probs.min()) > 0.3  # re-cropped windows still look like faces to it


def test_scene_scan_stops_once_enough_is_found():
    """scan_scenes: every scene with min_scenes 0; else a seeded random order, stopped after
    min_scenes once the results count `wanted`, returned in scene order."""
    scenes = [Scene(np.full((4, 4), k, np.uint8), np.zeros((0, 4))) for k in range(10)]
    per_scene = [np.arange(k % 3) for k in range(10)]  # 0, 1 or 2 results per scene

    def scan(scene: Scene) -> np.ndarray:
        return per_scene[int(scene.image[0, 0])]

    assert list(scan_scenes(scenes, scan, 1, 0, seed=0, index=0)) == list(range(10))
    first = scan_scenes(scenes, scan, 3, 2, seed=0, index=1)
    assert first == scan_scenes(scenes, scan, 3, 2, seed=0, index=1)  # deterministic
    order = np.random.default_rng([0, MINING_STREAM, 1]).permutation(10)
    totals = np.cumsum([k % 3 for k in order])
    stop = next(n for n in range(2, 11) if totals[n - 1] >= 3)
    assert list(first) == sorted(int(k) for k in order[:stop])
    assert list(scan_scenes(scenes, scan, 100, 2, seed=0, index=1)) == list(range(10))
    orders = {tuple(scan_scenes(scenes, scan, 1, 1, seed=0, index=i)) for i in range(10)}
    assert len(orders) > 1  # each round or stage has its own order


def test_hard_negatives_from_a_scene_subset_are_its_best_windows(tiny_model):
    model, _ = load_checkpoint(tiny_model)
    import cv2

    faces, _ = lfw_patches()
    rng = np.random.default_rng(0)
    scenes = []
    for k in range(6):  # noise with an unannotated face: face-like windows to mine
        image = rng.integers(0, 256, (120, 160), dtype=np.uint8)
        image[30:78, 40:88] = cv2.resize(faces[k], (48, 48))
        scenes.append(Scene(image, np.zeros((0, 4))))
    subset = np.random.default_rng([2, MINING_STREAM, 1]).permutation(6)[:2]
    partial = mine_hard_negatives(model, scenes, 1, torch.device("cpu"), min_scenes=2,
                                  seed=2, round_index=1)
    expected = mine_hard_negatives(model, [scenes[i] for i in sorted(subset)], 1,
                                   torch.device("cpu"))
    assert len(partial) == 1 and np.array_equal(partial, expected)


class SimulatedKillError(Exception):
    pass


@pytest.mark.parametrize(("extra", "killed_after"), [
    ({}, (0, 1)),
    ({"box_regression": {"faces_per_face": 2, "weight": 0.5}}, (0, 0)),
    ({"early_stopping": {"patience": 1}}, (0, 0)),
])
def test_killed_training_resumes_to_the_same_weights(tiny_config, tiny_dataset, tmp_path,
                                                     extra, killed_after):
    """Stop after an epoch of round 0 (with box regression or early stopping: mid-round, so
    that its part faces and targets, or its best epoch's weights, come back from the saved
    state); rerun; weights equal an uninterrupted run."""
    from pipeline.training.resume import resume_path

    settings = dict(tiny_config["models"]["cnn"], seed=0, negatives_per_round=300, **extra)
    inputs = (tiny_dataset / "train.npz", tiny_dataset / "train_backgrounds.json")
    train_cnn(settings, *inputs, tmp_path / "straight.pt")

    def stop(round_index, epoch):
        if (round_index, epoch) == killed_after:
            raise SimulatedKillError

    out = tmp_path / "resumed.pt"
    with pytest.raises(SimulatedKillError):
        train_cnn(settings, *inputs, out, on_epoch_end=stop)
    assert not out.exists() and resume_path(out).exists()
    epochs_seen = []
    train_cnn(settings, *inputs, out, on_epoch_end=lambda r, e: epochs_seen.append((r, e)))
    all_epochs = [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert epochs_seen == all_epochs[all_epochs.index(killed_after) + 1:]  # none repeated
    assert not resume_path(out).exists()
    straight, resumed = load_checkpoint(tmp_path / "straight.pt")[1], load_checkpoint(out)[1]
    assert straight["history"] == resumed["history"]
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def _scripted_epochs(monkeypatch, losses: dict[int, list[float]]) -> None:
    """Replace the trainer's epoch by a script: epoch e of round r sets every weight to
    100 r + e and reports validation loss ``losses[r][e]``."""
    import pipeline.training.train_cnn as training

    def epoch(model, current, tensors, settings, device, generator, bar):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(100 * current.index + current.next_epoch)
        return {"round": current.index, "epoch": current.next_epoch, "train_loss": 0.0,
                "val_loss": losses[current.index][current.next_epoch], "val_accuracy": 0.5}

    monkeypatch.setattr(training, "run_epoch", epoch)


def test_early_stopping_ends_a_round_on_its_best_epoch(tiny_config, tiny_dataset, tmp_path,
                                                        monkeypatch):
    """Known answer: round 0's validation loss stops improving after epoch 1 (by more than
    min_delta 0.05: 0.78 is not enough), so with patience 2 it ends after epoch 3 and goes
    on from epoch 1's weights; round 1 improves to its last epoch and runs all six."""
    from pipeline.training.resume import resume_path

    _scripted_epochs(monkeypatch, {0: [1.0, 0.8, 0.9, 0.78, 0.5, 0.4],
                                   1: [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]})
    settings = dict(tiny_config["models"]["cnn"], seed=0, negatives_per_round=300, epochs=6,
                    hard_negative_rounds=1, early_stopping={"patience": 2, "min_delta": 0.05})
    inputs = (tiny_dataset / "train.npz", tiny_dataset / "train_backgrounds.json")
    out = tmp_path / "m.pt"
    weights_after: dict[tuple[int, int], float] = {}

    def saved_weight(round_index, epoch):
        state = torch.load(resume_path(out), weights_only=True)
        weights_after[round_index, epoch] = float(state["model"]["body.0.weight"].flatten()[0])

    history = train_cnn(settings, *inputs, out, on_epoch_end=saved_weight)
    assert [(row["round"], row["epoch"]) for row in history] == (
        [(0, e) for e in range(4)] + [(1, e) for e in range(6)])
    assert weights_after[0, 2] == 2.0  # mid-round: the weights of the epoch just run
    assert weights_after[0, 3] == 1.0  # stopped: round 0's best epoch, which round 1 starts from
    model, payload = load_checkpoint(out)
    assert all(torch.all(p == 105.0) for p in model.parameters())
    assert payload["history"] == history


def test_early_stopping_keeps_the_best_epoch_even_without_stopping(tiny_config, tiny_dataset,
                                                                    tmp_path, monkeypatch):
    """A round whose best epoch is not its last ends on the best one's weights; without
    early_stopping the same script keeps the last epoch's."""
    _scripted_epochs(monkeypatch, {0: [0.9, 0.5, 0.7]})
    settings = dict(tiny_config["models"]["cnn"], seed=0, negatives_per_round=300, epochs=3,
                    hard_negative_rounds=0)
    inputs = (tiny_dataset / "train.npz", tiny_dataset / "train_backgrounds.json")
    train_cnn(dict(settings, early_stopping={"patience": 5}), *inputs, tmp_path / "best.pt")
    train_cnn(settings, *inputs, tmp_path / "last.pt")
    best, last = load_checkpoint(tmp_path / "best.pt")[0], load_checkpoint(tmp_path / "last.pt")[0]
    assert all(torch.all(p == 1.0) for p in best.parameters())
    assert all(torch.all(p == 2.0) for p in last.parameters())


def test_validation_objective_weights_the_box_loss():
    from pipeline.training.cnn_loss import validation_objective

    row = {"val_loss": 0.3, "val_box_loss": 0.2}
    assert validation_objective(row, {"box_regression": {"weight": 0.5}}) == pytest.approx(0.4)
    assert validation_objective({"val_loss": 0.3}, {}) == 0.3


def test_resume_state_of_other_settings_is_ignored(tiny_config, tiny_dataset, tmp_path):
    from pipeline.training.resume import resume_path

    settings = dict(tiny_config["models"]["cnn"], seed=0, negatives_per_round=300, epochs=1,
                    hard_negative_rounds=0)
    inputs = (tiny_dataset / "train.npz", tiny_dataset / "train_backgrounds.json")
    out = tmp_path / "m.pt"
    with pytest.raises(SimulatedKillError):
        train_cnn(settings, *inputs, out,
                  on_epoch_end=lambda r, e: (_ for _ in ()).throw(SimulatedKillError))
    seen = []
    train_cnn(dict(settings, learning_rate=0.001), *inputs, out,
              on_epoch_end=lambda r, e: seen.append((r, e)))
    assert seen == [(0, 0)] and not resume_path(out).exists()


def test_unreadable_training_scenes_are_skipped(tmp_path, caplog):
    import cv2

    from pipeline.boxes import ImageRecord, Manifest
    from pipeline.training.samples import load_backgrounds

    cv2.imwrite(str(tmp_path / "good.png"), np.zeros((40, 40), np.uint8))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    Manifest("ground_truth", tmp_path, [ImageRecord("good.png", 40, 40),
                                        ImageRecord("bad.png", 40, 40)]).save(tmp_path / "m.json")
    assert len(load_backgrounds(tmp_path / "m.json")) == 1
    assert "bad.png" in caplog.text


@pytest.mark.parametrize(("architecture", "window"),
                         [("vgg", 32), ("googlenet", 32), ("output", 48)])
def test_other_architectures_train(tiny_config, tiny_dataset, tmp_path, architecture, window):
    """Each architecture learns: validation accuracy well above the share of negatives."""
    settings = dict(tiny_config["models"]["cnn"], seed=0, architecture=architecture, window=window,
                    negatives_per_round=400, hard_negative_rounds=0, epochs=3)
    history = train_cnn(settings, tiny_dataset / "train.npz",
                        tiny_dataset / "train_backgrounds.json", tmp_path / "m.pt")
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    model, payload = load_checkpoint(tmp_path / "m.pt")
    assert payload["settings"]["architecture"] == architecture

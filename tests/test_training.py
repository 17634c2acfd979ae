import numpy as np
import pytest
import torch

from pipeline.cnn import load_checkpoint
from pipeline.datasets import lfw_patches
from pipeline.samples import (
    MINING_STREAM,
    Scene,
    augment_faces,
    photometric,
    random_windows,
    scan_scenes,
)
from pipeline.training import mine_hard_negatives, train_cnn


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
    settings = dict(tiny_config["models"]["cnn"], epochs=1, negatives_per_round=300)
    states = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train_cnn(dict(settings, seed=seed), tiny_dataset / "train.npz",
                  tiny_dataset / "train_backgrounds.json", tmp_path / f"{name}.pt")
        states.append(load_checkpoint(tmp_path / f"{name}.pt")[1]["state_dict"])
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key
    assert not torch.equal(states[0]["body.0.weight"], states[2]["body.0.weight"])


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


def test_killed_training_resumes_to_the_same_weights(tiny_config, tiny_dataset, tmp_path):
    """Stop after the second epoch (round 0); rerun; weights equal an uninterrupted run."""
    from pipeline.resume import resume_path

    settings = dict(tiny_config["models"]["cnn"], negatives_per_round=300)
    inputs = (tiny_dataset / "train.npz", tiny_dataset / "train_backgrounds.json")
    train_cnn(settings, *inputs, tmp_path / "straight.pt")

    def stop(round_index, epoch):
        if (round_index, epoch) == (0, 1):
            raise SimulatedKillError

    out = tmp_path / "resumed.pt"
    with pytest.raises(SimulatedKillError):
        train_cnn(settings, *inputs, out, on_epoch_end=stop)
    assert not out.exists() and resume_path(out).exists()
    epochs_seen = []
    train_cnn(settings, *inputs, out, on_epoch_end=lambda r, e: epochs_seen.append((r, e)))
    assert epochs_seen == [(1, 0), (1, 1)]  # round 0 was not repeated
    assert not resume_path(out).exists()
    straight, resumed = load_checkpoint(tmp_path / "straight.pt")[1], load_checkpoint(out)[1]
    assert straight["history"] == resumed["history"]
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def test_resume_state_of_other_settings_is_ignored(tiny_config, tiny_dataset, tmp_path):
    from pipeline.resume import resume_path

    settings = dict(tiny_config["models"]["cnn"], negatives_per_round=300, epochs=1,
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
    from pipeline.samples import load_backgrounds

    cv2.imwrite(str(tmp_path / "good.png"), np.zeros((40, 40), np.uint8))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    Manifest("ground_truth", tmp_path, [ImageRecord("good.png", 40, 40),
                                        ImageRecord("bad.png", 40, 40)]).save(tmp_path / "m.json")
    assert len(load_backgrounds(tmp_path / "m.json")) == 1
    assert "bad.png" in caplog.text


@pytest.mark.parametrize("architecture", ["vgg", "googlenet"])
def test_other_architectures_train(tiny_config, tiny_dataset, tmp_path, architecture):
    """Each architecture learns: validation accuracy well above the share of negatives."""
    settings = dict(tiny_config["models"]["cnn"], architecture=architecture,
                    negatives_per_round=400, hard_negative_rounds=0, epochs=3)
    history = train_cnn(settings, tiny_dataset / "train.npz",
                        tiny_dataset / "train_backgrounds.json", tmp_path / "m.pt")
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    model, payload = load_checkpoint(tmp_path / "m.pt")
    assert payload["settings"]["architecture"] == architecture

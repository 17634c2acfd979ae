import cv2
import numpy as np
import pytest
import skimage.data
import torch

from pipeline.boxes import Box, Manifest
from pipeline.detection.detectors import (
    DETECTORS,
    build_detector,
    detect_to_file,
    merge_shards,
    run_detector,
)
from pipeline.detection.detectors.cnn import non_max_suppression
from pipeline.detection.detectors.haar import BUNDLED_CASCADES, cascade_path
from pipeline.evaluation.metrics import evaluate
from pipeline.io import read_gray, read_json
from pipeline.models.cnn import ARCHITECTURES, load_checkpoint
from pipeline.models.cnn_scoring import for_inference, pyramid_scales, score_windows, to_input

ASTRONAUT_FACE = Box(170, 55, 110, 110)  # Eileen Collins' face in skimage's astronaut image


@pytest.fixture(scope="module")
def astronaut():
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)


def test_haar_finds_the_astronaut_face(astronaut, default_config):
    detector = build_detector(default_config["detectors"]["haar"])
    boxes = detector.detect(astronaut)
    assert boxes, "the bundled cascade should find the astronaut's face"
    best = max(boxes, key=lambda b: b.score)
    assert best.iou(ASTRONAUT_FACE) > 0.5
    assert all(np.isfinite(b.score) for b in boxes)


@pytest.mark.parametrize("name", sorted(BUNDLED_CASCADES))
def test_every_bundled_cascade_loads(name, astronaut, default_config):
    settings = dict(default_config["detectors"]["haar"], cascade=name)
    assert cascade_path(name).is_file()
    assert isinstance(build_detector(settings).detect(astronaut), list)


def test_haar_scores_order_detections_like_level_weights(default_config):
    """More faces at lower thresholds: the level weight is a usable score."""
    detector = build_detector(dict(default_config["detectors"]["haar"], min_neighbors=1))
    image = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)
    scores = [b.score for b in detector.detect(image)]
    assert len(set(scores)) == len(scores) or len(scores) <= 1


def test_bad_cascade_path_is_a_clear_error(tmp_path, default_config):
    with pytest.raises(FileNotFoundError, match="nothere.xml"):
        build_detector(dict(default_config["detectors"]["haar"],
                            cascade=str(tmp_path / "nothere.xml")))
    junk = tmp_path / "junk.xml"
    junk.write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(ValueError, match="junk.xml"):
        build_detector(dict(default_config["detectors"]["haar"], cascade=str(junk)))


def test_registry_knows_the_detectors():
    from pipeline.detection.detectors import REFERENCE_CLASSES

    # The schema's list is checked against the registry in tests/test_registries.py.
    assert set(DETECTORS) == {"haar", "cnn", "cnn_cascade", *REFERENCE_CLASSES}


def _with_batch_norm_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with seeded, non-trivial batch-norm statistics and affine parameters."""
    torch.manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_inference_copy_scores_as_the_model_does(architecture):
    """The fused, channels-last copy gives the model's probabilities on a whole image, has
    no batch norm left, and leaves the model (weights, training mode) as it was."""
    model = _with_batch_norm_statistics(ARCHITECTURES[architecture]()).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = for_inference(model)
    assert model.training and not fast.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    images = np.random.default_rng(0).integers(0, 256, (2, 70, 90), dtype=np.uint8)
    with torch.no_grad():
        expected = torch.sigmoid(model.eval()(torch.from_numpy(images).float()[:, None]))
        got = torch.sigmoid(fast(to_input(images, "cpu")))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_fully_convolutional_map_equals_patch_scores(architecture):
    """Output cell (i, j) of the whole-image pass = the classifier on the window at
    (stride * i, stride * j)."""
    model = _with_batch_norm_statistics(ARCHITECTURES[architecture]()).eval()
    window, stride = model.window, model.stride
    image = torch.randint(0, 256, (1, 1, 2 * window, 2 * window + 16)).float()
    with torch.no_grad():
        full = model(image)[0, 0]
        assert full.shape == (window // stride + 1, (window + 16) // stride + 1)
        for i in range(full.shape[0]):
            for j in range(full.shape[1]):
                patch = image[:, :, stride * i:stride * i + window,
                              stride * j:stride * j + window]
                assert float(model(patch)) == pytest.approx(float(full[i, j]), abs=1e-4)


def test_weighted_nms_votes_the_suppressed_boxes_in():
    """Known answer: the survivor's box is the score-weighted mean of itself and what it
    suppresses; greedy NMS keeps the survivors' own boxes; scores are the survivors'."""
    from pipeline.detection.detectors.cnn import suppress

    boxes = np.array([[0.0, 0, 10, 10], [2, 0, 10, 10], [50, 50, 10, 10]])  # IoU(0, 1) = 2/3
    scores = np.array([0.9, 0.3, 0.5])
    voted, voted_scores = suppress(boxes, scores, 0.3, 10, "weighted")
    np.testing.assert_allclose(voted, [[0.5, 0, 10, 10], [50, 50, 10, 10]])
    np.testing.assert_allclose(voted_scores, [0.9, 0.5])
    greedy, _ = suppress(boxes, scores, 0.3, 10, "greedy")
    np.testing.assert_allclose(greedy, boxes[[0, 2]])
    assert suppress(np.zeros((0, 4)), np.zeros(0), 0.3, 10, "weighted")[0].shape == (0, 4)
    with pytest.raises(ValueError, match="unknown NMS method 'linear'"):
        suppress(boxes, scores, 0.3, 10, "linear")


def _soft_nms_by_the_paper(boxes, scores, sigma, floor):
    """Bodla et al.'s Algorithm 1 (Gaussian), written out box by box: an independent check."""
    remaining = [(list(b), float(s)) for b, s in zip(boxes, scores, strict=True)]
    picked = []
    while remaining:
        best = max(range(len(remaining)), key=lambda k: remaining[k][1])
        box, score = remaining.pop(best)
        picked.append(box + [score])
        x, y, w, h = box
        decayed = []
        for other, other_score in remaining:
            ox, oy, ow, oh = other
            iw = max(0.0, min(x + w, ox + ow) - max(x, ox))
            ih = max(0.0, min(y + h, oy + oh) - max(y, oy))
            iou = iw * ih / (w * h + ow * oh - iw * ih)
            other_score *= np.exp(-iou * iou / sigma)
            if other_score >= floor:
                decayed.append((other, other_score))
        remaining = decayed
    return np.array(picked).reshape(-1, 5)


def test_soft_nms_decays_overlapping_scores():
    """Known answer: a box at IoU 0.5 with the best keeps 0.8 exp(-0.25 / 0.5) of its score
    and drops behind a disjoint one; a floor drops it; at most ``limit`` boxes; equal to the
    paper's algorithm written out box by box on random boxes."""
    from pipeline.detection.detectors.cnn import suppress

    boxes = np.array([[0.0, 0, 10, 10], [0, 0, 10, 20], [50, 50, 10, 10]])  # IoU(0, 1) = 0.5
    scores = np.array([0.9, 0.8, 0.7])
    kept, kept_scores = suppress(boxes, scores, 0.3, 10, "soft")
    np.testing.assert_allclose(kept, boxes[[0, 2, 1]])
    np.testing.assert_allclose(kept_scores, [0.9, 0.7, 0.8 * np.exp(-0.5)])
    kept, _ = suppress(boxes, scores, 0.3, 10, "soft", floor=0.5)
    np.testing.assert_allclose(kept, boxes[[0, 2]])
    assert len(suppress(boxes, scores, 0.3, 2, "soft")[0]) == 2
    assert suppress(np.zeros((0, 4)), np.zeros(0), 0.3, 10, "soft")[0].shape == (0, 4)

    rng = np.random.default_rng(0)
    random_boxes = np.c_[rng.uniform(0, 60, (40, 2)), rng.uniform(5, 30, (40, 2))]
    random_scores = rng.uniform(0.05, 1, 40)
    for sigma, floor in [(0.5, 0.05), (0.1, 0.2), (2.0, 0.0)]:
        kept, kept_scores = suppress(random_boxes, random_scores, 0.3, 100, "soft", floor,
                                     sigma)
        np.testing.assert_allclose(np.c_[kept, kept_scores],
                                   _soft_nms_by_the_paper(random_boxes, random_scores, sigma,
                                                          floor))


def test_pyramid_scales_cover_min_size_to_image():
    scales = pyramid_scales(240, 320, window=32, min_size=24, scale_factor=1.25)
    assert scales[0] == pytest.approx(32 / 24)
    ratios = np.array(scales[:-1]) / np.array(scales[1:])
    assert np.allclose(ratios, 1.25)
    assert 240 * scales[-1] >= 32 > 240 * scales[-1] / 1.25


def test_nms_keeps_best_of_overlapping():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10]], float)
    keep = non_max_suppression(boxes, np.array([0.5, 0.9, 0.7]), iou=0.3, limit=10)
    assert keep.tolist() == [1, 2]
    assert non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.3, 10).size == 0


def test_checkpoint_round_trip_with_weights_only(tiny_model):
    model, payload = load_checkpoint(tiny_model)
    assert not model.training and payload["settings"]["architecture"] == "lenet5"
    assert payload["history"] and payload["window"] == 32
    with pytest.raises(ValueError, match="not a valid model checkpoint"):
        bad = tiny_model.parent / "bad.pt"
        bad.write_bytes(b"not a checkpoint")
        load_checkpoint(bad)


def test_trained_cnn_finds_faces_on_test_scenes(tiny_model, tiny_dataset, default_config,
                                                tmp_path):
    """Even a few seconds of training finds most test faces (disjoint from training faces)."""
    result = detect_to_file(default_config["detectors"]["cnn"], tiny_dataset / "test.json",
                            tmp_path / "det.json", tmp_path / "time.json", "cnn", str(tiny_model))
    truth = Manifest.load(tiny_dataset / "test.json")
    metrics = evaluate(truth, result, 0.5, [10])
    assert metrics["average_precision"] > 0.5
    seconds = read_json(tmp_path / "time.json")["seconds"]
    assert sorted(seconds) == sorted(r.file for r in truth.images)
    assert all(s > 0 for s in seconds.values())
    reloaded = Manifest.load(tmp_path / "det.json")
    assert reloaded.images[0].boxes == result.images[0].boxes


def test_shards_merge_to_the_unsharded_result(tiny_dataset, default_config, tmp_path):
    """Three shards, merged, equal one pass over all images, in the source order."""
    settings = default_config["detectors"]["haar"]
    source = tiny_dataset / "test.json"
    detect_to_file(settings, source, tmp_path / "all.json", tmp_path / "all.t.json", "haar")
    parts, times = [], []
    for k in range(3):
        parts.append(str(tmp_path / f"s{k}.json"))
        times.append(str(tmp_path / f"s{k}.t.json"))
        detect_to_file(settings, source, parts[-1], times[-1], "haar", None, k, 3)
    labels = {"detector": "haar", "seed": None, "dataset": "embedded", "variant": "original"}
    merge_shards(source, parts, times, tmp_path / "merged.json", tmp_path / "merged.t.json",
                 labels)
    whole, merged = Manifest.load(tmp_path / "all.json"), Manifest.load(tmp_path / "merged.json")
    assert [(r.file, r.boxes) for r in merged.images] == [(r.file, r.boxes) for r in whole.images]
    timing = read_json(tmp_path / "merged.t.json")
    assert timing["n_images"] == len(whole.images) and timing["variant"] == "original"
    with pytest.raises(ValueError, match="lack 1 images|lack 2 images"):
        merge_shards(source, parts[:2], times[:2], tmp_path / "x.json", tmp_path / "x.t.json",
                     labels)
    with pytest.raises(ValueError, match="more than one shard"):
        merge_shards(source, parts + parts[:1], times + times[:1], tmp_path / "x.json",
                     tmp_path / "x.t.json", labels)


def test_detection_and_evaluation_files_are_identical_between_runs(tiny_dataset, tiny_model,
                                                                     default_config, tmp_path):
    from pipeline.io import write_json

    truth = Manifest.load(tiny_dataset / "test.json")
    for run in ("a", "b"):
        for name in ("haar", "cnn"):
            result = detect_to_file(default_config["detectors"][name], tiny_dataset / "test.json",
                                    tmp_path / f"{run}_{name}.json", tmp_path / f"{run}_t.json",
                                    name, str(tiny_model))
            write_json(tmp_path / f"{run}_{name}_metrics.json",
                       evaluate(truth, result, 0.5, [0, 5]))
    for name in ("haar", "cnn"):
        for suffix in ("", "_metrics"):
            first = (tmp_path / f"a_{name}{suffix}.json").read_bytes()
            assert first == (tmp_path / f"b_{name}{suffix}.json").read_bytes()


def test_score_windows_boxes_lie_in_the_image(tiny_model, astronaut):
    model, _ = load_checkpoint(tiny_model)
    boxes, scores = score_windows(model, astronaut, 48, 1.3, threshold=0.0)
    assert len(boxes) == len(scores) > 0
    assert boxes[:, 0].min() >= 0 and boxes[:, 1].min() >= 0
    assert (boxes[:, 0] + boxes[:, 2]).max() <= astronaut.shape[1] + 1e-6
    assert (boxes[:, 1] + boxes[:, 3]).max() <= astronaut.shape[0] + 1e-6
    assert np.all((scores >= 0) & (scores <= 1))


def test_cnn_detectors_need_their_models(default_config, tiny_model):
    with pytest.raises(ValueError, match="checkpoint"):
        build_detector(default_config["detectors"]["cnn"])
    with pytest.raises(ValueError, match="2 checkpoints"):
        build_detector(default_config["detectors"]["cnn_cascade"], [str(tiny_model)])


def test_cascade_verifies_proposals_with_the_strong_net(tiny_model, tiny_proposal_model,
                                                         tiny_dataset, default_config):
    """Every cascade detection is a proposal, scored by the verifier on that window; and the
    cascade still finds most faces."""
    from pipeline.detection.detectors.cnn import CnnCascadeDetector
    from pipeline.models.cnn_scoring import crop_windows

    settings = default_config["detectors"]["cnn_cascade"]
    cascade = build_detector(settings, [str(tiny_proposal_model), str(tiny_model)])
    assert isinstance(cascade, CnnCascadeDetector) and cascade.proposal.window == 16
    truth = Manifest.load(tiny_dataset / "test.json")
    record = next(r for r in truth.images if r.boxes)
    image = read_gray(truth.image_path(record))
    proposals = cascade.propose(image)
    scales = settings["refine_scales"]
    assert 0 < len(proposals) <= settings["max_proposals"] * len(scales)
    # each proposal at every refine scale about one centre, in the configured order
    groups = proposals.reshape(-1, len(scales), 4)
    centres = groups[:, :, :2] + groups[:, :, 2:] / 2
    assert np.allclose(centres, centres[:, :1])
    assert np.allclose(groups[:, :, 2] / groups[:, :1, 2] * scales[0], scales)
    found = cascade.detect(image)
    assert found
    for box in found:
        assert np.any(np.all(np.isclose(proposals, [box.x, box.y, box.w, box.h]), axis=1))
        patch = torch.from_numpy(crop_windows(image, np.array([[box.x, box.y, box.w, box.h]]),
                                              32)).float()[:, None]
        with torch.no_grad():
            assert float(torch.sigmoid(cascade.verifier(patch))) == pytest.approx(box.score,
                                                                                  abs=1e-5)
    result, _ = run_detector(cascade, truth, "cnn_cascade")
    # most faces: a majority of the tiny set's 12 (its AP moves by 0.08 a face, so an AP bound
    # measured the machine's float rounding of a few seconds' training)
    assert evaluate(truth, result, 0.5, [10])["max_recall"] > 0.5


def _shifted_windows(truth: Manifest, rng: np.random.Generator, per_face: int = 8
                     ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per test image: its grey image, square windows (K, 4) around its faces, shifted by up
    to 25% of the face side per axis and scaled by 0.8-1.25, inside the image, and the face
    box (K, 4) of each."""
    out = []
    for record in truth.images:
        image = read_gray(truth.image_path(record))
        windows, faces = [], []
        for face in record.boxes:
            side = (face.w + face.h) / 2
            for _ in range(per_face):
                size = side * rng.uniform(0.8, 1.25)
                cx, cy = np.r_[face.x + face.w / 2, face.y + face.h / 2] + rng.uniform(
                    -0.25, 0.25, 2) * side
                window = [cx - size / 2, cy - size / 2, size, size]
                if (window[0] >= 0 and window[1] >= 0 and window[0] + size <= image.shape[1]
                        and window[1] + size <= image.shape[0]):
                    windows.append(window)
                    faces.append([face.x, face.y, face.w, face.h])
        if windows:
            out.append((image, np.array(windows), np.array(faces)))
    return out


def test_box_regression_moves_shifted_windows_onto_the_faces(tiny_box_model, tiny_dataset):
    """On windows shifted and scaled off the test faces (faces never trained on), the boxes
    refined by the net's offsets overlap the faces more than the windows do (measured: mean
    IoU 0.60 -> 0.72, 80% of the windows improved)."""
    from pipeline.boxes import iou_matrix, refine_boxes
    from pipeline.models.cnn import split_outputs
    from pipeline.models.cnn_scoring import crop_windows, for_inference, to_input

    model, _ = load_checkpoint(tiny_box_model)
    assert model.box_regression
    scorer = for_inference(model)
    raw, refined = [], []
    for image, windows, faces in _shifted_windows(Manifest.load(tiny_dataset / "test.json"),
                                                  np.random.default_rng(0)):
        with torch.no_grad():
            _, offsets = split_outputs(scorer(to_input(crop_windows(image, windows, 32), "cpu")))
        moved = refine_boxes(windows, offsets.reshape(-1, 4).numpy())
        raw.append(np.diag(iou_matrix(windows, faces)))
        refined.append(np.diag(iou_matrix(moved, faces)))
    raw, refined = np.concatenate(raw), np.concatenate(refined)
    assert len(raw) >= 50
    assert refined.mean() > raw.mean() + 0.05
    assert np.mean(refined > raw) > 0.6


def test_detectors_refine_windows_before_nms(tiny_box_model, tiny_proposal_model,
                                             tiny_dataset, default_config):
    """With a box-regression net, the CNN detector's boxes are the NMS survivors of the
    refined windows (not of the raw ones), and the cascade's are its proposals refined by the
    verifier's offsets."""
    from pipeline.boxes import refine_boxes
    from pipeline.detection.detectors.cnn import non_max_suppression, suppress
    from pipeline.models.cnn import split_outputs
    from pipeline.models.cnn_scoring import crop_windows, score_windows, to_input

    truth = Manifest.load(tiny_dataset / "test.json")
    image = read_gray(truth.image_path(next(r for r in truth.images if r.boxes)))
    settings = dict(default_config["detectors"]["cnn"], nms_method="greedy")
    detector = build_detector(settings, [str(tiny_box_model)])
    boxes, scores = score_windows(detector.model, image, settings["min_size"],
                                  settings["scale_factor"], settings["score_threshold"])
    raw, _ = score_windows(detector.model, image, settings["min_size"],
                           settings["scale_factor"], settings["score_threshold"], refine=False)
    assert boxes.shape == raw.shape and not np.allclose(boxes, raw)
    keep = non_max_suppression(boxes, scores, settings["nms_iou"], settings["max_detections"])
    found = detector.detect(image)
    np.testing.assert_allclose([b.to_list() for b in found], boxes[keep])
    voting = build_detector(dict(settings, nms_method="weighted"), [str(tiny_box_model)])
    voted, voted_scores = suppress(boxes, scores, settings["nms_iou"],
                                   settings["max_detections"], "weighted")
    np.testing.assert_allclose([b.to_list(with_score=True) for b in voting.detect(image)],
                               np.c_[voted, voted_scores])
    soft = build_detector(dict(settings, nms_method="soft", nms_sigma=0.3), [str(tiny_box_model)])
    softened, softened_scores = suppress(boxes, scores, settings["nms_iou"],
                                         settings["max_detections"], "soft",
                                         settings["score_threshold"], 0.3)
    np.testing.assert_allclose([b.to_list(with_score=True) for b in soft.detect(image)],
                               np.c_[softened, softened_scores])

    cascade = build_detector(default_config["detectors"]["cnn_cascade"],
                             [str(tiny_proposal_model), str(tiny_box_model)])
    proposals = cascade.propose(image)
    with torch.no_grad():
        outputs = cascade.verifier(to_input(crop_windows(image, proposals, 32), "cpu"))
    logits, offsets = split_outputs(outputs)
    moved = refine_boxes(proposals, offsets.reshape(-1, 4).numpy())
    for box in cascade.detect(image):
        assert np.any(np.all(np.isclose(moved, box.to_list(), atol=1e-4), axis=1))


def test_third_stage_rescores_and_refines_the_verified_windows(
        tiny_box_model, tiny_proposal_model, tiny_output_model, tiny_dataset, default_config):
    """With ``output_model`` the cascade's detections are the verifier's survivors
    (near-duplicates removed), scored by the 48x48 net on the verified, refined window and
    moved by its offsets, then NMS'd: recomputed here stage by stage from the raw nets."""
    from pipeline.boxes import refine_boxes
    from pipeline.detection.detectors import model_names
    from pipeline.detection.detectors.cnn import PROPOSAL_NMS_IOU, non_max_suppression, suppress
    from pipeline.models.cnn import split_outputs
    from pipeline.models.cnn_scoring import crop_windows, to_input

    settings = dict(default_config["detectors"]["cnn_cascade"], output_model="output")
    assert model_names(settings) == ["proposal", "cnn", "output"]
    with pytest.raises(ValueError, match="3 checkpoints: --model PROPOSAL VERIFIER OUTPUT"):
        build_detector(settings, [str(tiny_proposal_model), str(tiny_box_model)])
    cascade = build_detector(settings, [str(tiny_proposal_model), str(tiny_box_model),
                                        str(tiny_output_model)])
    assert cascade.output.window == 48 and cascade.output.box_regression

    def stage(net, image, windows):
        with torch.no_grad():
            outputs = net(to_input(crop_windows(image, windows, net.window), "cpu"))
        logits, offsets = split_outputs(outputs.double())
        probs = torch.sigmoid(logits).reshape(-1).numpy()
        passed = probs >= settings["score_threshold"]
        return refine_boxes(windows[passed], offsets.reshape(-1, 4).numpy()[passed]), \
            probs[passed]

    truth = Manifest.load(tiny_dataset / "test.json")
    checked = 0
    for record in truth.images:
        image = read_gray(truth.image_path(record))
        verified, verified_probs = stage(cascade.verifier, image, cascade.propose(image))
        distinct = non_max_suppression(verified, verified_probs, PROPOSAL_NMS_IOU,
                                       settings["max_proposals"])
        final, final_probs = stage(cascade.output, image, verified[distinct])
        expected = suppress(final, final_probs, settings["nms_iou"], settings["max_detections"],
                            settings["nms_method"], settings["score_threshold"])
        found = cascade.detect(image)
        assert len(found) == len(expected[0])
        if found:
            np.testing.assert_allclose([b.to_list(with_score=True) for b in found],
                                       np.c_[expected[0], expected[1]], atol=1e-4)
            checked += 1
    assert checked >= 2  # detections on several images, not only empty agreements


class Payload:
    """An arbitrary class: a weights_only load must refuse to unpickle it."""


def test_checkpoints_with_code_objects_are_refused(tiny_model, tmp_path):
    payload = torch.load(tiny_model, weights_only=True)
    payload["extra"] = Payload()
    torch.save(payload, tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match="pickled.pt: not a valid model checkpoint"):
        load_checkpoint(tmp_path / "pickled.pt")


@pytest.mark.parametrize("name", sorted(BUNDLED_CASCADES))
def test_stage_features_parse(name):
    from pipeline.models.cascade import stage_features

    (width, height), features = stage_features(cascade_path(name))
    assert (width, height) in {(24, 24), (20, 20)} and len(features) >= 2
    for rects in features:
        used = rects[rects[:, 4] != 0]
        assert 2 <= len(used) <= 3
        for x, y, w, h, _ in used:
            assert x >= 0 and x + w <= width and y >= 0 and y + h <= height


def test_feature_value_known_answer():
    from pipeline.models.haar_features import feature_values

    band = np.array([[(0, 0, 24, 24, -1.0), (0, 8, 24, 8, 3.0), (0, 0, 0, 0, 0.0)]],
                    np.float32)  # middle band brighter than the window
    patch = np.zeros((24, 24), np.uint8)
    patch[8:16] = 200
    patches = np.array([patch, 255 - patch, (patch * 0.5 + 20).astype(np.uint8)])
    values = feature_values(patches, band)[0]
    # sum = 2 * 200 * 8 * 24; normaliser = inner area (22 x 22) x inner std
    inner = patch[1:-1, 1:-1].astype(np.float64)
    assert values[0] == pytest.approx(2 * 200 * 8 * 24 / (inner.size * inner.std()), rel=1e-6)
    assert values[1] == pytest.approx(-values[0], rel=1e-6)
    assert values[2] == pytest.approx(values[0], rel=1e-6)


def test_batched_detection_equals_one_image_at_a_time(tiny_model, tiny_dataset,
                                                       default_config, astronaut):
    """detect_many (the GPU path) gives each image the boxes detect gives it alone."""
    truth = Manifest.load(tiny_dataset / "test.json")
    images = [read_gray(truth.image_path(r)) for r in truth.images[:3]] + [astronaut]
    detector = build_detector(default_config["detectors"]["cnn"], [str(tiny_model)])
    together = detector.detect_many(images)
    def table(boxes):
        return np.array([b.to_list(with_score=True) for b in boxes]).reshape(-1, 5)

    for image, boxes in zip(images, together, strict=True):
        np.testing.assert_allclose(table(boxes), table(detector.detect(image)), atol=1e-5)
    single, _ = run_detector(detector, truth, "cnn")
    batched, seconds = run_detector(detector, truth, "cnn", batch_images=4)
    assert len(seconds) == len(truth.images)
    for a, b in zip(single.images, batched.images, strict=True):
        np.testing.assert_allclose(table(a.boxes), table(b.boxes), atol=1e-5)


def test_timing_files_record_each_detectors_own_thread_pool(tiny_dataset, tiny_model,
                                                             default_config, tmp_path):
    """The CNN runs on PyTorch's threads, the Haar cascade on OpenCV's: each timing file
    records the pool that did the work."""
    detectors = default_config["detectors"]
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(2)
    cv2.setNumThreads(1)
    try:
        for name, model in (("cnn", str(tiny_model)), ("haar", None)):
            detect_to_file(detectors[name], tiny_dataset / "test.json", tmp_path / f"{name}.json",
                           tmp_path / f"{name}_time.json", name, model)
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv2_threads)
    assert read_json(tmp_path / "cnn_time.json")["threads"] == 2
    assert read_json(tmp_path / "haar_time.json")["threads"] == 1


def test_rescaled_windows_keep_their_centre():
    from pipeline.detection.detectors.cnn import rescaled

    windows = np.array([[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 8.0, 8.0]])
    out = rescaled(windows, (0.5, 1.0, 2.0))
    assert np.allclose(out, [[17.5, 30, 15, 20], [10, 20, 30, 40], [-5, 0, 60, 80],
                             [2, 2, 4, 4], [0, 0, 8, 8], [-4, -4, 16, 16]])
    assert np.array_equal(rescaled(windows, (1.0,)), windows)

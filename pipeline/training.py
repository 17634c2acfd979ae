"""Training the CNN face classifier with augmentation and hard-negative mining.

Round 0 trains on augmented training faces against random windows of face-free scenes and
face-free patches; each further round runs the current model over the face-free scenes, adds
its highest-scoring windows (all false positives by construction) to the negatives and trains on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from pipeline.boxes import Manifest, boxes_to_array, overlap_matrix
from pipeline.cnn import (
    FaceNet,
    build_model,
    checkpoint_problem,
    crop_windows,
    resolve_device,
    save_checkpoint,
    score_windows,
)
from pipeline.io import progress, read_gray

LOG = logging.getLogger(__name__)


def augment_faces(faces: np.ndarray, copies: int, window: int,
                  rng: np.random.Generator) -> np.ndarray:
    """``copies`` random variants of each face, (len(faces) * copies, window, window) uint8.

    Random mirror, rotation (+-8 degrees), scale (0.9-1.1), shift (+-6% of the window), then
    contrast (x0.6-1.4) and brightness (+-40 grey levels).
    """
    out = np.empty((len(faces) * copies, window, window), np.uint8)
    k = 0
    for face in faces:
        side = face.shape[0]
        for _ in range(copies):
            source = face[:, ::-1] if rng.random() < 0.5 else face
            scale = window / side * rng.uniform(0.9, 1.1)
            matrix = cv2.getRotationMatrix2D((side / 2, side / 2), rng.uniform(-8, 8), scale)
            matrix[:, 2] += window / 2 - side / 2 + rng.uniform(-0.06, 0.06, 2) * window
            warped = cv2.warpAffine(np.ascontiguousarray(source), matrix, (window, window),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            out[k] = photometric(warped, rng)
            k += 1
    return out


def photometric(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random contrast about the patch mean and brightness shift, uint8 in and out."""
    values = patch.astype(np.float32)
    mean = values.mean()
    values = (values - mean) * rng.uniform(0.6, 1.4) + mean + rng.uniform(-40, 40)
    return np.clip(values, 0, 255).astype(np.uint8)


# A window counts as face-free when less than this share of it, or of any face box, is shared
# with that face box (intersection over the smaller area).
MAX_FACE_OVERLAP = 0.3


@dataclass
class Scene:
    """A training scene: grayscale image (H, W) and the face boxes to avoid, (K, 4) x y w h."""

    image: np.ndarray
    faces: np.ndarray


def random_windows(scenes: list[Scene], count: int, window: int, min_size: int,
                   rng: np.random.Generator, tries: int = 50) -> np.ndarray:
    """Up to ``count`` random square windows away from faces, resized to (K, window, window).

    Each window gets ``tries`` draws to land away from the scenes' faces; a window whose every
    draw overlaps a face is skipped (never returned as a negative), and the skips are counted
    in a warning, so K < ``count`` only when the scenes are crowded with faces.
    """
    out = np.empty((count, window, window), np.uint8)
    kept = 0
    for _ in range(count):
        for _ in range(tries):
            scene = scenes[int(rng.integers(len(scenes)))]
            height, width = scene.image.shape
            side = int(rng.integers(min_size, min(height, width) + 1))
            x = int(rng.integers(0, width - side + 1))
            y = int(rng.integers(0, height - side + 1))
            if not len(scene.faces) or overlap_matrix(np.array([[x, y, side, side]], float),
                                                      scene.faces).max() < MAX_FACE_OVERLAP:
                break
        else:
            continue
        patch = cv2.resize(scene.image[y:y + side, x:x + side], (window, window),
                           interpolation=cv2.INTER_AREA)
        out[kept] = photometric(patch, rng) if rng.random() < 0.5 else patch
        kept += 1
    if kept < count:
        LOG.warning("random negative windows: %d of %d skipped, every one of their %d draws "
                    "overlapped a face; %d kept", count - kept, count, tries, kept)
    return out[:kept]


def mine_hard_negatives(model: FaceNet, scenes: list[Scene], count: int,
                        device: torch.device) -> np.ndarray:
    """The ``count`` highest-scoring windows (prob >= 0.5) away from the scenes' faces."""
    model.eval()
    boxes, scores, sources = [], [], []
    for index, scene in enumerate(scenes):
        found, probs = score_windows(model, scene.image, min_size=24, scale_factor=1.25,
                                     threshold=0.5, device=device)
        if len(scene.faces) and len(found):
            away = overlap_matrix(found, scene.faces).max(axis=1) < MAX_FACE_OVERLAP
            found, probs = found[away], probs[away]
        boxes.append(found)
        scores.append(probs)
        sources.append(np.full(len(probs), index))
    all_scores = np.concatenate(scores)
    if all_scores.size == 0:
        return np.zeros((0, model.window, model.window), np.uint8)
    order = np.argsort(-all_scores, kind="stable")[:count]
    all_boxes, all_sources = np.concatenate(boxes), np.concatenate(sources)
    return np.concatenate([
        crop_windows(scenes[i].image, all_boxes[order[all_sources[order] == i]], model.window)
        for i in range(len(scenes))
    ])


def _optimizer(model: FaceNet, settings: dict[str, Any]) -> torch.optim.Optimizer:
    if settings["optimizer"] == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=settings["learning_rate"],
                                 weight_decay=settings["weight_decay"])
    return torch.optim.SGD(model.parameters(), lr=settings["learning_rate"],
                           momentum=settings["momentum"], weight_decay=settings["weight_decay"])


@dataclass
class Round:
    """One training round: its patches, labels, validation split and optimiser state.

    ``x`` (N, 1, window, window) float and ``y`` (N,) hold positives then negatives; ``order``
    is a permutation of range(N) whose first 10% is the validation set.
    """

    index: int
    positives: np.ndarray
    negatives: np.ndarray
    order: np.ndarray
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    next_epoch: int = 0

    @property
    def n_val(self) -> int:
        return validation_size(len(self.order))

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        patches = np.concatenate([self.positives, self.negatives])
        labels = np.r_[np.ones(len(self.positives)), np.zeros(len(self.negatives))]
        return (torch.from_numpy(patches).float()[:, None],
                torch.from_numpy(labels.astype(np.float32)))


def validation_size(n_patches: int) -> int:
    """How many of a round's patches are held out for validation (10%, at least one)."""
    return max(n_patches // 10, 1)


def steps_per_epoch(n_patches: int, batch_size: int) -> int:
    """Optimiser steps in one pass over a round's training (non-validation) patches."""
    return int(np.ceil((n_patches - validation_size(n_patches)) / batch_size))


def new_round(index: int, model: FaceNet, positives: np.ndarray, negatives: np.ndarray,
              settings: dict[str, Any], generator: torch.Generator, device: torch.device,
              order: np.ndarray | None = None) -> Round:
    """A round with a fresh optimiser; ``order`` is drawn from ``generator`` unless given."""
    n = len(positives) + len(negatives)
    if order is None:
        order = torch.randperm(n, generator=generator).numpy()
    optimizer = _optimizer(model, settings)
    steps = settings["epochs"] * steps_per_epoch(n, settings["batch_size"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    return Round(index, positives, negatives, order, optimizer, schedule, scaler)


def run_epoch(model: FaceNet, current: Round, x: torch.Tensor, y: torch.Tensor,
              settings: dict[str, Any], device: torch.device, generator: torch.Generator,
              bar: Any) -> dict[str, float]:
    """One pass over the round's training patches, then the validation loss and accuracy."""
    loss_fn = nn.BCEWithLogitsLoss()
    use_amp = device.type == "cuda"
    val_idx, train_idx = current.order[:current.n_val], current.order[current.n_val:]
    model.train()
    permutation = train_idx[torch.randperm(len(train_idx), generator=generator).numpy()]
    total, seen, batch = 0.0, 0, settings["batch_size"]
    for start in range(0, len(permutation), batch):
        idx = permutation[start:start + batch]
        xb, yb = x[idx].to(device), y[idx].to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            logits, aux = model.logits_with_aux(xb)
            loss = loss_fn(logits.reshape(-1), yb)
            if aux is not None:  # GoogLeNet's auxiliary classifier, weighted as in the paper
                loss = loss + settings.get("aux_weight", 0.3) * loss_fn(aux.reshape(-1), yb)
        current.optimizer.zero_grad(set_to_none=True)
        current.scaler.scale(loss).backward()
        current.scaler.step(current.optimizer)
        current.scaler.update()
        current.schedule.step()
        total += loss.item() * len(idx)
        seen += len(idx)
        bar.update(1)
        bar.set_postfix(loss=f"{total / seen:.4f}")
    model.eval()
    with torch.no_grad():
        x_val, y_val = x[val_idx].to(device), y[val_idx].to(device)
        logits = model(x_val).reshape(-1).float()
        val_loss = float(loss_fn(logits, y_val))
        val_acc = float(((logits > 0).float() == y_val).float().mean())
    return {"round": current.index, "epoch": current.next_epoch, "train_loss": total / seen,
            "val_loss": val_loss, "val_accuracy": val_acc}


def load_backgrounds(manifest_path: str | Path) -> list[Scene]:
    """The training scenes of a manifest; unreadable ones are skipped with a warning."""
    manifest = Manifest.load(manifest_path)
    scenes = []
    for record in manifest.images:
        try:
            scenes.append(Scene(read_gray(manifest.image_path(record)),
                                boxes_to_array(record.boxes)))
        except (OSError, ValueError) as error:
            LOG.warning("skipping training scene: %s", error)
    return scenes


def load_training_data(train_npz: str | Path, backgrounds_json: str | Path
                       ) -> tuple[np.ndarray, np.ndarray, list[Scene]]:
    """Training faces (N, h, w), face-free patches (M, h, w) and face-free scenes; raises
    ``ValueError`` naming the file when there are no faces or no scenes."""
    with np.load(train_npz) as data:
        faces, nonfaces = data["faces"], data["nonfaces"]
    scenes = load_backgrounds(backgrounds_json)
    if len(faces) == 0 or not scenes:
        raise ValueError(f"{train_npz}: no training faces or no face-free scenes to train on")
    return faces, nonfaces, scenes


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def resume_path(out_path: str | Path) -> Path:
    """Where training keeps its state between epochs: a hidden file beside the checkpoint."""
    out_path = Path(out_path)
    return out_path.with_name(f".{out_path.name}.resume")


def save_resume(path: Path, key: dict[str, Any], model: FaceNet, current: Round,
                rng: np.random.Generator, generator: torch.Generator,
                history: list[dict[str, float]], negatives: np.ndarray) -> None:
    """Everything needed to continue training after the epoch just finished."""
    from pipeline.io import atomic_open

    state = {
        "key": json.dumps(key, sort_keys=True),
        "round": current.index, "next_epoch": current.next_epoch,
        "model": model.state_dict(), "optimizer": current.optimizer.state_dict(),
        "schedule": current.schedule.state_dict(), "scaler": current.scaler.state_dict(),
        "positives": torch.from_numpy(current.positives),
        "round_negatives": torch.from_numpy(current.negatives),
        "negatives": torch.from_numpy(negatives), "order": torch.from_numpy(current.order),
        "numpy_rng": json.dumps(rng.bit_generator.state),
        "torch_generator": generator.get_state(), "history": history,
    }
    with atomic_open(path, "wb") as handle:
        torch.save(state, handle)


def load_resume(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state if it exists and belongs to the same settings and inputs, else None."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a broken resume file only costs a restart
        LOG.warning("%s: unreadable resume state (%s); training from the start", path,
                    checkpoint_problem(path, error))
        return None
    if state.get("key") != json.dumps(key, sort_keys=True):
        LOG.warning("%s: resume state is for other settings or inputs; training from the start",
                    path)
        return None
    return state


def train_cnn(settings: dict[str, Any], train_npz: str | Path, backgrounds_json: str | Path,
              out_path: str | Path,
              on_epoch_end: Callable[[int, int], None] | None = None
              ) -> list[dict[str, float]]:
    """Train a model as ``settings`` (a ``models:`` entry) say and save its checkpoint.

    After every epoch the full training state is saved beside ``out_path``; a run that was
    killed resumes from there and ends with the same weights as an uninterrupted run.
    ``on_epoch_end(round, epoch)`` is called after each save (tests use it to interrupt).
    """
    seed = settings["seed"]
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    device = resolve_device(settings["device"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    window = settings["window"]
    faces, nonfaces, backgrounds = load_training_data(train_npz, backgrounds_json)
    LOG.info("training %s on %s: %d faces, %d face-free patches, %d face-free scenes, "
             "device %s", settings["architecture"], train_npz, len(faces), len(nonfaces),
             len(backgrounds), device)

    model = build_model(settings["architecture"], window).to(device)
    key = {"settings": settings,
           "inputs": [file_digest(train_npz), file_digest(backgrounds_json)]}
    state_file = resume_path(out_path)
    state = load_resume(state_file, key)
    history: list[dict[str, float]] = []
    current: Round | None = None
    if state is None:
        negatives = np.concatenate([
            np.array([cv2.resize(p, (window, window), interpolation=cv2.INTER_AREA)
                      for p in nonfaces], dtype=np.uint8).reshape(-1, window, window),
            random_windows(backgrounds, settings["negatives_per_round"], window, 24, rng),
        ])
        first_round = 0
    else:
        model.load_state_dict(state["model"])
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        generator.set_state(state["torch_generator"])
        history = list(state["history"])
        negatives = state["negatives"].numpy()
        first_round = state["round"]
        current = new_round(first_round, model, state["positives"].numpy(),
                            state["round_negatives"].numpy(), settings, generator, device,
                            order=state["order"].numpy())
        current.optimizer.load_state_dict(state["optimizer"])
        current.schedule.load_state_dict(state["schedule"])
        current.scaler.load_state_dict(state["scaler"])
        current.next_epoch = state["next_epoch"]
        LOG.info("resuming from %s: round %d, epoch %d", state_file, first_round,
                 current.next_epoch)
    start = time.perf_counter()
    for round_index in range(first_round, settings["hard_negative_rounds"] + 1):
        if current is None or current.index != round_index:
            if round_index > 0:
                mined = mine_hard_negatives(model, backgrounds,
                                            settings["hard_negatives_per_round"], device)
                LOG.info("round %d: mined %d hard negatives", round_index, len(mined))
                negatives = np.concatenate([negatives, mined])
            positives = augment_faces(faces, settings["positives_per_face"], window, rng)
            current = new_round(round_index, model, positives, negatives, settings, generator,
                                device)
        x, y = current.tensors()
        steps = steps_per_epoch(len(y), settings["batch_size"])
        bar = progress(total=steps * settings["epochs"], initial=steps * current.next_epoch,
                       desc=f"train round {round_index}", unit="step")
        while current.next_epoch < settings["epochs"]:
            row = run_epoch(model, current, x, y, settings, device, generator, bar)
            history.append(row)
            LOG.info("round %d epoch %d: train loss %.4f, val loss %.4f, val acc %.4f",
                     round_index, row["epoch"], row["train_loss"], row["val_loss"],
                     row["val_accuracy"])
            current.next_epoch += 1
            save_resume(state_file, key, model, current, rng, generator, history, negatives)
            if on_epoch_end is not None:
                on_epoch_end(round_index, row["epoch"])
        bar.close()
    seconds = time.perf_counter() - start
    LOG.info("trained in %.1f s", seconds)
    model.eval()
    save_checkpoint(out_path, model, settings, history, train_seconds=seconds,
                    device=str(device))
    state_file.unlink(missing_ok=True)
    return history

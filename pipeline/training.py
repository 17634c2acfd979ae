"""Training the CNN face classifier with augmentation and hard-negative mining.

Round 0 trains on augmented training faces against random windows of face-free scenes and
face-free patches; each further round runs the current model over the face-free scenes, adds
its highest-scoring windows (all false positives by construction) to the negatives and trains on.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pipeline.boxes import Manifest
from pipeline.cnn import (
    FaceNet,
    build_model,
    crop_windows,
    resolve_device,
    save_checkpoint,
    score_windows,
)
from pipeline.io import read_gray

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


def random_windows(images: list[np.ndarray], count: int, window: int, min_size: int,
                   rng: np.random.Generator) -> np.ndarray:
    """``count`` random square windows of face-free images, resized to (count, window, window)."""
    out = np.empty((count, window, window), np.uint8)
    for k in range(count):
        image = images[int(rng.integers(len(images)))]
        height, width = image.shape
        side = int(rng.integers(min_size, min(height, width) + 1))
        x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        patch = cv2.resize(image[y:y + side, x:x + side], (window, window),
                           interpolation=cv2.INTER_AREA)
        out[k] = photometric(patch, rng) if rng.random() < 0.5 else patch
    return out


def mine_hard_negatives(model: FaceNet, images: list[np.ndarray], count: int,
                        device: torch.device) -> np.ndarray:
    """The ``count`` highest-scoring windows (prob >= 0.5) of face-free images."""
    model.eval()
    boxes, scores, sources = [], [], []
    for index, image in enumerate(images):
        found, probs = score_windows(model, image, min_size=24, scale_factor=1.25,
                                     threshold=0.5, device=device)
        boxes.append(found)
        scores.append(probs)
        sources.append(np.full(len(probs), index))
    all_scores = np.concatenate(scores)
    if all_scores.size == 0:
        return np.zeros((0, model.window, model.window), np.uint8)
    order = np.argsort(-all_scores, kind="stable")[:count]
    all_boxes, all_sources = np.concatenate(boxes), np.concatenate(sources)
    return np.concatenate([
        crop_windows(images[i], all_boxes[order[all_sources[order] == i]], model.window)
        for i in range(len(images))
    ])


def fit(model: FaceNet, patches: np.ndarray, labels: np.ndarray, settings: dict[str, Any],
        device: torch.device, generator: torch.Generator, round_index: int
        ) -> list[dict[str, float]]:
    """Train on (N, window, window) uint8 patches with 0/1 labels; 10% held out for validation.

    Returns one history row per epoch: round, epoch, train loss, validation loss and accuracy.
    """
    n = len(patches)
    order = torch.randperm(n, generator=generator).numpy()
    n_val = max(n // 10, 1)
    val_idx, train_idx = order[:n_val], order[n_val:]
    x = torch.from_numpy(patches).float()[:, None]
    y = torch.from_numpy(labels).float()
    x_val, y_val = x[val_idx].to(device), y[val_idx].to(device)
    if settings["optimizer"] == "adamw":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(
            model.parameters(), lr=settings["learning_rate"],
            weight_decay=settings["weight_decay"])
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=settings["learning_rate"],
                                    momentum=settings["momentum"],
                                    weight_decay=settings["weight_decay"])
    batch = settings["batch_size"]
    steps = settings["epochs"] * int(np.ceil(len(train_idx) / batch))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    loss_fn = nn.BCEWithLogitsLoss()
    history = []
    progress = tqdm(total=steps, desc=f"train round {round_index}", unit="step")
    for epoch in range(settings["epochs"]):
        model.train()
        permutation = train_idx[torch.randperm(len(train_idx), generator=generator).numpy()]
        total, seen = 0.0, 0
        for start in range(0, len(permutation), batch):
            idx = permutation[start:start + batch]
            xb, yb = x[idx].to(device), y[idx].to(device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                loss = loss_fn(model(xb).reshape(-1), yb)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            progress.update(1)
            progress.set_postfix(loss=f"{total / seen:.4f}")
        model.eval()
        with torch.no_grad():
            logits = model(x_val).reshape(-1).float()
            val_loss = float(loss_fn(logits, y_val))
            val_acc = float(((logits > 0).float() == y_val).float().mean())
        row = {"round": round_index, "epoch": epoch, "train_loss": total / seen,
               "val_loss": val_loss, "val_accuracy": val_acc}
        history.append(row)
        LOG.info("round %d epoch %d: train loss %.4f, val loss %.4f, val acc %.4f",
                 round_index, epoch, row["train_loss"], val_loss, val_acc)
    progress.close()
    return history


def train_cnn(settings: dict[str, Any], train_npz: str | Path, backgrounds_json: str | Path,
              out_path: str | Path) -> list[dict[str, float]]:
    """Train a model as ``settings`` (a ``models:`` entry) say and save its checkpoint."""
    seed = settings["seed"]
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    device = resolve_device(settings["device"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    window = settings["window"]
    with np.load(train_npz) as data:
        faces, nonfaces = data["faces"], data["nonfaces"]
    manifest = Manifest.load(backgrounds_json)
    backgrounds = [read_gray(manifest.image_path(r)) for r in manifest.images]
    if len(faces) == 0 or not backgrounds:
        raise ValueError(f"{train_npz}: no training faces or no face-free scenes to train on")
    LOG.info("training %s on %s: %d faces, %d face-free patches, %d face-free scenes, "
             "device %s", settings["architecture"], train_npz, len(faces), len(nonfaces),
             len(backgrounds), device)

    model = build_model(settings["architecture"], window).to(device)
    negatives = np.concatenate([
        np.stack([cv2.resize(p, (window, window), interpolation=cv2.INTER_AREA)
                  for p in nonfaces]) if len(nonfaces) else np.zeros((0, window, window),
                                                                    np.uint8),
        random_windows(backgrounds, settings["negatives_per_round"], window, 24, rng),
    ])
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    for round_index in range(settings["hard_negative_rounds"] + 1):
        if round_index > 0:
            mined = mine_hard_negatives(model, backgrounds, settings["hard_negatives_per_round"],
                                        device)
            LOG.info("round %d: mined %d hard negatives", round_index, len(mined))
            negatives = np.concatenate([negatives, mined])
        positives = augment_faces(faces, settings["positives_per_face"], window, rng)
        patches = np.concatenate([positives, negatives])
        labels = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
        history += fit(model, patches, labels.astype(np.float32), settings, device, generator,
                       round_index)
    seconds = time.perf_counter() - start
    LOG.info("trained in %.1f s", seconds)
    model.eval()
    save_checkpoint(out_path, model, settings, history, train_seconds=seconds,
                    device=str(device))
    return history

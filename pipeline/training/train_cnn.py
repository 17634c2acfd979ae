"""Training the CNN face classifier with augmentation and hard-negative mining.

Round 0 trains on augmented training faces against random windows of face-free scenes and
face-free patches; each further round runs the current model over the face-free scenes, adds
its highest-scoring windows (all false positives by construction) to the negatives and trains on.
Each round holds out 10% of its patches for validation; with ``early_stopping`` a round ends
when the validation objective stops improving, on the weights of its best epoch.

This module is the loop (epochs, early stopping, resume state); a round's patches come from
:mod:`~pipeline.training.cnn_samples`, its optimiser state is a
:class:`~pipeline.training.cnn_rounds.Round`, its objective is in
:mod:`~pipeline.training.cnn_loss`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.io import atomic_open, progress
from pipeline.models.cnn import (
    FaceNet,
    checkpoint_problem,
    model_for,
    resolve_device,
    save_checkpoint,
    split_outputs,
)
from pipeline.training.cnn_loss import batch_loss, batch_losses, validation_objective
from pipeline.training.cnn_rounds import Round, new_round, steps_per_epoch
from pipeline.training.cnn_samples import mine_hard_negatives, round_faces
from pipeline.training.resume import load_resume_state, resume_key, resume_path
from pipeline.training.samples import load_training_data, random_windows, resize_patches

LOG = logging.getLogger(__name__)


def track_best(model: FaceNet, current: Round, row: dict[str, float],
               settings: dict[str, Any]) -> bool:
    """Early stopping (``early_stopping: {patience, min_delta}``; absent: never stops): keep
    the weights of the round's best epoch so far by :func:`validation_objective` (better means
    lower by more than ``min_delta``). True when ``patience`` epochs have passed since it."""
    rule = settings.get("early_stopping")
    if rule is None:
        return False
    objective = validation_objective(row, settings)
    if objective < current.best_objective - rule["min_delta"]:
        current.best_objective, current.best_epoch = objective, int(row["epoch"])
        current.best_state = {name: value.detach().clone()
                              for name, value in model.state_dict().items()}
    return row["epoch"] - current.best_epoch >= rule["patience"]


def run_epoch(model: FaceNet, current: Round, tensors: tuple[torch.Tensor, ...],
              settings: dict[str, Any], device: torch.device, generator: torch.Generator,
              bar: Any) -> dict[str, float]:
    """One pass over the round's training patches, then the validation loss and accuracy
    (and, with box regression, the validation box loss)."""
    x, y, t = tensors
    use_amp = device.type == "cuda"
    val_idx, train_idx = current.order[:current.n_val], current.order[current.n_val:]
    model.train()
    permutation = train_idx[torch.randperm(len(train_idx), generator=generator).numpy()]
    total, seen, batch = 0.0, 0, settings["batch_size"]
    for start in range(0, len(permutation), batch):
        idx = permutation[start:start + batch]
        xb, yb, tb = x[idx].to(device), y[idx].to(device), t[idx].to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            outputs, aux = model.logits_with_aux(xb)
            loss = batch_loss(outputs, aux, yb, tb, settings)
        current.optimizer.zero_grad(set_to_none=True)
        current.scaler.scale(loss).backward()
        current.scaler.step(current.optimizer)
        current.scaler.update()
        current.schedule.step()
        total += loss.item() * len(idx)
        seen += len(idx)
        bar.update(1)
        bar.set_postfix(loss=f"{total / seen:.4f}", refresh=False)  # drawn at mininterval
    model.eval()
    with torch.no_grad():
        x_val, y_val, t_val = x[val_idx].to(device), y[val_idx].to(device), t[val_idx].to(device)
        outputs = model(x_val).float()
        val_loss, val_box_loss = batch_losses(outputs, None, y_val, t_val, settings)
        logits, labelled = split_outputs(outputs)[0].reshape(-1), y_val >= 0
        val_acc = float(((logits[labelled] > 0).float() == y_val[labelled]).float().mean())
        row = {"round": current.index, "epoch": current.next_epoch,
               "train_loss": total / seen, "val_loss": float(val_loss), "val_accuracy": val_acc}
        if val_box_loss is not None:
            row["val_box_loss"] = float(val_box_loss)
    return row


def save_resume(path: Path, key: str, model: FaceNet, current: Round,
                rng: np.random.Generator, generator: torch.Generator,
                history: list[dict[str, float]], negatives: np.ndarray) -> None:
    """Everything needed to continue training after the epoch just finished."""
    state = {
        "key": key,
        "round": current.index, "next_epoch": current.next_epoch,
        "model": model.state_dict(), "optimizer": current.optimizer.state_dict(),
        "schedule": current.schedule.state_dict(), "scaler": current.scaler.state_dict(),
        "positives": torch.from_numpy(current.positives),
        "parts": torch.from_numpy(current.parts),
        "targets": torch.from_numpy(current.targets),
        "round_negatives": torch.from_numpy(current.negatives),
        "best_objective": current.best_objective, "best_epoch": current.best_epoch,
        "best_state": current.best_state or {},
        "negatives": torch.from_numpy(negatives), "order": torch.from_numpy(current.order),
        "numpy_rng": json.dumps(rng.bit_generator.state),
        "torch_generator": generator.get_state(), "history": history,
    }
    with atomic_open(path, "wb") as handle:
        torch.save(state, handle)


def _read_resume(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - told apart by checkpoint_problem
        raise ValueError(checkpoint_problem(path, error)) from error


def train_cnn(settings: dict[str, Any], train_npz: str | Path, backgrounds_json: str | Path,
              out_path: str | Path,
              on_epoch_end: Callable[[int, int], None] | None = None
              ) -> list[dict[str, float]]:
    """Train a model as ``settings`` (a ``models:`` entry) say and save its checkpoint.

    After every epoch the full training state is saved beside ``out_path``; a run that was
    killed resumes from there and ends with the same weights as an uninterrupted run.
    ``on_epoch_end(round, epoch)`` is called after each save (tests use it to interrupt).
    """
    from pipeline.defaults import with_defaults

    settings = with_defaults(settings, "models.*")
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

    # Channels-last weights: about 1.4-1.5x the patches/s of the default layout for lenet5 on one
    # CPU thread (benchmarks/speed.py), the same function up to float rounding.
    model = model_for(settings).to(device, memory_format=torch.channels_last)
    key = resume_key(settings, train_npz, backgrounds_json)
    state_file = resume_path(out_path)
    state = load_resume_state(state_file, key, _read_resume)
    history: list[dict[str, float]] = []
    current: Round | None = None
    if state is None:
        negatives = np.concatenate([
            resize_patches(nonfaces, window),
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
                            state["parts"].numpy(), state["targets"].numpy(),
                            order=state["order"].numpy())
        current.optimizer.load_state_dict(state["optimizer"])
        current.schedule.load_state_dict(state["schedule"])
        current.scaler.load_state_dict(state["scaler"])
        current.next_epoch = state["next_epoch"]
        current.best_objective = state.get("best_objective", float("inf"))  # older states
        current.best_epoch = state.get("best_epoch", -1)  # lack them (no early stopping)
        current.best_state = state.get("best_state") or None
        LOG.info("resuming from %s: round %d, epoch %d", state_file, first_round,
                 current.next_epoch)
    start = time.perf_counter()
    for round_index in range(first_round, settings["hard_negative_rounds"] + 1):
        if current is None or current.index != round_index:
            if round_index > 0:
                mined = mine_hard_negatives(model, backgrounds,
                                            settings["hard_negatives_per_round"], device,
                                            settings["mining_scenes"],
                                            settings["seed"], round_index,
                                            settings["mining_scale_factor"])
                LOG.info("round %d: mined %d hard negatives", round_index, len(mined))
                negatives = np.concatenate([negatives, mined])
            positives, parts, targets = round_faces(faces, backgrounds, settings, window,
                                                     round_index)
            current = new_round(round_index, model, positives, negatives, settings, generator,
                                device, parts, targets)
        tensors = current.tensors()
        if device.type == "cuda":  # the round's patches onto the GPU once, not every batch
            tensors = tuple(t.pin_memory().to(device, non_blocking=True) for t in tensors)
        steps = steps_per_epoch(len(tensors[1]), settings["batch_size"])
        bar = progress(total=steps * settings["epochs"], initial=steps * current.next_epoch,
                       desc=f"train round {round_index}", unit="step")
        while current.next_epoch < settings["epochs"]:
            row = run_epoch(model, current, tensors, settings, device, generator, bar)
            history.append(row)
            LOG.info("round %d epoch %d: train loss %.4f, val loss %.4f, val acc %.4f",
                     round_index, row["epoch"], row["train_loss"], row["val_loss"],
                     row["val_accuracy"])
            current.next_epoch += 1
            if track_best(model, current, row, settings):
                LOG.info("round %d: early stop after epoch %d, best epoch %d (validation "
                         "objective %.4f)", round_index, row["epoch"], current.best_epoch,
                         current.best_objective)
                current.next_epoch = settings["epochs"]
            if current.next_epoch == settings["epochs"] and current.best_state is not None:
                model.load_state_dict(current.best_state)  # the round ends on its best epoch
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

"""The CNN face/non-face classifier: architectures, building one from settings, checkpoints.

Networks use only unpadded ("valid") convolutions and non-overlapping pooling, so running the
network over a whole image gives, at output cell (i, j), exactly the score the patch classifier
gives the ``window`` x ``window`` patch at ``(stride * j, stride * i)``: one pass scores every
window of a pyramid level (:mod:`pipeline.models.cnn_scoring`).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn


class FaceNet(nn.Module):
    """Fully convolutional face scorer: uint8-range input (N, 1, H, W) -> (N, C, H', W'):
    channel 0 the face logit; with ``box_regression`` (C = 5), channels 1-4 the window's edge
    offsets to the face box (left, top, right, bottom; :func:`pipeline.boxes.edge_offsets`).

    ``window`` is the input patch side that maps to one output cell, ``stride`` the pixel step
    between neighbouring output cells.
    """

    def __init__(self, body: nn.Module, window: int, stride: int, outputs: int = 1) -> None:
        super().__init__()
        self.body = body
        self.window = window
        self.stride = stride
        self.outputs = outputs

    @property
    def box_regression(self) -> bool:
        """Whether the net predicts box offsets besides the face logit."""
        return self.outputs == 1 + BOX_CHANNELS

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalise(images))

    @staticmethod
    def normalise(images: torch.Tensor) -> torch.Tensor:
        """Grey levels 0-255 to roughly zero mean, unit spread."""
        return (images - 127.5) / 64.0

    def logits_with_aux(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The net's outputs (N, C, H', W') and, for bodies with an auxiliary classifier,
        its logits (N, 1, H', W')."""
        if hasattr(self.body, "forward_with_aux"):
            return self.body.forward_with_aux(self.normalise(images))
        return self.forward(images), None


# Output channels of a net with box regression: the face logit, then the four edge offsets.
BOX_CHANNELS = 4


def split_outputs(outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A net's output (N, C, H', W') -> logits (N, H', W') and offsets (N, 4, H', W'), or None
    without box regression."""
    return outputs[:, 0], (outputs[:, 1:] if outputs.shape[1] > 1 else None)


def _conv_block(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def lenet5(window: int = 32, outputs: int = 1) -> FaceNet:
    """LeNet-5-style net for 32x32 patches, with batch norm and ReLU.

    32 -conv5-> 28 -pool-> 14 -conv3-> 12 -pool-> 6 -conv3-> 4 -conv4-> 1 -conv1-> logit.
    The 4x4 and 1x1 convolutions are LeNet's fully connected layers written as convolutions.
    """
    if window != 32:
        raise ValueError(f"lenet5 is built for 32x32 windows, not {window}")
    body = nn.Sequential(
        *_conv_block(1, 16, 5), nn.MaxPool2d(2),
        *_conv_block(16, 32, 3), nn.MaxPool2d(2),
        *_conv_block(32, 64, 3),
        *_conv_block(64, 64, 4),
        nn.Conv2d(64, outputs, 1),
    )
    return FaceNet(body, window=32, stride=4, outputs=outputs)


def proposal(window: int = 16, outputs: int = 1) -> FaceNet:
    """A tiny proposal net for 16x16 windows, the first stage of the CNN cascade: cheap
    enough to run over the whole pyramid, meant for recall, not precision.

    16 -conv3-> 14 -pool-> 7 -conv3-> 5 -conv5-> 1 -conv1-> logit (stride 2).
    """
    if window != 16:
        raise ValueError(f"proposal is built for 16x16 windows, not {window}")
    body = nn.Sequential(
        *_conv_block(1, 8, 3), nn.MaxPool2d(2),
        *_conv_block(8, 16, 3),
        *_conv_block(16, 32, 5),
        nn.Conv2d(32, outputs, 1),
    )
    return FaceNet(body, window=16, stride=2, outputs=outputs)


def output(window: int = 48, outputs: int = 1) -> FaceNet:
    """An output net for 48x48 windows, the optional third stage of the CNN cascade (after
    MTCNN's O-Net: 3x3 convolutions of 16, 32, 64 channels, each followed by 2x2 max pooling,
    then a 128-wide fully connected layer written as a convolution).

    48 -conv3-> 46 -pool-> 23 -conv3-> 21 -pool-> 10 -conv3-> 8 -pool-> 4 -conv4-> 1 -conv1->
    logit (stride 8).
    """
    if window != 48:
        raise ValueError(f"output is built for 48x48 windows, not {window}")
    body = nn.Sequential(
        *_conv_block(1, 16, 3), nn.MaxPool2d(2),
        *_conv_block(16, 32, 3), nn.MaxPool2d(2),
        *_conv_block(32, 64, 3), nn.MaxPool2d(2),
        *_conv_block(64, 128, 4),
        nn.Conv2d(128, outputs, 1),
    )
    return FaceNet(body, window=48, stride=8, outputs=outputs)


def vgg(window: int = 32, outputs: int = 1) -> FaceNet:
    """VGG-style net: stacks of unpadded 3x3 convolutions, 2x2 max pooling, channels doubled
    after each pooling.

    32 -3x3-> 30 -3x3-> 28 -pool-> 14 -3x3-> 12 -3x3-> 10 -pool-> 5 -conv5-> 1 -conv1-> logit.
    """
    if window != 32:
        raise ValueError(f"vgg is built for 32x32 windows, not {window}")
    body = nn.Sequential(
        *_conv_block(1, 16, 3), *_conv_block(16, 16, 3), nn.MaxPool2d(2),
        *_conv_block(16, 32, 3), *_conv_block(32, 32, 3), nn.MaxPool2d(2),
        *_conv_block(32, 64, 5),
        nn.Conv2d(64, outputs, 1),
    )
    return FaceNet(body, window=32, stride=4, outputs=outputs)


def _centre_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    dy, dx = (x.shape[-2] - size[0]) // 2, (x.shape[-1] - size[1]) // 2
    return x[..., dy:dy + size[0], dx:dx + size[1]]


class Inception(nn.Module):
    """Inception module with 1x1 bottlenecks and unpadded branches, centre-cropped to the
    smallest branch so that the module stays exactly fully convolutional.

    Branches: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3 (a factorised 5x5, optional); 3x3 max pool
    (stride 1) -> 1x1. Output channels: the sum of the branch widths.
    """

    def __init__(self, c_in: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int,
                 pool_proj: int) -> None:
        super().__init__()
        self.branch1 = nn.Sequential(*_conv_block(c_in, c1, 1))
        self.branch3 = nn.Sequential(*_conv_block(c_in, c3_reduce, 1),
                                     *_conv_block(c3_reduce, c3, 3))
        self.branch5 = (nn.Sequential(*_conv_block(c_in, c5_reduce, 1),
                                      *_conv_block(c5_reduce, c5, 3), *_conv_block(c5, c5, 3))
                        if c5 else None)
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1),
                                         *_conv_block(c_in, pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch3(x), self.branch_pool(x)]
        if self.branch5 is not None:
            branches.append(self.branch5(x))
        size = min(b.shape[-2] for b in branches), min(b.shape[-1] for b in branches)
        return torch.cat([_centre_crop(b, size) for b in branches], dim=1)


class GoogLeNetBody(nn.Module):
    """GoogLeNet-style body for 32x32 windows.

    Stem (conv 5x5, max pool: 32 -> 14), inception (14 -> 10), max pool (-> 5), inception
    (5 -> 3), global average pooling over the window's 3x3 cells written as a 3x3 stride-1
    average pool, so that a larger image still gets one score per window; a 1x1 classifier.
    The auxiliary classifier reads the first inception's output (average pool, 1x1 conv).
    """

    def __init__(self, outputs: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_block(1, 24, 5), nn.MaxPool2d(2))
        self.inception_a = Inception(24, 16, 16, 24, 8, 8, 8)      # -> 56 channels
        self.pool = nn.MaxPool2d(2)
        self.inception_b = Inception(56, 32, 24, 48, 0, 0, 16)     # -> 96 channels
        self.global_pool = nn.AvgPool2d(3, stride=1)
        self.classifier = nn.Conv2d(96, outputs, 1)
        self.aux = nn.Sequential(nn.AvgPool2d(10, stride=4), *_conv_block(56, 32, 1),
                                 nn.Conv2d(32, 1, 1))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.inception_a(self.stem(x))
        return a, self.inception_b(self.pool(a))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.global_pool(self.features(x)[1]))

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Main and auxiliary logits, for training."""
        a, b = self.features(x)
        return self.classifier(self.global_pool(b)), self.aux(a)


def googlenet(window: int = 32, outputs: int = 1) -> FaceNet:
    """GoogLeNet-style net (see :class:`GoogLeNetBody`); the auxiliary classifier gives a
    face logit only."""
    if window != 32:
        raise ValueError(f"googlenet is built for 32x32 windows, not {window}")
    return FaceNet(GoogLeNetBody(outputs), window=32, stride=4, outputs=outputs)


# Architecture name -> constructor(window, outputs).
ARCHITECTURES: dict[str, Callable[[int, int], FaceNet]] = {
    "proposal": proposal,
    "lenet5": lenet5,
    "vgg": vgg,
    "googlenet": googlenet,
    "output": output,
}


def build_model(architecture: str, window: int, box_regression: bool = False) -> FaceNet:
    """The named architecture; with ``box_regression`` it also predicts edge offsets."""
    if architecture not in ARCHITECTURES:
        raise KeyError(f"unknown architecture '{architecture}'; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](window, 1 + BOX_CHANNELS * box_regression)


def model_for(settings: dict[str, Any]) -> FaceNet:
    """The untrained net of a ``models:`` entry."""
    return build_model(settings["architecture"], settings["window"],
                       "box_regression" in settings)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device")
    return torch.device(name)


def save_checkpoint(path: str | Path, model: FaceNet, settings: dict[str, Any],
                    history: list[dict[str, float]], **extra: Any) -> None:
    """Weights, the settings that trained them and the training history, in one file."""
    from pipeline.io import atomic_open

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"state_dict": state, "settings": settings, "history": history,
               "window": model.window, "stride": model.stride, **extra}
    with atomic_open(path, "wb") as handle:
        torch.save(payload, handle)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu"
                    ) -> tuple[FaceNet, dict[str, Any]]:
    """The model in eval mode and the whole checkpoint dict (loaded with weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model checkpoint not found")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
        model = model_for({**payload["settings"], "window": payload["window"]})
        model.load_state_dict(payload["state_dict"])
    except Exception as error:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: not a valid model checkpoint "
                         f"({checkpoint_problem(path, error)})") from None
    return model.to(device).eval(), payload


def checkpoint_problem(path: str | Path, error: Exception) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, in words for a user: never torch's
    own advice to turn the safety check off."""
    if Path(path).stat().st_size == 0:
        return "the file is empty (0 bytes)"
    if isinstance(error, pickle.UnpicklingError):
        return ("it holds Python objects other than tensors and plain data, which are not "
                "loaded for safety; only checkpoints written by this pipeline load")
    if isinstance(error, KeyError):
        return f"a checkpoint entry is missing or unreadable ({error})"
    first = str(error).strip().split(". ")[0].strip()
    if not first or "weights_only" in first:
        first = type(error).__name__
    return f"corrupt or not a PyTorch checkpoint: {first}"

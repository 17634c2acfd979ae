"""Layer-by-layer complexity of the CNN architectures, as the AlexNet/VGG/GoogLeNet papers
tabulate it: output shape, parameters, multiply-adds and activation memory per layer for one
window, measured by running the network (inference path only) on a window-sized input."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.models.cnn import ARCHITECTURES

BYTES_PER_VALUE = 4  # float32 activations


def layer_table(architecture: str) -> list[dict[str, Any]]:
    """One row per leaf layer run at inference: name, type, output shape (C, H, W),
    parameters, multiply-adds and activation bytes, for one window of the architecture's
    size, (1, 1, window, window)."""
    model = ARCHITECTURES[architecture]().eval()
    window = model.window
    rows: list[dict[str, Any]] = []

    def record(name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor):
            shape = tuple(output.shape[1:])
            cells = output[0].numel()
            macs = 0
            if isinstance(module, nn.Conv2d):
                per_output = module.in_channels // module.groups * module.kernel_size[0] \
                    * module.kernel_size[1]
                macs = cells * per_output
            rows.append({"layer": name, "type": type(module).__name__, "output": list(shape),
                         "parameters": sum(p.numel() for p in module.parameters(recurse=False)),
                         "multiply_adds": macs, "activation_bytes": cells * BYTES_PER_VALUE})
        return hook

    handles = [module.register_forward_hook(record(name))
               for name, module in model.named_modules() if not list(module.children())]
    with torch.no_grad():
        model(torch.zeros(1, 1, window, window))
    for handle in handles:
        handle.remove()
    return rows


def complexity(architectures: list[str] | None = None) -> dict[str, Any]:
    """Tables and totals for each architecture (all registered ones by default)."""
    result = {}
    for name in architectures or sorted(ARCHITECTURES):
        rows = layer_table(name)
        model = ARCHITECTURES[name]()
        result[name] = {
            "window": model.window,
            "layers": rows,
            "total_parameters": sum(p.numel() for p in model.parameters()),
            "inference_parameters": sum(r["parameters"] for r in rows),
            "total_multiply_adds": sum(r["multiply_adds"] for r in rows),
            "total_activation_bytes": sum(r["activation_bytes"] for r in rows),
        }
    return {"architectures": result}

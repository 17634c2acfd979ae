"""What the figure modules share: the non-interactive matplotlib backend, the detectors'
colours, the grid of panels and the atomic PNG writer."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.io import atomic_open  # noqa: E402

COLOURS = ["tab:red", "tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:olive"]


def save(figure: plt.Figure, path: Path) -> None:
    """Write ``figure`` as PNG (110 dpi) to ``path`` atomically, and close it."""
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)


def grid(rows: int, cols: int, width: float = 4.0, height: float = 3.4
         ) -> tuple[plt.Figure, np.ndarray]:
    """A figure of rows x cols panels (inches per panel), axes always a 2-D array."""
    figure, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows),
                                squeeze=False, constrained_layout=True)
    return figure, axes


def number(value: float | None) -> float:
    """None (undefined) as NaN, which matplotlib leaves out."""
    return np.nan if value is None else value

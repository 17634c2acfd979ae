"""Discrete AdaBoost with decision stumps over a precomputed feature matrix, vectorised.

Each feature's values are sorted once (:class:`SortedFeatures`); a boosting round then finds
the best threshold of every feature at once from cumulative sums of signed sample weights in
that order. With ``D[i]`` the positive minus negative weight of the ``i + 1`` lowest samples,
a stump "value >= threshold -> face" placed after sample ``i`` errs on ``Tn + D[i]`` and the
opposite stump on ``Tp - D[i]``. The arrays may be numpy (CPU) or torch tensors (GPU): the
search uses only operations both share (plus torch's faster running sum on the CPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# Features scored together in one round: bounds the (chunk, N) temporaries.
CHUNK_FEATURES = 2048


@dataclass
class SortedFeatures:
    """Feature values (F, N) float32, each row's ascending sample order (F, N), and ``closed``
    (F, N) bool: no threshold fits after sorted position i because the next value is equal
    (or there is no next value)."""

    values: np.ndarray
    order: Any
    closed: Any

    @classmethod
    def build(cls, values: np.ndarray, device: str = "cpu") -> SortedFeatures:
        """Sort on ``device`` (torch's sort, also the faster one on the CPU); on "cpu" the
        order and ties are kept as numpy arrays, elsewhere as torch tensors there."""
        import torch

        ordered, order = torch.sort(torch.from_numpy(values).to(device), dim=1, stable=True)
        closed = torch.ones_like(ordered, dtype=torch.bool)
        closed[:, :-1] = ordered[:, 1:] == ordered[:, :-1]
        del ordered
        if torch.device(device).type == "cpu":
            return cls(values, order.numpy().astype(np.int32), closed.numpy())
        return cls(values, order, closed)

    def threshold(self, feature: int, position: int) -> float:
        """A float32 threshold strictly above sorted value ``position`` and at most the next."""
        order = self.order[feature]
        order = order.cpu().numpy() if hasattr(order, "cpu") else order
        low, high = self.values[feature, order[position:position + 2]]
        middle = np.float32((np.float64(low) + np.float64(high)) / 2)
        if middle <= low:
            middle = np.nextafter(low, np.float32(np.inf))
        return float(middle)


@dataclass
class StumpChoice:
    """The stump a boosting round chose, with its weighted ``error`` (the cascade stores it as
    :class:`pipeline.models.cascade.Stump`, with leaf values). ``polarity`` +1: value >= threshold
    -> face; -1: value < threshold -> face."""

    feature: int
    threshold: float
    polarity: int
    error: float

    def predict(self, values: np.ndarray) -> np.ndarray:
        """+1 (face) / -1 for the feature's values (N,)."""
        above = values >= np.float32(self.threshold)
        return np.where(above, self.polarity, -self.polarity)


def best_stump(features: SortedFeatures, labels: np.ndarray, weights: np.ndarray
               ) -> StumpChoice:
    """The stump of least weighted error over all features and thresholds.

    ``labels`` (N,) are 1 (face) / 0, ``weights`` (N,) non-negative. Only thresholds between
    distinct values are considered; a feature with one value everywhere is never chosen.
    """
    signed = np.where(labels == 1, weights, -weights).astype(np.float32)
    total_pos = float(weights[labels == 1].sum())
    total_neg = float(weights[labels != 1].sum())
    if not isinstance(features.order, np.ndarray):
        import torch

        signed = torch.from_numpy(signed).to(features.order.device)
    best = (math.inf, 0, 0, 1)  # error, feature, position, polarity
    n_features = features.values.shape[0]
    for start in range(0, n_features, CHUNK_FEATURES):
        cumulative = _cumsum_rows(signed[features.order[start:start + CHUNK_FEATURES]])
        closed = features.closed[start:start + CHUNK_FEATURES]
        width = cumulative.shape[1]
        _masked_fill(cumulative, closed, math.inf)  # lowest D: best "value >= t -> face"
        flat = int(cumulative.argmin())
        candidates = [(total_neg + float(cumulative.reshape(-1)[flat]), flat, 1)]
        _masked_fill(cumulative, closed, -math.inf)  # highest D: best opposite stump
        flat = int(cumulative.argmax())
        candidates.append((total_pos - float(cumulative.reshape(-1)[flat]), flat, -1))
        for error, flat, polarity in candidates:
            if error < best[0]:
                best = (error, start + flat // width, flat % width, polarity)
    error, feature, position, polarity = best
    if not math.isfinite(error):
        raise ValueError("no feature takes two different values on these samples")
    stump = StumpChoice(feature, features.threshold(feature, position), polarity, error)
    # The exact error, in float64, of the stump as it will be applied.
    wrong = stump.predict(features.values[feature]) != np.where(labels == 1, 1, -1)
    stump.error = float(weights[wrong].sum() / weights.sum())
    return stump


def _cumsum_rows(values: Any) -> Any:
    """Running sums along axis 1, in place. numpy's own cumsum is several times slower on the
    CPU than torch's, so numpy arrays are summed by torch through a shared-memory view."""
    if isinstance(values, np.ndarray):
        import torch

        view = torch.from_numpy(values)
        torch.cumsum(view, 1, out=view)
        return values
    return values.cumsum_(1)


def _masked_fill(values: Any, mask: Any, fill: float) -> None:
    """values[mask] = fill, in place, for numpy arrays and torch tensors."""
    if isinstance(values, np.ndarray):
        np.copyto(values, np.float32(fill), where=mask)
    else:
        values.masked_fill_(mask, fill)


def stump_weight(error: float, floor: float = 1e-10) -> float:
    """Discrete AdaBoost's vote of a weak classifier: 0.5 * ln((1 - error) / error)."""
    error = min(max(error, floor), 1 - floor)
    return 0.5 * math.log((1 - error) / error)


def reweight(weights: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
             alpha: float) -> np.ndarray:
    """AdaBoost's update w * exp(-alpha * y * h), y and h in {-1, +1}, normalised to sum 1."""
    signs = np.where(labels == 1, 1.0, -1.0)
    updated = weights * np.exp(-alpha * signs * predictions)
    return updated / updated.sum()


def initial_weights(labels: np.ndarray) -> np.ndarray:
    """Viola-Jones start: half the weight on the faces, half on the non-faces, (N,) float64."""
    positive = labels == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"boosting needs faces and non-faces, got {n_pos} and {n_neg}")
    return np.where(positive, 0.5 / n_pos, 0.5 / n_neg)

"""Discrete AdaBoost with decision stumps over a precomputed feature matrix, vectorised.

Each feature's values are sorted once (:class:`SortedFeatures`); a boosting round then finds
the best threshold of every feature at once from cumulative sums of signed sample weights in
that order. With ``D[i]`` the positive minus negative weight of the ``i + 1`` lowest samples,
a stump "value >= threshold -> face" placed after sample ``i`` errs on ``Tn + D[i]`` and the
opposite stump on ``Tp - D[i]``. The arrays may be numpy (CPU) or torch tensors (GPU): the
search uses only operations both share (plus torch's faster running sum on the CPU).

On the CPU the search is one compiled pass per feature row (numba): it gathers the signed
weights in sorted order, keeps the running sum and the row's lowest and highest sums at open
positions, so the (F, N) sums are never stored. It returns exactly the stump of the plain
chunked search: the same float32 running sums (summed in float64 and rounded at each prefix,
as torch's cumsum sums float32) and the same first-occurrence tie breaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# Features scored together in one round: bounds the (chunk, N) temporaries. Its first arg-min /
# arg-max decides ties between features, so it is part of the result, not only of the speed.
CHUNK_FEATURES = 2048


@dataclass
class SortedFeatures:
    """Feature values (F, N) float32 and each row's ascending sample order (F, N), with
    where no threshold fits after sorted position i because the next value is equal (or
    there is no next value): "closed".

    On a GPU device ``order`` is an int64 tensor and ``closed`` a bool tensor (F, N). On the
    CPU ``closed`` is None and ``order`` packs both: sample index i at an open position, ~i
    (-i - 1) at a closed one, as int16 when N <= 32,767 (else int32): a quarter of the bytes
    of an int32 order and a bool mask, for the stump search to read at every stump."""

    values: np.ndarray
    order: Any
    closed: Any = None

    @classmethod
    def build(cls, values: np.ndarray, device: str = "cpu") -> SortedFeatures:
        """Sort on ``device`` (torch's sort, also the faster one on the CPU); on "cpu" the
        order is packed as numpy (see the class), elsewhere kept as torch tensors there."""
        import torch

        ordered, order = torch.sort(torch.from_numpy(values).to(device), dim=1, stable=True)
        closed = torch.ones_like(ordered, dtype=torch.bool)
        closed[:, :-1] = ordered[:, 1:] == ordered[:, :-1]
        del ordered
        if torch.device(device).type != "cpu":
            return cls(values, order, closed)
        packed = order.numpy().astype(index_type(values.shape[1]))
        np.invert(packed, out=packed, where=closed.numpy())
        return cls(values, packed)

    @classmethod
    def merged(cls, values: np.ndarray, first_order: np.ndarray, first_column: np.ndarray
               ) -> SortedFeatures:
        """``build(values)`` on the CPU, exactly, without sorting all of it: the columns of
        ``values`` (F, N) are some samples of a first block, whose stable order
        ``first_order`` (F, P) (:func:`stable_order`) is kept from stage to stage, then new
        ones. ``first_column`` (P,) gives each first-block sample's column (-1: left out);
        only the new columns are sorted, and the two orders merged
        (:func:`pipeline.training.kernels.merge_orders`)."""
        from pipeline.training.kernels import merge_orders

        if np.isnan(values).any():
            raise ValueError("feature values hold NaN: they cannot be ordered")
        kept = int((first_column >= 0).sum())
        packed = np.empty(values.shape, index_type(values.shape[1]))
        merge_orders(values, first_order, first_column, stable_order(values[:, kept:]), packed)
        return cls(values, packed)

    def unpacked(self) -> tuple[np.ndarray, np.ndarray]:
        """The order (F, N) int64 and the closed positions (F, N) bool, as numpy arrays."""
        if self.closed is not None:
            return np.asarray(self.order.cpu()), np.asarray(self.closed.cpu())
        closed = self.order < 0
        return np.where(closed, ~self.order, self.order).astype(np.int64), closed

    def threshold(self, feature: int, position: int) -> float:
        """A float32 threshold strictly above sorted value ``position`` and at most the next."""
        order = self.order[feature, position:position + 2]
        order = order.cpu().numpy() if hasattr(order, "cpu") else np.where(order < 0, ~order,
                                                                           order)
        low, high = self.values[feature, order]
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
    if features.closed is None:
        extremes = _chunk_extremes_fused(features, signed)
    else:
        import torch

        extremes = _chunk_extremes(features, torch.from_numpy(signed).to(features.order.device))
    best = (math.inf, 0, 0, 1)  # error, feature, position, polarity
    width = features.values.shape[1]
    for start, (low, low_flat), (high, high_flat) in extremes:
        for error, flat, polarity in [(total_neg + low, low_flat, 1),
                                      (total_pos - high, high_flat, -1)]:
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


Extreme = tuple[float, int]  # a running sum D and its flat index (row * N + position) in a chunk


def _chunk_extremes(features: SortedFeatures, signed: Any) -> list[tuple[int, Extreme, Extreme]]:
    """Per chunk of :data:`CHUNK_FEATURES` rows: its first row, the lowest and the highest D
    over open positions, each at its first occurrence (row-major). Whole-chunk version, for
    torch tensors (GPU)."""
    out = []
    for start in range(0, features.values.shape[0], CHUNK_FEATURES):
        cumulative = _cumsum_rows(signed[features.order[start:start + CHUNK_FEATURES]])
        closed = features.closed[start:start + CHUNK_FEATURES]
        _masked_fill(cumulative, closed, math.inf)  # lowest D: best "value >= t -> face"
        low = int(cumulative.argmin())
        low_value = float(cumulative.reshape(-1)[low])
        _masked_fill(cumulative, closed, -math.inf)  # highest D: best opposite stump
        high = int(cumulative.argmax())
        out.append((start, (low_value, low), (float(cumulative.reshape(-1)[high]), high)))
    return out


def _chunk_extremes_fused(features: SortedFeatures, signed: np.ndarray
                          ) -> list[tuple[int, Extreme, Extreme]]:
    """:func:`_chunk_extremes` for the packed order, in one compiled pass per row
    (:func:`pipeline.training.kernels.row_extremes`); each chunk's first extreme in row-major
    order is the first of its rows' extremes that no earlier row beats."""
    from pipeline.training.kernels import row_extremes

    lows, low_at, highs, high_at = row_extremes(signed, features.order)
    n_features, width = features.values.shape
    out = []
    for start in range(0, n_features, CHUNK_FEATURES):
        stop = min(start + CHUNK_FEATURES, n_features)
        low_row = start + int(np.argmin(lows[start:stop]))   # first of equal values
        high_row = start + int(np.argmax(highs[start:stop]))
        out.append((start,
                    (float(lows[low_row]), (low_row - start) * width + int(low_at[low_row])),
                    (float(highs[high_row]),
                     (high_row - start) * width + int(high_at[high_row]))))
    return out


def index_type(samples: int) -> type:
    """The smallest signed integer type the packed order of ``samples`` samples fits."""
    return np.int16 if samples <= 32_767 else np.int32


def stable_order(values: np.ndarray) -> np.ndarray:
    """Each row's stable ascending order of ``values`` (F, N), (F, N) of :func:`index_type`
    (torch's sort, the faster one on the CPU)."""
    import torch

    order = torch.sort(torch.from_numpy(values), dim=1, stable=True)[1]
    return order.numpy().astype(index_type(values.shape[1]))


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

"""The cascade trainer's two compiled loops (numba; each compiled on its first call, run on
the calling thread): the stump search's pass over each feature row, and the merge that sorts a
stage's features from the positives' order kept across stages. They stay on one thread:
numba's thread pools took CPU beside the job even when asked for one thread, and two training
jobs share this machine's two cores.

Both read the packed order of :class:`pipeline.training.boosting.SortedFeatures`: sample
index i at an open position, ~i (-i - 1) where the next sorted value is equal (or there is
none), so no threshold fits there. Only the trainer imports this module (numba is imported
with it).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=False)
def row_extremes(signed: np.ndarray, packed: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """For each row f of ``packed`` (F, N): the running sums ``D`` of ``signed`` (N,) float32
    in that order (float64, rounded to float32 at each prefix, as torch's float32 cumsum gives
    them) and, over the open positions, the lowest and highest ``D`` and the first position of
    each: (lows, low positions, highs, high positions), each (F,); +inf / -inf at position 0
    for a row with no open position."""
    rows, width = packed.shape
    lows = np.full(rows, np.inf, np.float32)
    highs = np.full(rows, -np.inf, np.float32)
    low_at = np.zeros(rows, np.int64)
    high_at = np.zeros(rows, np.int64)
    for row in range(rows):
        total = 0.0
        low, high = np.float32(np.inf), np.float32(-np.inf)
        for position in range(width):
            index = np.int64(packed[row, position])
            total += signed[index if index >= 0 else ~index]
            value = np.float32(total)
            if index >= 0:
                if value < low:
                    low, low_at[row] = value, position
                if value > high:
                    high, high_at[row] = value, position
        lows[row], highs[row] = low, high
    return lows, low_at, highs, high_at


@numba.njit(nogil=True, cache=False)
def merge_orders(values: np.ndarray, first_order: np.ndarray, first_column: np.ndarray,
                 second_order: np.ndarray, packed: np.ndarray) -> None:  # pragma: no cover
    """Fill ``packed`` (F, N) with the packed stable order of ``values`` (F, N) float32, whose
    columns are some of a first block's then a second block's, from each block's own stable
    order: ``first_order`` (F, P) over the first block's P samples, ``first_column`` (P,) the
    column of each in ``values`` (-1: left out; kept ones in their block order), and
    ``second_order`` (F, M) over the last M columns. Equal values keep the first block's
    first, as a stable sort of ``values`` does; values must not be NaN."""
    rows, width = values.shape
    n_first, n_second = first_order.shape[1], second_order.shape[1]
    offset = width - n_second
    for row in range(rows):
        i = j = 0
        for position in range(width):
            while i < n_first and first_column[first_order[row, i]] < 0:
                i += 1
            if i < n_first and (j == n_second or values[row, first_column[first_order[row, i]]]
                                <= values[row, offset + second_order[row, j]]):
                packed[row, position] = first_column[first_order[row, i]]
                i += 1
            else:
                packed[row, position] = offset + second_order[row, j]
                j += 1
        for position in range(width - 1):
            if values[row, packed[row, position]] == values[row, packed[row, position + 1]]:
                packed[row, position] = ~packed[row, position]
        packed[row, width - 1] = ~packed[row, width - 1]

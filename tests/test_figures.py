import numpy as np
import pytest

from pipeline.report.figures import _mosaic, operating_threshold


def test_mosaic_layout():
    tiles = np.arange(5 * 2 * 3, dtype=float).reshape(5, 2, 3)
    grid = _mosaic(tiles, columns=2)
    assert grid.shape == (3 * 3 - 1, 2 * 4 - 1)
    assert np.array_equal(grid[0:2, 4:7], tiles[1]) and np.array_equal(grid[6:8, 0:3], tiles[4])
    assert np.isnan(grid[2]).all() and np.isnan(grid[6:8, 4:7]).all()


def test_operating_threshold_allows_the_given_false_positives():
    run = {"n_faces": 3, "curve": {"threshold": [0.9, 0.8, 0.7, 0.6],
                                   "true_positives": [1, 1, 2, 2],
                                   "false_positives": [0, 1, 1, 2]}}
    assert operating_threshold(run, 0) == pytest.approx(0.9)
    assert operating_threshold(run, 1) == pytest.approx(0.7)
    assert operating_threshold(run, 5) == pytest.approx(0.6)

"""clusterlight.experiment.figure: means with intervals resampled within strata, and the PNG."""

import numpy as np
import pytest

from clusterlight.experiment.figure import error_figure, mean_interval


def test_constant_runs_have_a_zero_width_interval():
    mean, low, high = mean_interval([np.full((3, 2), 0.25), np.full((5, 2), 0.25)])
    assert mean == pytest.approx([0.25, 0.25]) and low == pytest.approx(mean) and high == pytest.approx(mean)


def test_resampling_stays_within_each_stratum():
    """Stratum a is all 0 (2 runs), b all 1 (2 runs): every resample keeps 2 runs of each, so every
    resampled mean is 0.5; pooled resampling would spread it."""
    mean, low, high = mean_interval([np.zeros((2, 1)), np.ones((2, 1))])
    assert (mean[0], low[0], high[0]) == pytest.approx((0.5, 0.5, 0.5))


def test_interval_brackets_the_mean_of_varying_runs():
    runs = np.array([[0.1], [0.3], [0.2], [0.6]])
    mean, low, high = mean_interval([runs])
    assert mean[0] == pytest.approx(0.3) and low[0] < mean[0] < high[0]
    assert low[0] >= 0.1 and high[0] <= 0.6


def test_error_figure_writes_a_png(tmp_path):
    panels = {
        "LSTM": {"a": [np.full((3, 3), 0.2)], "b": [np.full((2, 3), 0.4)]},
        "CNN": {"a": [np.zeros((2, 3))]},
    }
    path = error_figure(panels, ["x", "y", "macro"], tmp_path / "fig" / "e.png", "error")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

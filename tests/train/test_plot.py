"""Charts drawn with cv2: binning, the loss history, the LR finder's axes."""

from __future__ import annotations

import numpy as np
import pytest

from faceswap.train.plot import BLUE, ORANGE, Chart, binned_means, plot_losses


def test_binned_means_average_each_stretch() -> None:
    xs, ys = binned_means([0, 1, 2, 3, 4, 5, 6, 7], [1, 3, 5, 7, 9, 11, 13, 15], bins=4)
    # edges 0, 1.75, 3.5, 5.25, 7: {0, 1}, {2, 3}, {4, 5}, {6, 7}
    assert xs == [0.5, 2.5, 4.5, 6.5] and ys == [2.0, 6.0, 10.0, 14.0]
    assert binned_means([1, 2], [3, 4], bins=10) == ([1.0, 2.0], [3.0, 4.0])  # few: kept
    many = binned_means(list(range(10_000)), [1.0] * 10_000, bins=600)
    assert len(many[0]) <= 600 and all(y == 1.0 for y in many[1])


def test_chart_maps_data_to_pixels_on_linear_and_log_axes() -> None:
    chart = Chart((0, 10), (1e-3, 1), y_log=True, width=200, height=100, margins=(10, 10, 10, 10))
    assert chart.point(0, 1e-3) == (10, 90) and chart.point(10, 1) == (190, 10)
    assert chart.point(5, 10**-1.5) == (100, 50)  # the middle decade, halfway
    assert chart.point(5, 100) == (100, 10)  # above the range: at the top edge
    with pytest.raises(ValueError):
        Chart((0, 1), (0, 1), y_log=True)  # a log axis needs a positive range


def _rows_of(colour: tuple[int, int, int], image: np.ndarray, x0: int, x1: int) -> float:
    """Mean row of the pixels near ``colour`` in columns x0..x1."""
    near = np.abs(image[:, x0:x1].astype(int) - colour).sum(axis=2) < 60
    ys, _ = np.nonzero(near)
    assert len(ys), "the curve is not drawn there"
    return float(ys.mean())


def test_loss_history_draws_each_side_falling_where_its_loss_falls() -> None:
    it = np.arange(10, 3010, 10, dtype=float)
    falling, rising = 1.0 / (1 + it / 300), 0.05 + it / 30_000
    image = plot_losses({"loss_a": (list(it), list(falling)), "loss_b": (list(it), list(rising))})
    assert image.shape == (420, 720, 3)
    left, right = (75, 95), (680, 698)
    assert _rows_of(BLUE, image, *left) < _rows_of(BLUE, image, *right) - 100  # A falls
    assert _rows_of(ORANGE, image, *left) > _rows_of(ORANGE, image, *right) + 50  # B rises
    assert plot_losses({}).shape == (420, 720, 3)  # nothing logged yet: an empty chart


def test_the_metrics_log_keeps_the_history_a_resumed_run_continues(tmp_path) -> None:
    from faceswap.train.metrics import MetricsLog

    path = tmp_path / "metrics.csv"
    log = MetricsLog(path, history=("loss_a",))
    for i in range(1, 7):
        log.log(i, {"loss": 2.0 / i, "loss_a": 1.0 / i})
    assert log.history["loss_a"] == ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1.0 / i for i in range(1, 7)])
    # Resumed at 4: the rows after it are gone from the file and from the history.
    again = MetricsLog(path, resume_from=4, history=("loss_a", "d_loss"))
    again.log(5, {"loss": 0.1, "loss_a": 0.05, "d_loss": 0.7})
    its, values = again.history["loss_a"]
    assert its == [1.0, 2.0, 3.0, 4.0, 5.0] and values[-1] == 0.05
    assert again.history["d_loss"] == ([5.0], [0.7])  # a column that starts later

"""Line charts drawn with cv2 (no plotting library needed): the LR finder's curve and the
loss history of a run."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

BLACK, GREY = (0, 0, 0), (170, 170, 170)
BLUE, ORANGE, RED = (40, 90, 220), (230, 120, 20), (220, 40, 40)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


class Chart:
    """A white RGB canvas whose framed plot area maps data ``(x, y)`` to pixels, either axis
    linear or logarithmic; ``y`` outside its range is drawn at the nearer edge.

    Args:
        x_range, y_range: the data at the plot area's left/right and bottom/top edges.
        x_log, y_log: log10 axes (the ranges then must be positive).
        width, height: the image's size in pixels.
        margins: ``(left, right, top, bottom)`` pixels around the plot area, for labels.
    """

    def __init__(
        self,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        *,
        x_log: bool = False,
        y_log: bool = False,
        width: int = 720,
        height: int = 420,
        margins: tuple[int, int, int, int] = (70, 20, 40, 50),
    ) -> None:
        self.x_log, self.y_log = x_log, y_log
        self.x_lo, self.x_hi = self._axis(x_range, x_log)
        self.y_lo, self.y_hi = self._axis(y_range, y_log)
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = margins
        self.image = np.full((height, width, 3), 255, np.uint8)
        cv2.rectangle(self.image, (self.left, self.top),
                      (width - self.right, height - self.bottom), BLACK, 1)  # fmt: skip

    @staticmethod
    def _axis(bounds: tuple[float, float], log: bool) -> tuple[float, float]:
        lo, hi = (math.log10(v) for v in bounds) if log else bounds
        return lo, max(hi, lo + 1e-9)

    def point(self, x: float, y: float) -> tuple[int, int]:
        """The pixel of data point ``(x, y)``."""
        fx = ((math.log10(x) if self.x_log else x) - self.x_lo) / (self.x_hi - self.x_lo)
        y = math.log10(max(y, 1e-30)) if self.y_log else y
        fy = (min(max(y, self.y_lo), self.y_hi) - self.y_lo) / (self.y_hi - self.y_lo)
        return (
            round(self.left + fx * (self.width - self.left - self.right)),
            round(self.height - self.bottom - fy * (self.height - self.top - self.bottom)),
        )

    def line(self, xs: Sequence[float], ys: Sequence[float], colour: tuple[int, int, int]) -> None:
        pts = np.array([self.point(x, y) for x, y in zip(xs, ys, strict=True)], np.int32)
        if len(pts):
            cv2.polylines(self.image, [pts.reshape(-1, 1, 2)], False, colour, 1, cv2.LINE_AA)

    def vline(self, x: float, colour: tuple[int, int, int]) -> None:
        px, _ = self.point(x, 1.0 if self.y_log else self.y_lo)
        cv2.line(self.image, (px, self.top), (px, self.height - self.bottom), colour, 1)

    def x_tick(self, x: float, label: str) -> None:
        px, _ = self.point(x, 1.0 if self.y_log else self.y_lo)
        base = self.height - self.bottom
        cv2.line(self.image, (px, base), (px, base + 5), BLACK, 1)
        self.text(label, (px - 4 * len(label), base + 20))

    def y_tick(self, y: float, label: str) -> None:
        _, py = self.point(10**self.x_lo if self.x_log else self.x_lo, y)
        cv2.line(self.image, (self.left - 5, py), (self.left, py), BLACK, 1)
        self.text(label, (4, py + 4))

    def text(self, text: str, at: tuple[int, int], colour: tuple[int, int, int] = BLACK) -> None:
        cv2.putText(self.image, text, at, _FONT, 0.4, colour, 1, cv2.LINE_AA)

    def title(self, text: str) -> None:
        cv2.putText(self.image, text, (self.left, 25), _FONT, 0.45, BLACK, 1, cv2.LINE_AA)


def binned_means(
    xs: Sequence[float], ys: Sequence[float], bins: int
) -> tuple[list[float], list[float]]:
    """``(xs, ys)`` averaged over at most ``bins`` equal stretches of x (empty ones dropped):
    a long run's curve drawn one point a pixel column, its step-to-step noise smoothed."""
    x, y = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    if len(x) <= bins:
        return list(map(float, x)), list(map(float, y))
    edges = np.linspace(x[0], x[-1], bins + 1)
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    keep = counts > 0
    mean_x = np.bincount(which, x, bins)[keep] / counts[keep]
    mean_y = np.bincount(which, y, bins)[keep] / counts[keep]
    return list(map(float, mean_x)), list(map(float, mean_y))


#: The curves of :func:`plot_losses`: metrics column and colour.
LOSS_CURVES: Mapping[str, tuple[int, int, int]] = {"loss_a": BLUE, "loss_b": ORANGE}


def plot_losses(
    history: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    width: int = 720,
    height: int = 420,
) -> np.ndarray:
    """The loss history of a run: A's and B's reconstruction loss (:data:`LOSS_CURVES`,
    ``history[key] = (iterations, values)`` as :class:`~faceswap.train.metrics.MetricsLog`
    keeps them) against the iteration, on a log axis, each averaged over a pixel column's
    stretch of iterations."""
    chart_width = width - 90  # the plot area's pixel columns
    curves = {}
    for key in LOSS_CURVES:
        its, values = history.get(key, ((), ()))
        points = [(i, v) for i, v in zip(its, values, strict=True) if v > 0]
        if points:
            curves[key] = binned_means(*zip(*points, strict=True), bins=chart_width)
    if not curves:
        chart = Chart((0, 1), (0.1, 1), y_log=True, width=width, height=height)
        chart.title("no losses logged yet")
        return chart.image
    xs = [x for cx, _ in curves.values() for x in cx]
    ys = [y for _, cy in curves.values() for y in cy]
    x_lo, x_hi = min(xs), max(max(xs), min(xs) + 1)
    y_lo, y_hi = min(ys) / 1.1, max(ys) * 1.1
    chart = Chart((x_lo, x_hi), (y_lo, y_hi), y_log=True, width=width, height=height)
    for frac in (0.0, 0.5, 1.0):
        x = x_lo + frac * (x_hi - x_lo)
        chart.x_tick(x, f"{x:.0f}")
    for frac in (0.0, 0.5, 1.0):
        y = 10 ** (math.log10(y_lo) + frac * (math.log10(y_hi) - math.log10(y_lo)))
        chart.y_tick(y, f"{y:.3g}")
    for key, (cx, cy) in curves.items():
        chart.line(cx, cy, LOSS_CURVES[key])
    chart.title("loss (log) by iteration")
    for i, (key, (_, cy)) in enumerate(curves.items()):  # the legend, with the last values
        chart.text(f"{key} {cy[-1]:.4g}", (width - 390 + 170 * i, 25), LOSS_CURVES[key])
    return chart.image

"""The learning-rate range test (faceswap's LR finder, after Leslie Smith).

A throwaway copy of the new model trains for a few hundred steps while the learning rate
climbs geometrically from :data:`LR_LOW` to :data:`LR_HIGH`; the loss, smoothed, falls
and then blows up. The suggested rate is the one where the smoothed loss was lowest,
divided by a strength (10 by default: safely on the falling side). The pure parts (the
schedule, the smoothing, the suggestion, the plot) live here; the run is in
:mod:`faceswap.train.loop`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceswap.io.files import write_bytes_atomic, write_text_atomic

#: ``--lr-finder``: off; set (find, then train with it); exit (find, report, stop).
LR_FINDER_MODES = ("off", "set", "exit")
LR_LOW, LR_HIGH = 1e-7, 1e-1
#: The loss curve is smoothed over about this share of a decade of rates (an
#: exponential moving average, bias-corrected): wide enough to see through the batches'
#: noise, narrow enough not to lag the fall by much.
SMOOTHING_DECADES = 1 / 3
#: The test stops once the smoothed loss is this many times its lowest value.
DIVERGED = 4.0
CSV_NAME, PNG_NAME = "lr_finder.csv", "lr_finder.png"


def lr_schedule(steps: int, low: float = LR_LOW, high: float = LR_HIGH) -> np.ndarray:
    """``steps`` learning rates from ``low`` to ``high``, evenly spaced in log scale."""
    return np.geomspace(low, high, steps)


def smoothing(lrs: np.ndarray | list[float]) -> float:
    """The moving average's factor for a geometric schedule: a window of
    :data:`SMOOTHING_DECADES` of a decade (0.94 for 300 steps over six decades)."""
    if len(lrs) < 2:
        return 0.0
    steps_per_decade = 1.0 / math.log10(lrs[1] / lrs[0])
    window = max(steps_per_decade * SMOOTHING_DECADES, 1.0)
    return 1.0 - 1.0 / window


def smooth(losses: np.ndarray | list[float], beta: float) -> np.ndarray:
    """Bias-corrected exponential moving average of a loss curve."""
    out = np.empty(len(losses), dtype=np.float64)
    avg = 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * float(loss)
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def diverged(smoothed: np.ndarray, loss: float, min_steps: int = 10) -> bool:
    """Whether the test should stop: a non-finite loss, or (after ``min_steps``) the
    smoothed loss at :data:`DIVERGED` times its lowest."""
    if not math.isfinite(loss):
        return True
    return len(smoothed) > min_steps and smoothed[-1] > DIVERGED * smoothed.min()


@dataclass(frozen=True)
class LrFinderResult:
    """A range test's curve and what it suggests.

    Attributes:
        lrs, losses: the rate and the (unsmoothed) loss of each step taken.
        smoothed: :func:`smooth` of ``losses``.
        best_lr: the rate at the lowest smoothed loss.
        suggested: ``best_lr / strength``.
        strength: the divisor.
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    best_lr: float
    suggested: float
    strength: float


def suggest_lr(lrs: list[float], losses: list[float], strength: float = 10.0) -> LrFinderResult:
    """The suggestion from a range test's curve (non-finite losses at its end left out).

    Raises:
        ValueError: fewer than two finite losses.
    """
    finite = [i for i, loss in enumerate(losses) if math.isfinite(loss)]
    kept = finite[-1] + 1 if finite else 0
    if kept < 2:
        raise ValueError("the range test needs at least two finite losses")
    lrs, losses = list(lrs[:kept]), list(losses[:kept])
    smoothed = smooth(losses, smoothing(lrs))
    best = float(lrs[int(np.argmin(smoothed))])
    return LrFinderResult(
        lrs=tuple(float(x) for x in lrs),
        losses=tuple(float(x) for x in losses),
        smoothed=tuple(float(x) for x in smoothed),
        best_lr=best,
        suggested=best / strength,
        strength=strength,
    )


def plot_lr_finder(result: LrFinderResult, width: int = 720, height: int = 420) -> np.ndarray:
    """The curve as an RGB uint8 image: loss (grey) and smoothed loss (blue) against the
    rate on a log axis, the lowest point (grey line) and the suggestion (red line)."""
    from faceswap.train.plot import BLUE, GREY, RED, Chart

    smoothed = np.asarray(result.smoothed)
    y_lo = float(min(np.min(result.losses), smoothed.min()))
    # Clip the blown-up end so the falling part fills the plot.
    y_hi = float(min(max(smoothed[0], smoothed.min()) * 1.5, np.max(result.losses)))
    chart = Chart((result.lrs[0], result.lrs[-1]), (y_lo, y_hi), x_log=True, width=width,
                  height=height)  # fmt: skip
    for decade in range(math.ceil(chart.x_lo), math.floor(chart.x_hi) + 1):
        chart.x_tick(10.0**decade, f"1e{decade}")
    for frac in (0.0, 0.5, 1.0):
        value = chart.y_lo + frac * (chart.y_hi - chart.y_lo)
        chart.y_tick(value, f"{value:.3g}")
    chart.line(result.lrs, result.losses, GREY)
    chart.line(result.lrs, result.smoothed, BLUE)
    for lr, colour in ((result.best_lr, GREY), (result.suggested, RED)):
        if result.lrs[0] <= lr <= result.lrs[-1]:
            chart.vline(lr, colour)
    chart.title(
        f"learning rate (log)   lowest loss at {result.best_lr:.3g}   suggested "
        f"{result.suggested:.3g} (/{result.strength:g})"
    )
    return chart.image


def write_lr_finder(folder: Path, result: LrFinderResult) -> tuple[Path, Path]:
    """``lr_finder.csv`` (step, lr, loss, smoothed) and ``lr_finder.png`` into ``folder``,
    each written atomically; returns their paths."""
    rows = ["step,lr,loss,smoothed"]
    rows += [
        f"{i},{lr:.6g},{loss:.6g},{sm:.6g}"
        for i, (lr, loss, sm) in enumerate(
            zip(result.lrs, result.losses, result.smoothed, strict=True)
        )
    ]
    csv_path, png_path = folder / CSV_NAME, folder / PNG_NAME
    write_text_atomic(csv_path, "\n".join(rows) + "\n")
    ok, data = cv2.imencode(".png", cv2.cvtColor(plot_lr_finder(result), cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
        raise RuntimeError("PNG encoding failed")
    write_bytes_atomic(png_path, data.tobytes())
    return csv_path, png_path

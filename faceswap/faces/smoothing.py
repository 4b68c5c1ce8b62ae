"""Temporal smoothing of landmarks per tracked face, so aligned crops do not jitter.

The default is a One-Euro filter (Casiez et al., CHI 2012): a low-pass filter whose cut-off
rises with speed, so a still face is smoothed hard (no jitter) while a moving face follows
with little lag. Speeds are measured in face sizes per second, so the same settings work at
any resolution. ``ema`` is a plain exponential moving average for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SMOOTHING_METHODS = ("one-euro", "ema")

#: Frame rate an image sequence's landmarks are smoothed at (it has no clock of its own).
SEQUENCE_FPS = 24.0


@dataclass
class _TrackState:
    x: np.ndarray  # (68, 2) filtered landmarks
    dx: np.ndarray  # (68, 2) filtered velocity, face sizes per second
    t: float


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def face_scale(landmarks: np.ndarray) -> float:
    """Size of a face in pixels: the distance between the outer eye corners (>= 1)."""
    lm = np.asarray(landmarks, np.float64)
    return max(1.0, float(np.linalg.norm(lm[45] - lm[36])))


class LandmarkSmoother:
    """Per-track temporal filter of (68, 2) landmarks.

    Args:
        method: ``one-euro`` (default) or ``ema``.
        fps: frame rate used when :meth:`update` gets no timestamp.
        min_cutoff: One-Euro cut-off in Hz for a still face (lower = smoother, more lag).
        beta: how fast the cut-off rises with speed (Hz per face size per second).
        d_cutoff: cut-off in Hz of the speed estimate (higher reacts sooner to a move).
        ema_alpha: weight of the new frame for ``ema`` (0-1; 1 = no smoothing).
        max_gap: a track unseen for longer than this many seconds starts afresh.
    """

    def __init__(
        self,
        method: str = "one-euro",
        *,
        fps: float = 30.0,
        min_cutoff: float = 0.5,
        beta: float = 15.0,
        d_cutoff: float = 3.0,
        ema_alpha: float = 0.5,
        max_gap: float = 0.5,
    ) -> None:
        if method not in SMOOTHING_METHODS:
            raise ValueError(
                f"unknown smoothing '{method}'; choose from {', '.join(SMOOTHING_METHODS)}"
            )
        self.method = method
        self.default_dt = 1.0 / float(fps) if fps and fps > 0 else 1.0 / 30.0
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.ema_alpha = float(ema_alpha)
        self.max_gap = float(max_gap)
        self._tracks: dict[int, _TrackState] = {}

    def reset(self) -> None:
        """Forget every track (e.g. at a scene cut or a new video)."""
        self._tracks.clear()

    def forget(self, track_id: int) -> None:
        self._tracks.pop(track_id, None)

    def update(
        self, track_id: int, landmarks: np.ndarray, timestamp: float | None = None
    ) -> np.ndarray:
        """Filter this frame's landmarks of one track.

        Args:
            track_id: id of the face across frames.
            landmarks: (68, 2) frame pixels.
            timestamp: seconds; None advances by one frame at ``fps``.

        Returns:
            (68, 2) float32 smoothed landmarks.
        """
        x = np.asarray(landmarks, np.float64).reshape(68, 2)
        state = self._tracks.get(track_id)
        t = (
            float(timestamp)
            if timestamp is not None
            else (state.t + self.default_dt if state else 0.0)
        )
        dt = t - state.t if state else 0.0
        if state is None or dt <= 0 or dt > self.max_gap:
            self._tracks[track_id] = _TrackState(x.copy(), np.zeros_like(x), t)
            return x.astype(np.float32)
        if self.method == "ema":
            new = self.ema_alpha * x + (1.0 - self.ema_alpha) * state.x
            self._tracks[track_id] = _TrackState(new, state.dx, t)
            return new.astype(np.float32)
        scale = face_scale(x)
        dx = (x - state.x) / dt / scale
        a_d = _alpha(self.d_cutoff, dt)
        dx_hat = a_d * dx + (1.0 - a_d) * state.dx
        # Per-point speeds: a still head with a talking mouth keeps the mouth responsive,
        # while a moving head gives every point the same speed and so the same cut-off.
        speed = np.linalg.norm(dx_hat, axis=1, keepdims=True)
        cutoff = self.min_cutoff + self.beta * speed
        a = 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff * dt))
        new = a * x + (1.0 - a) * state.x
        self._tracks[track_id] = _TrackState(new, dx_hat, t)
        return new.astype(np.float32)

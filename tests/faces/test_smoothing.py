"""One-Euro / EMA landmark smoothing: less jitter on a still face, little lag when moving."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from faceswap.faces.align import MEAN_FACE
from faceswap.faces.smoothing import LandmarkSmoother

FACE = (MEAN_FACE * 100 + 200).astype(np.float32)  # eyes ~70 px apart


def _jitter(points: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(b - a).mean() for a, b in itertools.pairwise(points)]))


@pytest.mark.parametrize("method", ["one-euro", "ema"])
def test_still_face_jitters_less(method: str) -> None:
    rng = np.random.default_rng(0)
    raw = [FACE + rng.normal(0, 1.0, FACE.shape).astype(np.float32) for _ in range(60)]
    sm = LandmarkSmoother(method, fps=30)
    out = [sm.update(0, lm) for lm in raw]
    assert out[0].dtype == np.float32 and out[0].shape == (68, 2)
    assert _jitter(out[10:]) < 0.5 * _jitter(raw[10:])
    assert np.abs(np.mean(out[10:], axis=0) - FACE).mean() < 0.3  # no bias


def test_one_euro_follows_motion_with_little_lag() -> None:
    sm = LandmarkSmoother("one-euro", fps=30)
    lag = []
    for i in range(60):
        truth = FACE + np.float32([4.0 * i, 0.0])  # 120 px/s, a brisk head move
        lag.append(np.abs(sm.update(0, truth, i / 30)[:, 0] - truth[:, 0]).mean())
    assert max(lag[20:]) < 3.0


def test_tracks_are_independent_and_gaps_restart() -> None:
    sm = LandmarkSmoother(fps=30)
    sm.update(0, FACE, 0.0)
    sm.update(1, FACE + 300, 0.0)
    moved = sm.update(0, FACE + 50, 1 / 30)
    assert np.abs(moved - FACE).mean() < 50  # smoothed toward the past of track 0 only
    # After a long gap (face gone for a second) the new position is taken as is.
    np.testing.assert_allclose(sm.update(0, FACE - 80, 2.0), FACE - 80)
    sm.reset()
    np.testing.assert_allclose(sm.update(1, FACE, 3.0), FACE)


def test_unknown_method() -> None:
    with pytest.raises(ValueError, match="one-euro, ema"):
        LandmarkSmoother("kalman")

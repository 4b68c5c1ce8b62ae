"""Colour transfer modes: each matches the statistic it promises under the mask."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceswap.convert.colour import COLOUR_MODES, transfer_colour
from faceswap.errors import FaceswapError

S = 48


def _images(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) / S
    base = np.stack([xx, yy, 0.5 * (xx + yy)], axis=-1)
    # A textured face, and a target with other colours: darker, bluer, less contrast.
    face = np.clip(0.2 + 0.6 * base + rng.normal(0, 0.05, (S, S, 3)), 0, 1).astype(np.float32)
    target = np.clip(
        0.3 + 0.25 * base[..., ::-1] + np.array([0.0, 0.05, 0.2]) + rng.normal(0, 0.03, (S, S, 3)),
        0,
        1,
    ).astype(np.float32)
    mask = np.zeros((S, S), np.float32)
    cv2.circle(mask, (S // 2, S // 2), S // 3, 1.0, -1)
    return face, target, mask


def _masked(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return img.reshape(-1, img.shape[-1])[mask.reshape(-1) > 0.5].astype(np.float64)


def test_registry_names() -> None:
    assert set(COLOUR_MODES.names()) == {
        "none", "avg", "hist", "rct", "lct", "mkl", "sot", "seamless", "seamless-hist"
    }  # fmt: skip
    assert COLOUR_MODES.get("seamless").seamless
    assert not COLOUR_MODES.get("rct").seamless
    # DFL's seamless-hist-match: the histogram match in the crop, then the clone when pasting
    combined = COLOUR_MODES.get("seamless-hist")
    assert combined.seamless and combined.transfer is COLOUR_MODES.get("hist").transfer


def test_unknown_mode_lists_choices() -> None:
    face, target, mask = _images()
    with pytest.raises(FaceswapError, match=r"choose from .*rct"):
        transfer_colour("reinhardt", face, target, mask)


@pytest.mark.parametrize("mode", COLOUR_MODES.names())
def test_every_mode_keeps_shape_and_range(mode: str) -> None:
    face, target, mask = _images(1)
    out = transfer_colour(mode, face, target, mask)
    assert out.shape == face.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("mode", ["none", "seamless"])
def test_identity_modes(mode: str) -> None:
    face, target, mask = _images(2)
    np.testing.assert_array_equal(transfer_colour(mode, face, target, mask), face)


def test_avg_matches_mean() -> None:
    face, target, mask = _images(3)
    out = transfer_colour("avg", face, target, mask)
    np.testing.assert_allclose(_masked(out, mask).mean(0), _masked(target, mask).mean(0), atol=0.01)
    # The face moved: before the transfer the means differed by much more.
    assert np.abs(_masked(face, mask).mean(0) - _masked(target, mask).mean(0)).max() > 0.1


def test_rct_matches_lab_mean_and_std() -> None:
    face, target, mask = _images(4)
    out = transfer_colour("rct", face, target, mask)
    lab_out = _masked(cv2.cvtColor(out, cv2.COLOR_RGB2LAB), mask)
    lab_tgt = _masked(cv2.cvtColor(target, cv2.COLOR_RGB2LAB), mask)
    np.testing.assert_allclose(lab_out.mean(0), lab_tgt.mean(0), atol=1.0)
    np.testing.assert_allclose(lab_out.std(0), lab_tgt.std(0), rtol=0.1, atol=0.5)


def test_lct_matches_mean_and_covariance() -> None:
    face, target, mask = _images(5)
    out = transfer_colour("lct", face, target, mask)
    o, t = _masked(out, mask), _masked(target, mask)
    np.testing.assert_allclose(o.mean(0), t.mean(0), atol=0.01)
    np.testing.assert_allclose(np.cov(o.T), np.cov(t.T), atol=2e-3)


def test_mkl_matches_mean_and_covariance_with_the_least_change() -> None:
    face, target, mask = _images(5)
    out = transfer_colour("mkl", face, target, mask)
    o, t, f = _masked(out, mask), _masked(target, mask), _masked(face, mask)
    np.testing.assert_allclose(o.mean(0), t.mean(0), atol=0.01)
    np.testing.assert_allclose(np.cov(o.T), np.cov(t.T), atol=2e-5)
    # The optimal-transport map moves the colours less than lct's, which matches the same.
    lct = _masked(transfer_colour("lct", face, target, mask), mask)
    assert np.square(o - f).sum(1).mean() < np.square(lct - f).sum(1).mean()


def test_sot_matches_a_two_tone_distribution_that_moments_miss() -> None:
    face, target, mask = _images(10)
    # A target of two colour clusters (a half-shadowed face): same moments as many others.
    rng = np.random.default_rng(0)
    left = np.arange(S) < S // 2
    target = np.where(left[None, :, None], [0.7, 0.5, 0.4], [0.25, 0.2, 0.3])
    target = np.clip(target + rng.normal(0, 0.02, (S, S, 3)), 0, 1).astype(np.float32)
    t = _masked(target, mask)
    errors = {}
    for mode in ("mkl", "sot"):
        o = _masked(transfer_colour(mode, face, target, mask), mask)
        axes = np.linalg.qr(rng.normal(size=(3, 8)))[0]  # a few random directions
        q = np.linspace(0.05, 0.95, 19)
        errors[mode] = max(
            np.abs(np.quantile(o @ a, q) - np.quantile(t @ a, q)).max() for a in axes.T
        )
    assert errors["sot"] < 0.03 < errors["mkl"]


def test_hist_matches_quantiles() -> None:
    face, target, mask = _images(6)
    out = transfer_colour("hist", face, target, mask)
    q = [0.1, 0.25, 0.5, 0.75, 0.9]
    o, t = _masked(out, mask), _masked(target, mask)
    for c in range(3):
        np.testing.assert_allclose(np.quantile(o[:, c], q), np.quantile(t[:, c], q), atol=0.02)


def test_statistics_come_from_under_the_mask_only() -> None:
    face, target, mask = _images(7)
    wild = target.copy()
    wild[mask < 0.5] = 1.0  # a white background must not pull the face's colour
    a = transfer_colour("rct", face, target, mask)
    b = transfer_colour("rct", face, wild, mask)
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("mode", ["avg", "hist", "rct", "lct", "mkl", "sot"])
def test_empty_mask_leaves_face(mode: str) -> None:
    face, target, _ = _images(8)
    out = transfer_colour(mode, face, target, np.zeros((S, S), np.float32))
    np.testing.assert_allclose(out, face, atol=1e-6)


def test_flat_face_does_not_overflow() -> None:
    _, target, mask = _images(9)
    flat = np.full((S, S, 3), 0.5, np.float32)
    for mode in ("rct", "lct", "mkl", "sot"):
        out = transfer_colour(mode, flat, target, mask)
        assert np.isfinite(out).all()


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2LAB)


def test_grade_off_returns_the_face_itself() -> None:
    from faceswap.convert.colour import Grade

    face, _, mask = _images()
    assert Grade().apply(face, mask) is face and not Grade()


def test_grade_brightness_contrast_saturation() -> None:
    from faceswap.convert.colour import Grade

    rng = np.random.default_rng(0)
    grey = rng.uniform(0.3, 0.7, (32, 32, 1))
    face = (grey + rng.uniform(-0.05, 0.05, (32, 32, 3))).astype(np.float32)  # in gamut
    mask = np.zeros((32, 32), np.float32)
    mask[8:24, 8:24] = 1.0
    light = _lab(face)[..., 0]
    # brightness: that share of the way toward white, or toward black
    brighter = _lab(Grade(brightness=50).apply(face, mask))[..., 0]
    np.testing.assert_allclose(brighter, light + (100 - light) / 2, atol=0.3)
    darker = _lab(Grade(brightness=-50).apply(face, mask))[..., 0]
    np.testing.assert_allclose(darker, light / 2, atol=0.3)
    assert Grade(brightness=100).apply(face, mask).mean() > 0.97  # white, but for its tint
    # contrast: the spread about the face's own mean under the mask; -100 is flat
    mean = light[mask > 0].mean()
    flat = _lab(Grade(contrast=-100).apply(face, mask))[..., 0]
    np.testing.assert_allclose(flat, mean, atol=0.3)
    stronger = _lab(Grade(contrast=20).apply(face, mask))[..., 0]
    np.testing.assert_allclose(stronger - mean, (light - mean) * 1.2, atol=0.3)
    # saturation -100: grey, every channel alike
    grey = Grade(saturation=-100).apply(face, mask)
    assert np.abs(grey - grey.mean(axis=-1, keepdims=True)).max() < 0.01


def test_grade_temperature_and_tint_shift_the_colour_cast() -> None:
    from faceswap.convert.colour import GRADE_SHIFT, Grade

    face = np.full((8, 8, 3), 0.5, np.float32)
    mask = np.ones((8, 8), np.float32)
    warm = Grade(temperature=50).apply(face, mask)
    assert warm[..., 0].mean() > 0.5 > warm[..., 2].mean()  # yellow: more red/green, less blue
    np.testing.assert_allclose(_lab(warm)[..., 2] - _lab(face)[..., 2], GRADE_SHIFT / 2, atol=0.3)
    magenta = Grade(tint=50).apply(face, mask)
    assert magenta[..., 1].mean() < 0.5  # less green
    np.testing.assert_allclose(_lab(magenta)[..., 1] - _lab(face)[..., 1], GRADE_SHIFT / 2,
                               atol=0.3)  # fmt: skip
    cool = Grade(temperature=-50).apply(face, mask)
    assert cool[..., 2].mean() > 0.5

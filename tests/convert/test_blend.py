"""Paste-back geometry, untouched pixels, Poisson seams and sharpening."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceswap.convert.blend import (
    face_region,
    motion_blur,
    motion_kernel,
    noise_sigma,
    paste_face,
    sharpen,
    soften,
)
from faceswap.convert.masks import build_mask
from faceswap.faces.align import (
    MEAN_FACE,
    CropSpec,
    alignment_matrix,
    invert_affine,
    transform_points,
    warp_to_crop,
)

SPEC = CropSpec(size=64, coverage=0.8, centering="face")


def _landmarks(cx: float, cy: float, side: float, angle: float = 0.0) -> np.ndarray:
    pts = (MEAN_FACE - 0.5) * side
    c, s = np.cos(angle), np.sin(angle)
    pts = pts @ np.array([[c, -s], [s, c]]).T
    return (pts + np.array([cx, cy])).astype(np.float32)


def _smooth_frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def _frame_mask(mask: np.ndarray, matrix: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return cv2.warpAffine(mask, invert_affine(matrix), (shape[1], shape[0]))


def test_round_trip_reproduces_frame() -> None:
    frame = _smooth_frame(120, 160)
    lm = _landmarks(80, 60, 50, angle=0.2)
    m = alignment_matrix(lm, SPEC)
    crop = warp_to_crop(frame, m, SPEC.size).astype(np.float32) / 255.0
    mask = build_mask("hull", transform_points(lm, m), SPEC.size)
    out = frame.copy()
    paste_face(out, crop, mask, m)
    inside = _frame_mask(mask, m, frame.shape[:2]) > 0.99
    err = np.abs(out.astype(int) - frame.astype(int))[inside]
    assert inside.sum() > 500
    assert err.mean() < 3.0, err.mean()


def test_pixels_outside_the_mask_are_untouched() -> None:
    frame = _smooth_frame(120, 160, seed=1)
    lm = _landmarks(70, 50, 40)
    m = alignment_matrix(lm, SPEC)
    face = np.ones((64, 64, 3), np.float32)  # white face: any leak would show
    mask = build_mask("hull", transform_points(lm, m), 64, blur=5)
    out = frame.copy()
    paste_face(out, face, mask, m)
    alpha = _frame_mask(mask, m, frame.shape[:2])
    changed = (out != frame).any(axis=-1)
    assert changed.any()
    # Nothing outside the warped mask's support (plus the bilinear half pixel) changed.
    support = cv2.dilate((alpha > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert not (changed & ~support).any()
    x0, y0, x1, y1 = face_region(m, mask, frame.shape)
    outside = np.ones(frame.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(out[outside], frame[outside])


def test_face_outside_frame_is_a_no_op() -> None:
    frame = _smooth_frame(60, 80)
    lm = _landmarks(-200, -200, 30)
    m = alignment_matrix(lm, SPEC)
    mask = build_mask("hull", transform_points(lm, m), 64)
    out = frame.copy()
    paste_face(out, np.ones((64, 64, 3), np.float32), mask, m)
    np.testing.assert_array_equal(out, frame)


def _seam_error(seamless: bool, cx: float) -> tuple[float, np.ndarray]:
    h, w = 128, 160
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frame = np.stack([60 + xx * 0.6, 80 + yy * 0.5, 120 + 0.2 * (xx - yy)], -1)
    frame = frame.clip(0, 255).astype(np.uint8)
    lm = _landmarks(cx, 64, 60)
    m = alignment_matrix(lm, SPEC)
    crop = warp_to_crop(frame, m, 64).astype(np.float32) / 255.0
    # The swapped face is the same picture 40 levels brighter with a soft bump in the middle:
    # a plain paste leaves a 40-level step at the mask's edge.
    yc, xc = np.mgrid[0:64, 0:64].astype(np.float32)
    bump = 0.08 * np.exp(-((xc - 32) ** 2 + (yc - 34) ** 2) / 120.0)
    face = np.clip(crop + 40 / 255.0 + bump[..., None], 0, 1).astype(np.float32)
    mask = build_mask("hull", transform_points(lm, m), 64)
    out = frame.copy()
    paste_face(out, face, mask, m, seamless=seamless)
    binary = (_frame_mask(mask, m, frame.shape[:2]) > 0.5).astype(np.uint8)
    ring = (binary - cv2.erode(binary, np.ones((7, 7), np.uint8))) > 0
    err = np.abs(out.astype(np.float32) - frame.astype(np.float32)).mean(-1)
    return float(err[ring].mean()), out


def test_seamless_leaves_no_seam() -> None:
    plain, _ = _seam_error(False, 80)
    seamless, _ = _seam_error(True, 80)
    assert plain > 25
    assert seamless < 5, seamless


def test_seamless_face_touching_frame_border() -> None:
    err, out = _seam_error(True, 12)  # the face runs off the left edge
    assert out.shape == (128, 160, 3)
    assert err < 8, err


def test_sharpen() -> None:
    rng = np.random.default_rng(3)
    face = cv2.GaussianBlur(rng.uniform(0, 1, (64, 64, 3)).astype(np.float32), (0, 0), 1.5)
    np.testing.assert_array_equal(sharpen(face, 0.0), face)
    sharp = sharpen(face, 1.0)
    lap = lambda im: np.abs(cv2.Laplacian(im, cv2.CV_32F)).mean()  # noqa: E731
    assert lap(sharp) > 1.3 * lap(face)
    assert sharp.min() >= 0 and sharp.max() <= 1


@pytest.mark.parametrize("angle", [0.0, 0.6])
def test_region_covers_the_pasted_face(angle: float) -> None:
    lm = _landmarks(80, 60, 40, angle)
    m = alignment_matrix(lm, SPEC)
    mask = build_mask("hull", transform_points(lm, m), 64)
    alpha = _frame_mask(mask, m, (120, 160))
    ys, xs = np.nonzero(alpha > 0)
    x0, y0, x1, y1 = face_region(m, mask, (120, 160, 3))
    assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1


@pytest.mark.parametrize(("cx", "side"), [(80, 50), (10, 80), (150, 200)])
def test_region_crop_matches_full_frame_crop(cx: float, side: float) -> None:
    from faceswap.convert.pipeline import _crop_face

    frame = _smooth_frame(120, 160, seed=4)
    m = alignment_matrix(_landmarks(cx, 60, side, 0.3), SPEC)
    full = warp_to_crop(frame, m, 64).astype(int)
    fast = _crop_face(frame, m, 64).astype(int)
    # Equal up to the area pre-shrink's rounding at the region's edge.
    assert np.abs(full - fast).mean() < 1.0


def test_faces_at_random_placements_never_fail() -> None:
    # Faces half off the frame leave slivers of mask that cv2.seamlessClone cannot solve.
    rng = np.random.default_rng(0)
    spec = CropSpec(32)
    for _ in range(120):
        h, w = (int(v) for v in rng.integers(4, 200, 2))
        frame = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        lm = _landmarks(
            rng.uniform(-100, w + 100), rng.uniform(-100, h + 100), rng.uniform(2, 300),
            rng.uniform(-3, 3),
        )  # fmt: skip
        m = alignment_matrix(lm, spec)
        mask = build_mask("hull", transform_points(lm, m), 32, blur=rng.uniform(0, 20))
        face = rng.uniform(0, 1, (32, 32, 3)).astype(np.float32)
        for seamless in (False, True):
            out = frame.copy()
            paste_face(out, face, mask, m, seamless=seamless)
            assert out.shape == frame.shape


@pytest.mark.parametrize(("dx", "dy"), [(6.0, 0.0), (0.0, -9.0), (5.0, 5.0), (10.0, -3.0)])
def test_motion_kernel_is_a_normalised_streak_along_the_motion(dx: float, dy: float) -> None:
    kernel = motion_kernel(dx, dy)
    assert kernel is not None and kernel.sum() == pytest.approx(1.0, abs=1e-6)
    ys, xs = np.mgrid[: kernel.shape[0], : kernel.shape[1]]
    centre = (kernel.shape[0] - 1) / 2
    offsets = np.stack([(xs - centre).ravel(), (ys - centre).ravel()])
    cov = np.cov(offsets, aweights=kernel.ravel())
    spread, axes = np.linalg.eigh(cov)
    direction = np.array([dx, dy]) / np.hypot(dx, dy)
    assert abs(float(axes[:, -1] @ direction)) > 0.98
    # A uniform streak of length L has variance L^2 / 12 along it.
    assert np.sqrt(12 * spread[-1]) == pytest.approx(np.hypot(dx, dy), rel=0.15)
    assert motion_kernel(0.6, 0.3) is None


def test_motion_blur_smears_along_the_motion_only() -> None:
    stripes = np.zeros((32, 32, 3), np.float32)
    stripes[:, ::4] = 1.0  # vertical lines
    across = motion_blur(stripes, 6.0, 0.0)
    along = motion_blur(stripes, 0.0, 6.0)
    assert np.abs(np.diff(across, axis=1)).mean() < 0.3 * np.abs(np.diff(stripes, axis=1)).mean()
    # Lines moving along themselves keep their contrast (but for the streak's soft edge).
    assert np.abs(np.diff(along, axis=1)).mean() > 0.75 * np.abs(np.diff(stripes, axis=1)).mean()
    np.testing.assert_allclose(along[4:-4].mean(axis=0), stripes[4:-4].mean(axis=0), atol=0.11)
    assert motion_blur(stripes, 0.2, 0.1) is stripes


def test_soften_blurs_and_leaves_tiny_radii_alone() -> None:
    rng = np.random.default_rng(4)
    face = rng.uniform(0, 1, (64, 64, 3)).astype(np.float32)
    lap = lambda im: np.abs(cv2.Laplacian(im, cv2.CV_32F)).mean()  # noqa: E731
    assert lap(soften(face, 2.0)) < 0.2 * lap(face)
    assert soften(face, 0.1) is face


def test_noise_sigma_measures_white_noise() -> None:
    rng = np.random.default_rng(5)
    smooth = cv2.GaussianBlur(rng.uniform(0, 255, (96, 96, 3)).astype(np.float32), (0, 0), 6)
    where = np.ones((96, 96), bool)
    for sigma in (2.0, 8.0):
        noisy = smooth + rng.normal(0, sigma, smooth.shape).astype(np.float32)
        np.testing.assert_allclose(noise_sigma(noisy, where), sigma, rtol=0.1)
    assert noise_sigma(smooth, where).max() < 0.5
    assert not noise_sigma(smooth, np.zeros((96, 96), bool)).any()  # too few pixels


def test_grain_matches_the_plate_under_the_face_only() -> None:
    rng = np.random.default_rng(6)
    plate = _smooth_frame(120, 160, seed=2).astype(np.float32)
    grainy = np.clip(plate + rng.normal(0, 8, plate.shape), 0, 255).astype(np.uint8)
    lm = _landmarks(80, 60, 44)
    m = alignment_matrix(lm, SPEC)
    face = cv2.GaussianBlur(rng.uniform(0.3, 0.7, (64, 64, 3)).astype(np.float32), (0, 0), 4)
    mask = build_mask("hull", transform_points(lm, m), 64, blur=5)
    alpha = _frame_mask(mask, m, grainy.shape[:2])
    core = alpha > 0.99
    outs = {}
    for grain in (0.0, 1.0):
        out = grainy.copy()
        paste_face(out, face, mask, m, grain=grain, seed=(7, 0))
        outs[grain] = out
        np.testing.assert_array_equal(out[alpha == 0], grainy[alpha == 0])  # plate untouched
    measured = noise_sigma(outs[1.0].astype(np.float32), core)
    np.testing.assert_allclose(measured, 8.0, rtol=0.2)  # the plate's grain, back on the face
    assert noise_sigma(outs[0.0].astype(np.float32), core).max() < 2.0  # the clean swap
    again = grainy.copy()
    paste_face(again, face, mask, m, grain=1.0, seed=(7, 0))
    np.testing.assert_array_equal(again, outs[1.0])  # seeded: the same frame, the same grain


@pytest.mark.parametrize("seamless", [False, True])
def test_a_16_bit_frame_keeps_its_depth(seamless: bool) -> None:
    """The face is pasted as into the 8-bit frame; every other pixel keeps its 16 bits."""
    frame8 = _smooth_frame(120, 160, seed=4)
    ramp = np.arange(160) % 256  # low bits an 8-bit frame has not
    frame16 = np.minimum(frame8.astype(int) * 257 + ramp[None, :, None], 65535).astype(np.uint16)
    lm = _landmarks(80, 60, 50)
    m = alignment_matrix(lm, SPEC)
    face = np.clip(warp_to_crop(frame8, m, 64) / 255.0 + 0.1, 0, 1).astype(np.float32)
    mask = build_mask("hull", transform_points(lm, m), 64, blur=5)
    out8, out16 = frame8.copy(), frame16.copy()
    paste_face(out8, face, mask, m, seamless=seamless)
    paste_face(out16, face, mask, m, seamless=seamless)
    assert out16.dtype == np.uint16
    changed = (out8 != frame8).any(axis=-1)
    assert changed.sum() > 500
    alpha = _frame_mask(mask, m, frame8.shape[:2])
    support = cv2.dilate((alpha > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    np.testing.assert_array_equal(out16[~support], frame16[~support])  # low bits and all
    # Where the face went in, the two agree to within an 8-bit level or two.
    diff = np.abs(out16[changed].astype(float) / 257 - out8[changed].astype(float))
    assert diff.mean() < (1.5 if seamless else 1.0), diff.mean()

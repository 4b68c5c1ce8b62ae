"""Alignment maths: Umeyama, crop matrices, warps, inverse round trips, hull masks."""

from __future__ import annotations

import numpy as np
import pytest

from faceswap.faces.align import (
    CENTERINGS,
    MEAN_FACE,
    MIRROR_INDEX,
    CropSpec,
    alignment_matrix,
    hull_mask,
    invert_affine,
    transform_points,
    umeyama,
    warp_to_crop,
)


def _similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = np.radians(angle_deg)
    m = np.eye(3)
    m[:2, :2] = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m[:2, 2] = (tx, ty)
    return m


def _face_in_frame(scale: float = 180.0, angle: float = 12.0, at=(310.0, 170.0)) -> np.ndarray:
    """Mean-face landmarks placed in a frame with a known similarity, plus a little noise."""
    t = _similarity(scale, angle, *at)
    rng = np.random.default_rng(3)
    pts = transform_points(MEAN_FACE, t).astype(np.float64)
    return (pts + rng.normal(0, 0.3, pts.shape)).astype(np.float32)


@pytest.mark.parametrize(
    ("scale", "angle", "tx", "ty"),
    [(1.0, 0.0, 0.0, 0.0), (2.5, 33.0, -40.0, 7.5), (0.2, -170.0, 3, 900)],
)
def test_umeyama_recovers_known_similarity(scale, angle, tx, ty) -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(-50, 50, size=(30, 2))
    truth = _similarity(scale, angle, tx, ty)
    dst = src @ truth[:2, :2].T + truth[:2, 2]
    np.testing.assert_allclose(umeyama(src, dst), truth, atol=1e-9)


def test_umeyama_without_scale_keeps_unit_scale() -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(-1, 1, size=(20, 2))
    truth = _similarity(3.0, 20.0, 1.0, 2.0)
    dst = src @ truth[:2, :2].T + truth[:2, 2]
    fit = umeyama(src, dst, estimate_scale=False)
    assert np.linalg.det(fit[:2, :2]) == pytest.approx(1.0)


def test_umeyama_never_reflects() -> None:
    rng = np.random.default_rng(2)
    src = rng.uniform(-1, 1, size=(20, 2))
    dst = src * np.array([-1.0, 1.0])  # a mirror image
    assert np.linalg.det(umeyama(src, dst)[:2, :2]) > 0


def test_mean_face_is_symmetric_and_upright() -> None:
    mirrored = MEAN_FACE[list(MIRROR_INDEX)] * np.array([-1.0, 1.0]) + np.array([1.0, 0.0])
    np.testing.assert_allclose(mirrored, MEAN_FACE, atol=1e-3)
    inner = MEAN_FACE[17:]
    assert inner[:, 0].min() == pytest.approx(0.0) and inner[:, 0].max() == pytest.approx(1.0)
    assert MEAN_FACE[8, 1] > MEAN_FACE[57, 1] > MEAN_FACE[33, 1] > MEAN_FACE[27, 1]  # chin low


def test_crop_round_trip_within_half_pixel() -> None:
    lm = _face_in_frame()
    spec = CropSpec(size=128)
    m = alignment_matrix(lm, spec)
    assert m.shape == (2, 3) and m.dtype == np.float64
    in_crop = transform_points(lm, m)
    back = transform_points(in_crop, invert_affine(m))
    assert np.abs(back - lm).max() < 0.5


@pytest.mark.parametrize("centering", sorted(CENTERINGS))
@pytest.mark.parametrize("coverage", [0.6, 1.0])
def test_region_fills_coverage_of_crop(centering: str, coverage: float) -> None:
    lm = _face_in_frame(angle=-25.0)
    spec = CropSpec(size=200, coverage=coverage, centering=centering)
    crop_pts = transform_points(lm, alignment_matrix(lm, spec))
    # The fit undoes pose: the face is upright (eyes level) and centred left/right.
    left_eye, right_eye = crop_pts[36:42].mean(0), crop_pts[42:48].mean(0)
    assert abs(left_eye[1] - right_eye[1]) < 1.0
    assert abs(crop_pts[17:, 0].mean() - 100.0) < 1.5
    # The inner face spans 1 unit; the centering region spans `side` units over `coverage`.
    side = CENTERINGS[centering][2]
    expected_width = 200 * coverage / side
    width = crop_pts[17:, 0].max() - crop_pts[17:, 0].min()
    assert width == pytest.approx(expected_width, rel=0.02)


def test_bigger_regions_show_smaller_faces() -> None:
    lm = _face_in_frame()
    widths = []
    for centering in ("legacy", "face", "head"):
        pts = transform_points(lm, alignment_matrix(lm, CropSpec(64, 1.0, centering)))
        widths.append(np.ptp(pts[:, 0]))
    assert widths[0] > widths[1] > widths[2]


def test_crop_spec_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="centering"):
        CropSpec(centering="chin")
    with pytest.raises(ValueError, match="coverage"):
        CropSpec(coverage=1.5)
    with pytest.raises(ValueError, match="size"):
        CropSpec(size=4)


def test_warp_puts_frame_content_where_the_matrix_says() -> None:
    frame = np.zeros((360, 640, 3), np.uint8)
    lm = _face_in_frame()
    # Paint a dot on the nose tip; it must land on the nose tip's crop coordinates.
    nose = np.round(lm[30]).astype(int)
    frame[nose[1] - 3 : nose[1] + 4, nose[0] - 3 : nose[0] + 4] = 255
    spec = CropSpec(size=96)
    m = alignment_matrix(lm, spec)
    crop = warp_to_crop(frame, m, spec.size)
    assert crop.shape == (96, 96, 3) and crop.dtype == np.uint8
    ys, xs = np.nonzero(crop[..., 0] > 60)
    expected = transform_points(nose.astype(np.float32), m)
    assert abs(xs.mean() - expected[0]) < 1.0 and abs(ys.mean() - expected[1]) < 1.0


def test_warp_shrinking_a_large_face_keeps_the_mean_colour() -> None:
    # A fine checkerboard aliases under plain bilinear shrinking; area pre-shrink averages it.
    yy, xx = np.mgrid[0:720, 0:1280]
    frame = np.repeat((((yy + xx) % 2) * 255).astype(np.uint8)[..., None], 3, axis=2)
    lm = _face_in_frame(scale=600, angle=0.0, at=(400.0, 100.0))
    crop = warp_to_crop(frame, alignment_matrix(lm, CropSpec(32)), 32)
    assert abs(float(crop[8:24, 8:24].mean()) - 127.5) < 10


def test_hull_mask_covers_face_not_background() -> None:
    lm = _face_in_frame()
    spec = CropSpec(size=128)
    pts = transform_points(lm, alignment_matrix(lm, spec))
    mask = hull_mask(pts, spec.size)
    assert mask.shape == (128, 128) and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    nose = np.round(pts[30]).astype(int)
    assert mask[nose[1], nose[0]] == 1.0
    assert mask[0, 0] == 0.0 and mask[-1, -1] == 0.0
    bigger = hull_mask(pts, spec.size, forehead=0.3)
    assert bigger.sum() > mask.sum()
    soft = hull_mask(pts, spec.size, feather=5)
    # A feathered edge has many more partly-covered pixels than the anti-aliased hard one.
    assert (np.abs(soft - 0.5) < 0.4).sum() > 3 * (np.abs(mask - 0.5) < 0.4).sum()

"""Mask modes and mask refinement (erode/dilate, feather) relative to crop size."""

from __future__ import annotations

import numpy as np
import pytest

from faceswap.convert.masks import MASK_MODES, build_mask, refine_mask
from faceswap.errors import FaceswapError
from faceswap.faces.align import MEAN_FACE, CropSpec


def _crop_landmarks(size: int) -> np.ndarray:
    spec = CropSpec(size=size, coverage=0.8, centering="face")
    m = spec.unit_to_crop()
    return (MEAN_FACE @ m[:2, :2].T + m[:2, 2]).astype(np.float32)


def test_names() -> None:
    names = {"hull", "box", "learned", "product", "learned-dst", "learned-both", "segment"}
    names |= {"learned-union"}
    segments = {"segment-both", "segment-swap", "all"}
    assert set(MASK_MODES.names()) == names | segments
    assert MASK_MODES.get("product").needs_learned
    assert not MASK_MODES.get("hull").needs_learned
    assert {n for n in names if MASK_MODES.get(n).needs_dst} == {
        "learned-dst",
        "learned-both",
        "learned-union",
    }
    assert all(MASK_MODES.get(n).needs_segment_swap for n in segments)
    assert all(MASK_MODES.get(n).needs_learned for n in ("learned-dst", "learned-both"))


def test_dst_modes_use_the_faces_own_decoders_mask() -> None:
    lm = _crop_landmarks(64)
    rng = np.random.default_rng(1)
    prd, dst = (rng.uniform(0, 1, (64, 64)).astype(np.float32) for _ in range(2))
    np.testing.assert_allclose(build_mask("learned-dst", lm, 64, prd, learned_dst=dst), dst)
    both = build_mask("learned-both", lm, 64, prd, learned_dst=dst)
    np.testing.assert_allclose(both, prd * dst, rtol=1e-6)
    with pytest.raises(FaceswapError, match="learned mask"):
        build_mask("learned-dst", lm, 64, prd)


def test_box_is_the_whole_crop_faded_at_its_edge() -> None:
    lm = _crop_landmarks(64)
    assert build_mask("box", lm, 64).min() == 1.0  # raw: every pixel of the square
    soft = build_mask("box", lm, 64, erode=2, blur=10)
    assert soft[32, 32] > 0.999 and soft[0].max() < 0.05 and soft[:, -1].max() < 0.05
    assert soft[10:54, 10:54].min() > 0.99  # only the edge fades
    assert not MASK_MODES.get("box").needs_learned


def test_union_swap_and_all_combine_the_masks() -> None:
    lm = _crop_landmarks(64)
    rng = np.random.default_rng(2)
    prd, dst, seg, seg_swap = (rng.uniform(0, 1, (64, 64)).astype(np.float32) for _ in range(4))
    union = build_mask("learned-union", lm, 64, prd, learned_dst=dst)
    np.testing.assert_allclose(union, np.clip(prd + dst, 0, 1), rtol=1e-6)
    swap_only = build_mask("segment-swap", lm, 64, None, segment=seg, segment_swap=seg_swap)
    np.testing.assert_allclose(swap_only, seg_swap)
    every = build_mask("all", lm, 64, prd, learned_dst=dst, segment=seg, segment_swap=seg_swap)
    np.testing.assert_allclose(every, prd * dst * seg * seg_swap, rtol=1e-5)
    with pytest.raises(FaceswapError, match="needs a mask model"):
        build_mask("all", lm, 64, prd, learned_dst=dst)


def test_hull_covers_face_not_corners() -> None:
    mask = build_mask("hull", _crop_landmarks(64), 64)
    assert mask.shape == (64, 64) and mask.dtype == np.float32
    assert mask[32, 32] == pytest.approx(1.0)
    assert mask[0, 0] == 0.0 and mask[63, 63] == 0.0


def test_learned_needs_a_learned_mask() -> None:
    with pytest.raises(FaceswapError, match="--mask hull"):
        build_mask("learned", _crop_landmarks(32), 32, None)


def test_product_is_within_both() -> None:
    lm = _crop_landmarks(64)
    rng = np.random.default_rng(0)
    learned = rng.uniform(0, 1, (64, 64)).astype(np.float32)
    prod = build_mask("product", lm, 64, learned)
    hull = build_mask("hull", lm, 64)
    assert (prod <= hull + 1e-6).all() and (prod <= learned + 1e-6).all()
    np.testing.assert_allclose(build_mask("learned", lm, 64, learned), learned)


def test_learned_mask_resized_to_crop() -> None:
    learned = np.ones((32, 32), np.float32)
    assert build_mask("learned", _crop_landmarks(64), 64, learned).shape == (64, 64)


def test_erode_shrinks_and_negative_dilates() -> None:
    hull = build_mask("hull", _crop_landmarks(64), 64)
    eroded = refine_mask(hull, erode=5)
    dilated = refine_mask(hull, erode=-5)
    assert eroded.sum() < hull.sum() < dilated.sum()
    assert (eroded <= hull + 1e-6).all() and (dilated >= hull - 1e-6).all()


def test_feather_is_soft_and_stays_inside_hull() -> None:
    hull = build_mask("hull", _crop_landmarks(64), 64)
    soft = refine_mask(hull, blur=8)
    assert ((soft > 0.05) & (soft < 0.95)).sum() > ((hull > 0.05) & (hull < 0.95)).sum()
    # The feather never reaches more than a pixel past the hull's outline.
    grown = refine_mask(hull, erode=-2)
    assert soft[grown == 0].max() < 0.05


def test_refinement_scales_with_crop_size() -> None:
    fractions = []
    for size in (64, 128):
        mask = refine_mask(build_mask("hull", _crop_landmarks(size), size), erode=6, blur=4)
        fractions.append(mask.sum() / size**2)
    assert fractions[0] == pytest.approx(fractions[1], rel=0.05)


def test_refine_leaves_input_alone() -> None:
    hull = build_mask("hull", _crop_landmarks(32), 32)
    before = hull.copy()
    refine_mask(hull, erode=5, blur=5)
    np.testing.assert_array_equal(hull, before)


def test_mask_cut_by_the_crop_fades_before_its_edge() -> None:
    full = np.ones((64, 64), np.float32)  # e.g. a learned mask that fills the crop
    soft = refine_mask(full, blur=8)
    edges = np.concatenate([soft[0], soft[-1], soft[:, 0], soft[:, -1]])
    assert edges.max() < 0.1  # vs 1.0 (a hard cut) without the border handling
    assert soft[32, 32] == pytest.approx(1.0, abs=1e-3)
    eroded = refine_mask(full, erode=5)
    assert eroded[0].max() == 0.0 and eroded[32, 32] == 1.0


def test_segment_modes_use_the_mask_models_masks() -> None:
    lm = _crop_landmarks(64)
    rng = np.random.default_rng(2)
    face, swap = (rng.uniform(0, 1, (64, 64)).astype(np.float32) for _ in range(2))
    np.testing.assert_allclose(build_mask("segment", lm, 64, segment=face), face)
    both = build_mask("segment-both", lm, 64, segment=face, segment_swap=swap)
    np.testing.assert_allclose(both, face * swap, rtol=1e-6)
    assert MASK_MODES.get("segment").needs_segment and not MASK_MODES.get("segment").needs_learned
    assert MASK_MODES.get("segment-both").needs_segment_swap
    with pytest.raises(FaceswapError, match="--mask-model"):
        build_mask("segment", lm, 64)


def test_each_edge_erodes_or_dilates_on_its_own() -> None:
    square = np.zeros((64, 64), np.float32)
    square[16:48, 16:48] = 1.0

    def extent(mask: np.ndarray) -> tuple[int, int, int, int]:
        ys, xs = np.nonzero(mask > 0.5)
        return ys.min(), ys.max(), xs.min(), xs.max()

    assert extent(refine_mask(square)) == (16, 47, 16, 47)
    # 12.5 % of 64 px = 8 px: the top edge comes down, the other three stay
    assert extent(refine_mask(square, sides=(12.5, 0, 0, 0))) == (24, 47, 16, 47)
    assert extent(refine_mask(square, sides=(0, 12.5, 0, 0))) == (16, 39, 16, 47)
    assert extent(refine_mask(square, sides=(0, 0, 12.5, 0))) == (16, 47, 24, 47)
    assert extent(refine_mask(square, sides=(0, 0, 0, 12.5))) == (16, 47, 16, 39)
    # negative grows that edge only
    assert extent(refine_mask(square, sides=(0, 0, -12.5, 0))) == (16, 47, 8, 47)
    # on top of the overall erosion
    assert extent(refine_mask(square, erode=6.25, sides=(12.5, 0, 0, 0))) == (28, 43, 20, 43)

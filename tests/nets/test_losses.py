"""Reconstruction losses: zero on identical images, positive otherwise, masks and priority."""

from __future__ import annotations

import pytest
import torch

from faceswap.errors import FaceswapError
from faceswap.nets.losses import (
    LOSSES,
    LossConfig,
    ReconstructionLoss,
    ms_ssim,
    ms_ssim_scales,
    parse_loss_spec,
    ssim,
    ssim_maps,
)


def images(seed: int, n: int = 2, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Smooth-ish images (blurred noise) so SSIM statistics are meaningful.
    x = torch.rand(n, 3, size // 4, size // 4, generator=g)
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear")


@pytest.mark.parametrize("name", LOSSES.names())
@pytest.mark.parametrize("size", [32, 64])
def test_each_loss_is_zero_for_identical_and_positive_otherwise(name: str, size: int) -> None:
    fn = LOSSES.get(name)
    a, b = images(0, size=size), images(1, size=size)
    assert abs(float(fn(a, a.clone(), None))) < 1e-5
    assert float(fn(a, b, None)) > 1e-3
    weight = torch.rand(2, 1, size, size)
    assert abs(float(fn(a, a.clone(), weight))) < 1e-5
    assert float(fn(a, b, weight)) > 1e-3


def test_ssim_map_matches_scikit_image_away_from_the_border() -> None:
    # An independent SSIM (Gaussian window 11 px, sigma 1.5, population statistics). The two
    # pad the border differently (mirror here, half-sample symmetric there), so compare the
    # pixels the window sees only inside the image.
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity
    a, b = images(0, n=1, size=40), images(1, n=1, size=40)
    ours = ssim_maps(a, b)[0][0]
    _, theirs = structural_similarity(
        a[0].numpy(),
        b[0].numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=0,
        full=True,
    )
    inner = (slice(None), slice(5, -5), slice(5, -5))
    # float32 here, float64 there: variance terms cancel to ~1e-5.
    torch.testing.assert_close(
        ours[inner], torch.from_numpy(theirs)[inner].float(), atol=1e-4, rtol=0
    )


def test_ssim_stays_float32_under_autocast() -> None:
    a, b = images(0), images(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = ssim(a.to(torch.bfloat16), b.to(torch.bfloat16))
    assert value.dtype == torch.float32
    reference = ssim(a.to(torch.bfloat16).float(), b.to(torch.bfloat16).float())
    assert float(value) == pytest.approx(float(reference), abs=1e-6)


@pytest.mark.parametrize("name", LOSSES.names())
def test_each_loss_has_a_finite_gradient(name: str) -> None:
    a = images(0).requires_grad_(True)
    loss = LOSSES.get(name)(a, images(1), torch.rand(2, 1, 32, 32))
    loss.backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_ssim_of_an_image_with_itself_is_one() -> None:
    a = images(3)
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-5)
    assert float(ms_ssim(a, a)) == pytest.approx(1.0, abs=1e-5)
    assert float(ssim(a, images(4))) < 0.99
    assert float(ms_ssim(a, 1 - a)) < float(ms_ssim(a, (a + 0.05).clamp(0, 1)))


def test_ms_ssim_scales_fit_small_images() -> None:
    assert ms_ssim_scales(32) == 3
    assert ms_ssim_scales(64) == 4
    assert ms_ssim_scales(256) == 5
    assert ms_ssim_scales(8) == 1
    a = images(5, size=16)
    assert float(ms_ssim(a, a)) == pytest.approx(1.0, abs=1e-5)


def test_background_counts_less_than_the_face() -> None:
    target = images(0)
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    err_bg = target.clone()
    err_bg[..., :4, :] = 1 - err_bg[..., :4, :]  # error outside the mask
    err_face = target.clone()
    err_face[..., 12:16, :] = 1 - err_face[..., 12:16, :]  # same area, half of it in the face
    loss = ReconstructionLoss(LossConfig(terms="l1:1", background_weight=0.1))
    bg = float(loss(err_bg, target, mask)["loss"])
    face = float(loss(err_face, target, mask)["loss"])
    plain_bg = float(loss(err_bg, target)["loss"])
    assert bg < face
    assert bg < plain_bg
    ignore = ReconstructionLoss(LossConfig(terms="l1:1", background_weight=0.0))
    assert float(ignore(err_bg, target, mask)["loss"]) == pytest.approx(0.0, abs=1e-7)


def test_priority_multiplies_errors_inside_the_region() -> None:
    target = images(0)
    pred = target.clone()
    pred[..., 4:8, 4:8] = 1 - pred[..., 4:8, 4:8]
    priority = torch.ones(2, 1, 32, 32)
    loss = ReconstructionLoss(LossConfig(terms="l1:1,mse:1"))
    base = float(loss(pred, target)["loss"])
    priority[..., 4:8, 4:8] = 3
    boosted = float(loss(pred, target, priority=priority)["loss"])
    assert boosted > 2 * base
    elsewhere = torch.ones(2, 1, 32, 32)
    elsewhere[..., 20:28, 20:28] = 3
    assert float(loss(pred, target, priority=elsewhere)["loss"]) == pytest.approx(base, rel=1e-5)


def test_composite_returns_each_part_and_the_weighted_total() -> None:
    pred, target = images(0), images(1)
    mask = (torch.rand(2, 1, 32, 32) > 0.5).float()
    loss = ReconstructionLoss(LossConfig(terms="ssim:2,l1:1,ms-ssim:0.5", mask_weight=0.5))
    pred_mask = torch.rand(2, 1, 32, 32)
    out = loss(pred, target, mask, None, pred_mask)
    assert set(out) == {"loss", "ssim", "l1", "ms-ssim", "mask"}
    expected = 2 * out["ssim"] + out["l1"] + 0.5 * out["ms-ssim"] + 0.5 * out["mask"]
    assert float(out["loss"]) == pytest.approx(float(expected), rel=1e-5)
    same = loss(target, target, mask, None, mask)
    assert float(same["loss"]) == pytest.approx(0.0, abs=1e-5)


def test_loss_spec_parsing_and_errors() -> None:
    assert parse_loss_spec("ssim:1, l1:0.5") == (("ssim", 1.0), ("l1", 0.5))
    assert parse_loss_spec("mse") == (("mse", 1.0),)
    assert LossConfig(terms=[["l1", 2]]).terms == (("l1", 2.0),)  # type: ignore[arg-type]
    with pytest.raises(FaceswapError, match="choose from"):
        parse_loss_spec("l3:1")
    with pytest.raises(FaceswapError, match="not a number"):
        parse_loss_spec("l1:x")
    with pytest.raises(FaceswapError, match="names no loss"):
        parse_loss_spec(" , ")
    with pytest.raises(FaceswapError, match="background_weight"):
        LossConfig(background_weight=2.0)

"""Reconstruction losses: zero on identical images, positive otherwise, masks and priority."""

from __future__ import annotations

import math

import pytest
import torch

from faceswap.errors import FaceswapError
from faceswap.nets.losses import (
    LOSSES,
    LossConfig,
    ReconstructionLoss,
    ffl_loss,
    focal_frequency_loss,
    gmsd_loss,
    l1_loss,
    laplacian_loss,
    laplacian_pyramid,
    logcosh_loss,
    ms_ssim,
    ms_ssim_scales,
    mse_loss,
    parse_loss_spec,
    ssim,
    ssim_maps,
    style_loss,
    weighted_mean,
)

NEW_TERMS = ("logcosh", "gmsd", "ffl", "laplacian")


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


def checkerboard(size: int) -> torch.Tensor:
    """(size, size) map of +-1 alternating pixels: all of its energy at the Nyquist frequency."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return ((xx + yy) % 2 * 2 - 1).float()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Independent of the module's matmul blur: a padded depthwise convolution."""
    radius = math.ceil(3 * sigma)
    coords = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum()).view(1, 1, -1)
    c = x.shape[1]
    x = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = torch.nn.functional.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return torch.nn.functional.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def test_logcosh_matches_log_cosh_and_its_two_regimes() -> None:
    g = torch.Generator().manual_seed(0)
    diff = (torch.rand(2, 3, 16, 16, generator=g) - 0.5) * 4  # errors in [-2, 2]
    target = torch.rand(2, 3, 16, 16, generator=g)
    expected = torch.log(torch.cosh(diff.double())).mean()
    got = logcosh_loss(target + diff, target)
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    # Weighted like l1: the weight map multiplies the per-pixel value.
    weight = torch.rand(2, 1, 16, 16, generator=g)
    expected_w = weighted_mean(torch.log(torch.cosh(diff.double())), weight.double())
    assert float(logcosh_loss(target + diff, target, weight)) == pytest.approx(
        float(expected_w), rel=1e-5
    )
    zero = torch.zeros(1, 1, 4, 4)
    # Tiny errors: ~x²/2 (the next term, -x⁴/12, is 2e-5 relative at x = 0.01).
    assert float(logcosh_loss(zero + 0.01, zero)) == pytest.approx(0.5 * 0.01**2, rel=1e-3)
    # Large errors: ~|x| - log 2, and no overflow where cosh itself would (cosh 200 = inf).
    assert float(logcosh_loss(zero - 20, zero)) == pytest.approx(20 - math.log(2), rel=1e-6)
    assert float(logcosh_loss(zero + 200, zero)) == pytest.approx(200 - math.log(2), rel=1e-6)
    # Its gradient is tanh of the error: MSE-like near 0, L1-like (saturating at 1) far out.
    pred = torch.tensor([[[[0.001, -0.5, 3.0, 200.0]]]], requires_grad=True)
    logcosh_loss(pred, torch.zeros_like(pred)).backward()
    torch.testing.assert_close(pred.grad * 4, torch.tanh(pred.detach()), atol=1e-6, rtol=1e-4)


def test_gmsd_ignores_a_brightness_shift_and_grows_with_blur() -> None:
    a = images(0, size=64) * 0.8  # room for the shift without clipping
    weight = torch.rand(2, 1, 64, 64)
    # A uniform offset leaves every gradient unchanged: GMS = 1 everywhere, deviation 0 ...
    assert float(gmsd_loss(a + 0.1, a)) < 1e-5
    assert float(gmsd_loss(a + 0.1, a, weight)) < 1e-5
    # ... although the pixel losses see it fully.
    assert float(l1_loss(a + 0.1, a)) == pytest.approx(0.1, rel=1e-4)
    # Blur flattens edges unevenly (strong ones most), so the deviation rises with sigma.
    values = [float(gmsd_loss(gaussian_blur(a, s), a)) for s in (0.5, 1.0, 2.0, 3.0)]
    assert values == sorted(values) and values[0] > 1e-3, values
    assert values[-1] > 3 * values[1]


def test_gmsd_weighted_deviation_ignores_zero_weight_pixels() -> None:
    a = images(0, size=32)
    b = a.clone()
    b[..., :, :8] = gaussian_blur(a, 2.0)[..., :, :8]  # damage only the left quarter
    weight = torch.ones(2, 1, 32, 32)
    weight[..., :, :10] = 0  # 2 px margin: Prewitt reaches one pixel into the damage
    assert float(gmsd_loss(b, a)) > 1e-2
    assert float(gmsd_loss(b, a, weight)) < 1e-5


def test_gmsd_gradient_is_finite_on_flat_and_identical_images() -> None:
    # Flat regions in both images put both gradient magnitudes at exactly 0, and identical
    # images make the GMS map constant (deviation 0): both are roots of 0 without an epsilon.
    target = torch.full((2, 3, 32, 32), 0.5)
    pred = target.clone()
    pred[..., 8:16, 8:16] += 0.2
    for p, t in ((pred, target), (target, target)):
        for weight in (None, torch.rand(2, 1, 32, 32)):
            x = p.clone().requires_grad_(True)
            gmsd_loss(x, t, weight).backward()
            assert x.grad is not None and torch.isfinite(x.grad).all()
    x = pred.clone().requires_grad_(True)
    gmsd_loss(x, target).backward()
    assert x.grad.abs().sum() > 0


def test_ffl_with_unit_focal_weights_is_mse_by_parseval() -> None:
    a, b = images(0), images(1)
    weight = torch.rand(2, 1, 32, 32)
    # alpha = 0: every frequency weighs 1, and the orthonormal FFT keeps the energy.
    assert float(focal_frequency_loss(a, b, alpha=0.0)) == pytest.approx(
        float(mse_loss(a, b)), rel=1e-5
    )
    # With a pixel weight w the difference is scaled by w: MSE weighted by w².
    assert float(focal_frequency_loss(a, b, weight, alpha=0.0)) == pytest.approx(
        float(mse_loss(a, b, weight.square())), rel=1e-5
    )
    # The focal weights are <= 1, so the default (alpha = 1) stays below MSE.
    assert 1e-3 < float(ffl_loss(a, b)) < float(mse_loss(a, b))


def test_ffl_penalises_high_frequency_noise_at_full_weight() -> None:
    a = images(0, size=64)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(2, 3, 64, 64, generator=g)
    noise = noise - gaussian_blur(noise, 1.0)  # high-pass
    small = float(ffl_loss(a + 0.02 * noise, a))
    assert small > 1e-6
    # The focal weight is normalised by its maximum, so scaling the error by k scales the
    # loss by exactly k², like MSE: it adapts to the error's spectrum, not to its size.
    assert float(ffl_loss(a + 0.04 * noise, a)) == pytest.approx(4 * small, rel=1e-4)
    # An error at a single frequency (a checkerboard) is its own peak, focal weight 1, so it
    # costs its full MSE, whatever its amplitude in each channel (the normalisation is per
    # sample and channel: normalising across channels would cut the faint channels' weight).
    amp = torch.tensor([0.1, 0.02, 0.05]).view(1, 3, 1, 1)
    pred = a + amp * checkerboard(64)
    assert float(ffl_loss(pred, a)) == pytest.approx(float(mse_loss(pred, a)), rel=1e-4)


def test_ffl_gradient_treats_the_focal_weight_as_a_constant() -> None:
    a, b = images(0), images(1)
    pred = a.clone().requires_grad_(True)
    ffl_loss(pred, b).backward()
    # The same loss written out with its focal weights computed beforehand, as constants.
    with torch.no_grad():
        magnitude = torch.fft.fft2(a - b, norm="ortho").abs()
        focal = magnitude / magnitude.amax(dim=(-2, -1), keepdim=True)
    ref = a.clone().requires_grad_(True)
    (focal * torch.fft.fft2(ref - b, norm="ortho").abs().square()).mean().backward()
    torch.testing.assert_close(pred.grad, ref.grad, rtol=1e-4, atol=1e-9)


def test_laplacian_pyramid_levels_and_identity() -> None:
    a = images(0, size=64)
    sizes = [tuple(level.shape[-2:]) for level in laplacian_pyramid(a)]
    assert sizes == [(64, 64), (32, 32), (16, 16), (8, 8)]  # stops before a side under 8
    assert len(laplacian_pyramid(images(0, size=512))) == 6  # 5 band-pass + the low-pass
    odd = [tuple(level.shape[-2:]) for level in laplacian_pyramid(images(0, size=45))]
    assert odd == [(45, 45), (23, 23), (12, 12)]
    assert float(laplacian_loss(a, a.clone())) == 0.0
    # Odd sizes: the pooled weight map keeps lining up with each level.
    weight = torch.rand(2, 1, 45, 45)
    assert float(laplacian_loss(images(0, size=45), images(1, size=45), weight)) > 1e-3


def test_laplacian_charges_fine_detail_more_than_a_smooth_error() -> None:
    # Two errors with the same energy (RMS 0.05): a checkerboard lives entirely in the finest
    # band (the 5-tap Gaussian passes 0.7 % of the Nyquist frequency), so it costs its whole
    # amplitude at weight 1; a linear ramp survives blurring and expanding almost unchanged,
    # so it reaches only the low-pass level (weight 4^-3 at 64 px) plus a little at the
    # borders. L1 sees the two nearly alike (mean |error| 0.05 against 0.043).
    a = images(0, size=64)
    fine = 0.05 * checkerboard(64)
    ramp = torch.linspace(-1, 1, 64).expand(64, 64)
    ramp = 0.05 * ramp / ramp.square().mean().sqrt()
    assert float(mse_loss(a + fine, a)) == pytest.approx(float(mse_loss(a + ramp, a)), rel=1e-4)
    lap_fine, lap_ramp = float(laplacian_loss(a + fine, a)), float(laplacian_loss(a + ramp, a))
    assert lap_fine == pytest.approx(0.05, rel=0.02)
    assert lap_fine > 20 * lap_ramp
    assert float(l1_loss(a + fine, a)) < 1.5 * float(l1_loss(a + ramp, a))
    # A constant offset reaches only the low-pass level, still costing something.
    assert float(laplacian_loss(a + 0.1, a)) == pytest.approx(0.1 / 4**3, rel=1e-4)


@pytest.mark.parametrize("name", NEW_TERMS)
def test_new_terms_are_float32_under_bf16_autocast(name: str) -> None:
    fn = LOSSES.get(name)
    a, b = images(0).to(torch.bfloat16), images(1).to(torch.bfloat16)
    weight = torch.rand(2, 1, 32, 32).to(torch.bfloat16)
    for w in (None, weight):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            value = fn(a, b, w)
        assert value.dtype == torch.float32 and value.dim() == 0
        reference = fn(a.float(), b.float(), None if w is None else w.float())
        assert float(value) == pytest.approx(float(reference), rel=1e-5)


def test_new_terms_compose_in_the_masked_reconstruction_loss() -> None:
    pred, target = images(0), images(1)
    mask = (torch.rand(2, 1, 32, 32) > 0.5).float()
    loss = ReconstructionLoss(LossConfig(terms="l1:1,logcosh:1,gmsd:1,ffl:10,laplacian:1"))
    out = loss(pred, target, mask)
    assert set(out) == {"loss", "l1", *NEW_TERMS}
    expected = sum(out[n] for n in ("l1", "logcosh", "gmsd", "laplacian")) + 10 * out["ffl"]
    assert float(out["loss"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(loss(target, target.clone(), mask)["loss"]) == pytest.approx(0.0, abs=1e-5)


def test_style_loss_compares_colour_statistics_not_places() -> None:
    x = images(7) * 0.8
    assert style_loss(x, x).item() == 0.0
    # the same pixels elsewhere: the same statistics (without the blur)
    assert style_loss(x, x.flip(-1).roll(5, dims=-2)).item() < 1e-10
    # a brightness shift of 0.1 on every channel: the squared mean gap, 0.01
    torch.testing.assert_close(style_loss(x, x + 0.1), torch.tensor(0.01), rtol=1e-4, atol=0)
    # a shift on one channel of three counts a third
    shifted = x.clone()
    shifted[:, 1] += 0.1
    torch.testing.assert_close(style_loss(x, shifted), torch.tensor(0.01 / 3), rtol=1e-4, atol=0)
    # contrast: the std gap; the blur shrinks what fine detail contributes
    noise = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    flat = torch.full_like(noise, 0.5)
    assert style_loss(flat, noise, blur_sigma=2.0) < 0.2 * style_loss(flat, noise)


def test_style_loss_gradient_moves_the_statistics_toward_the_target() -> None:
    pred = (images(8) * 0.5).requires_grad_()
    target = images(9) * 0.5 + 0.3
    loss = style_loss(pred, target, blur_sigma=1.0)
    loss.backward()
    with torch.no_grad():
        stepped = pred - 0.5 * pred.grad
    assert style_loss(stepped, target, blur_sigma=1.0) < loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert style_loss(pred.bfloat16(), target.bfloat16()).dtype == torch.float32

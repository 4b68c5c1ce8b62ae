"""Reconstruction losses: a registry of per-pixel terms and a weighted, masked composite.

Every term in :data:`LOSSES` maps ``(pred, target, weight)`` to a scalar, where ``pred`` and
``target`` are (N, C, H, W) floats in [0, 1] and ``weight`` is an (N, 1, H, W) per-pixel
weight map or None (plain mean). :class:`ReconstructionLoss` builds that map from a face mask
(background pixels count ``background_weight`` as much as face pixels) and an optional
priority map (eyes/mouth > 1), and sums the configured terms.

The weighted mean divides by the sum of the *mask* weights, not of the priority-scaled ones:
a priority of 3 on the eyes makes eye errors cost 3x more, rather than only re-balancing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from faceswap.errors import FaceswapError
from faceswap.registry import Registry

LossFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]

#: Loss term name → fn(pred, target, weight | None) -> scalar tensor (0 when pred == target).
LOSSES: Registry[LossFn] = Registry("loss")

_SSIM_C1 = 0.01**2  # for a data range of 1
_SSIM_C2 = 0.03**2
_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003


def weighted_mean(
    values: torch.Tensor, weight: torch.Tensor | None, norm: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean of ``values`` (N, C, H, W) under ``weight`` (N, 1, H, W) broadcast over channels.

    ``norm`` (N, 1, H, W) is what the weighted sum is divided by (defaults to ``weight``).
    """
    if weight is None:
        return values.mean()
    norm = weight if norm is None else norm
    total = (values * weight).sum()
    return total / (norm.sum() * values.shape[1]).clamp_min(1e-8)


@LOSSES.register("l1")
def l1_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean absolute error (robust, the deepfakes default)."""
    return weighted_mean((pred - target).abs(), weight)


@LOSSES.register("mse")
def mse_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error."""
    return weighted_mean((pred - target).square(), weight)


def _gaussian_window(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _blur_matrix(n: int, window: torch.Tensor) -> torch.Tensor:
    """(n, n) matrix B with ``v @ B`` = ``v`` reflect-padded and convolved with ``window``
    (1-D, odd length < 2n): row i is the blurred unit vector e_i."""
    pad = window.numel() // 2
    basis = F.pad(
        torch.eye(n, dtype=window.dtype, device=window.device)[:, None], (pad, pad), mode="reflect"
    )
    return F.conv1d(basis, window.view(1, 1, -1))[:, 0]


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian of (N, C, H, W) maps, reflect-padded so the map keeps the input's
    size (and a per-pixel weight map lines up with it).

    Run as two small matmuls with banded matrices, ``B_h^T @ x @ B_w``: on 2 CPU cores SSIM
    forward + backward of 16 64 px faces took 5 ms, against 26 ms as padded depthwise
    convolutions (oneDNN runs a 3-channel depthwise conv at a fraction of memory speed). In
    float32 whatever autocast is on: SSIM's variance terms cancel badly in half precision.
    """
    with torch.autocast(x.device.type, enabled=False):
        x = x.float()
        b_w = _blur_matrix(x.shape[-1], window)
        b_h = b_w if x.shape[-2] == x.shape[-1] else _blur_matrix(x.shape[-2], window)
        return b_h.t() @ x @ b_w


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of (N, C, H, W) maps (reflect padding, float32), with :func:`_blur`'s
    banded matmuls; the window spans 3 sigma each side (at most the map's size)."""
    radius = min(math.ceil(3 * sigma), min(x.shape[-2:]) - 1)
    return _blur(x, _gaussian_window(2 * max(radius, 0) + 1, sigma, x.float()))


def ssim_maps(
    pred: torch.Tensor, target: torch.Tensor, window_size: int = 11, sigma: float = 1.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel SSIM and contrast-structure maps, both (N, C, H, W), in [-1, 1].

    Inputs are (N, C, H, W) in [0, 1]. ``window_size`` is clipped to the image size (odd), so
    it works from 8 px up.
    """
    h, w = pred.shape[-2:]
    size = min(window_size, h, w)
    size -= 1 - size % 2  # odd
    size = max(size, 1)
    if size < window_size:  # keep the window's shape when it is clipped
        sigma = sigma * size / window_size
    # Stats in float32: SSIM's variance terms cancel badly in half precision.
    pred = pred.float()
    target = target.float()
    window = _gaussian_window(size, sigma, pred)
    mu_p = _blur(pred, window)
    mu_t = _blur(target, window)
    var_p = _blur(pred * pred, window) - mu_p**2
    var_t = _blur(target * target, window) - mu_t**2
    cov = _blur(pred * target, window) - mu_p * mu_t
    cs = (2 * cov + _SSIM_C2) / (var_p + var_t + _SSIM_C2)
    lum = (2 * mu_p * mu_t + _SSIM_C1) / (mu_p**2 + mu_t**2 + _SSIM_C1)
    return lum * cs, cs


def ssim(pred: torch.Tensor, target: torch.Tensor, window_size: int = 11) -> torch.Tensor:
    """Mean SSIM of two batches (N, C, H, W) in [0, 1]; 1 for identical images."""
    return ssim_maps(pred, target, window_size)[0].mean()


def style_loss(pred: torch.Tensor, target: torch.Tensor, blur_sigma: float = 0.0) -> torch.Tensor:
    """DeepFaceLab's style loss: how far two batches' colour statistics are apart.

    Both (N, C, H, W) batches are blurred (sigma ``blur_sigma`` px, 0: not), then each
    image's per-channel mean and standard deviation are compared: the squared gaps, summed
    over channels and divided by C, averaged over the batch. Only the statistics count, not
    where a colour is, so it pulls a face's lighting and tone, not its shape.
    """
    if blur_sigma > 0:
        pred, target = gaussian_blur(pred, blur_sigma), gaussian_blur(target, blur_sigma)
    with torch.autocast(pred.device.type, enabled=False):
        p_var, p_mean = torch.var_mean(pred.float(), dim=(2, 3), correction=0)
        t_var, t_mean = torch.var_mean(target.float(), dim=(2, 3), correction=0)
        std_gap = (p_var + 1e-5).sqrt() - (t_var + 1e-5).sqrt()
        gaps = (p_mean - t_mean).square() + std_gap.square()
        return gaps.sum(dim=1).mean() / pred.shape[1]


def feathered_mask(mask: torch.Tensor) -> torch.Tensor:
    """DeepFaceLab's training mask: the (N, 1, R, R) face mask blurred by R / 32, then
    doubled and clipped, so it stays 1 inside the face and fades out past its edge only."""
    blurred = gaussian_blur(mask, max(1, mask.shape[-1] // 32))
    return blurred.clamp(0, 0.5) * 2


def face_style_term(
    swap: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """DeepFaceLab's face style term, unweighted (DFL weighs it ``100 * face_style_power``).

    :func:`style_loss` (blur R / 8) between faces drawn as the other identity (``swap``) and
    the same faces drawn as themselves (``reference``, held fixed), both under the faces'
    :func:`feathered_mask`: the swap takes on the colour and lighting of the face it
    replaces. Comparing two drawings, not the photo, keeps the photo's finer detail
    (a larger spread of values) out of the statistics.
    """
    m = feathered_mask(mask)
    return style_loss(swap * m, reference.detach() * m, swap.shape[-1] // 8)


def background_style_term(
    swap: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """DeepFaceLab's background style term, unweighted (DFL weighs it
    ``bg_style_power / 10``): DSSIM (window R / 11.6) + MSE between the swap and the
    target outside the target's :func:`feathered_mask`, so what the swap draws past the
    face's edge continues the target's background."""
    outside = 1.0 - feathered_mask(mask)
    pred, real = swap * outside, target * outside
    window = max(1, int(swap.shape[-1] / 11.6))
    window -= 1 - window % 2  # odd
    dssim = (1 - ssim_maps(pred, real, window)[0].mean()) / 2
    return dssim + (pred.float() - real.float()).square().mean()


@LOSSES.register("ssim")
def ssim_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """1 - SSIM (11 px Gaussian window, sigma 1.5; smaller on small images)."""
    return weighted_mean(1 - ssim_maps(pred, target)[0], weight)


def ms_ssim_scales(size: int, window_size: int = 7, max_scales: int = 5) -> int:
    """How many MS-SSIM scales fit an image of ``size`` px: the coarsest keeps >= the window."""
    return max(1, min(max_scales, math.floor(math.log2(max(size, 1) / window_size)) + 1))


def ms_ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    window_size: int = 7,
    max_scales: int = 5,
) -> torch.Tensor:
    """Multi-scale SSIM in [0, 1] (1 for identical images), optionally pixel-weighted.

    The standard five-scale weights are used for as many scales as the image allows (window
    7 px: 3 scales at 32 px, 4 at 64 px, 5 from 112 px), renormalised to sum to 1. Each
    per-scale value in [-1, 1] is mapped to [0, 1] by (v + 1) / 2 before the weighted product
    (the "normalised" MS-SSIM used for training): clamping negatives to 0 instead would zero
    the whole product and its gradient on badly wrong early reconstructions.
    """
    scales = ms_ssim_scales(min(pred.shape[-2:]), window_size, max_scales)
    betas = torch.tensor(_MS_SSIM_WEIGHTS[:scales], dtype=torch.float32, device=pred.device)
    betas = betas / betas.sum()
    values = []
    for i in range(scales):
        s_map, cs_map = ssim_maps(pred, target, window_size)
        m = s_map if i == scales - 1 else cs_map
        values.append((weighted_mean(m, weight) + 1) / 2)
        if i < scales - 1:
            pred = F.avg_pool2d(pred, 2)
            target = F.avg_pool2d(target, 2)
            if weight is not None:
                weight = F.avg_pool2d(weight, 2)
    stacked = torch.stack(values)
    # The floor keeps the gradient of x**beta finite should a value reach exactly 0.
    return torch.prod(stacked.clamp_min(1e-6) ** betas)


@LOSSES.register("ms-ssim")
def ms_ssim_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """1 - MS-SSIM (7 px window, as many scales as fit)."""
    return 1 - ms_ssim(pred, target, weight)


_LOG2 = math.log(2.0)


@LOSSES.register("logcosh")
def logcosh_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean log(cosh(pred - target)), weighted like :func:`l1_loss`.

    log cosh x is ~x²/2 for small errors and ~|x| - log 2 for large ones, so it is smooth at 0
    like MSE (the gradient, tanh x, fades as the error does instead of jumping like L1's sign)
    yet robust to outliers like L1. Pick it over ``l1`` to damp the jitter of an L1 gradient
    on nearly converged faces, or over ``mse`` when a few badly wrong pixels (hair, occluders)
    should not dominate. Computed in float32 whatever autocast is on, as the overflow-free
    |x| + softplus(-2|x|) - log 2; its value loses relative precision to cancellation below
    |x| ~ 1e-3 (where it is < 5e-7), its gradient does not (on 2 CPU cores this ran 2.5x
    faster than a form exact there).
    """
    with torch.autocast(pred.device.type, enabled=False):
        x = (pred.float() - target.float()).abs()
        w = None if weight is None else weight.float()  # a bf16 sum of weights is coarse
        return weighted_mean(x + F.softplus(-2 * x) - _LOG2, w)


_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601
_GMSD_C = 0.0026  # Xue et al. 2013: 170 / 255² for data in [0, 1]
_GMSD_EPS = 1e-12  # keeps sqrt differentiable where a value is exactly 0


def _luma(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) BT.601 luma of (N, 3, H, W) RGB; a 1-channel input passes through, other
    channel counts are averaged."""
    if x.shape[1] == 3:
        w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    return x.mean(1, keepdim=True)


def _prewitt_magnitude(y: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of (N, 1, H, W) maps under the 3x3 Prewitt operator (each kernel
    / 3), replicate-padded so the map keeps the input's size. Written as shifted differences
    and sums rather than a convolution: cheaper on CPU, and exact."""
    p = F.pad(y, (1, 1, 1, 1), mode="replicate")
    dx = p[..., :, 2:] - p[..., :, :-2]  # (H + 2, W)
    dy = p[..., 2:, :] - p[..., :-2, :]  # (H, W + 2)
    gx = (dx[..., :-2, :] + dx[..., 1:-1, :] + dx[..., 2:, :]) / 3
    gy = (dy[..., :, :-2] + dy[..., :, 1:-1] + dy[..., :, 2:]) / 3
    return torch.sqrt(gx.square() + gy.square() + _GMSD_EPS)


@LOSSES.register("gmsd")
def gmsd_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Gradient Magnitude Similarity Deviation (Xue et al. 2013), 0 for identical images.

    Both images go to BT.601 luma; the per-pixel gradient magnitude similarity
    GMS = (2 m_p m_t + c) / (m_p² + m_t² + c), c = 0.0026, of their 3x3 Prewitt magnitudes is
    1 where the local edge strength agrees; the loss is the per-sample standard deviation of
    that map (weighted mean and deviation under a weight map), averaged over the batch. It
    scores how *unevenly* edges are lost, which tracks perceived blur and ringing well, and
    ignores brightness and colour (an offset leaves the gradients equal): pick it as a cheap
    sharpness term next to ``l1`` or ``ssim``, never alone. Unlike the paper the images are
    not 2x downsampled first (faces here are small). float32 whatever autocast is on.
    """
    with torch.autocast(pred.device.type, enabled=False):
        m_p = _prewitt_magnitude(_luma(pred.float()))
        m_t = _prewitt_magnitude(_luma(target.float()))
        gms = (2 * m_p * m_t + _GMSD_C) / (m_p.square() + m_t.square() + _GMSD_C)
        if weight is None:
            var = gms.var(dim=(1, 2, 3), correction=0)
        else:
            w = weight.float().expand_as(gms)
            total = w.sum(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
            mean = (w * gms).sum(dim=(1, 2, 3), keepdim=True) / total
            var = ((w * (gms - mean).square()).sum(dim=(1, 2, 3), keepdim=True) / total).flatten()
        # The epsilon keeps the gradient of the root finite when the map is constant.
        return torch.sqrt(var + _GMSD_EPS).mean()


def focal_frequency_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    alpha: float = 1.0,
) -> torch.Tensor:
    """Focal Frequency Loss (Jiang et al. 2021) of (N, C, H, W) batches; see :func:`ffl_loss`.

    ``alpha`` is the focusing exponent: the per-frequency weight is |F_p - F_t|^alpha over its
    per-sample, per-channel maximum (detached). ``alpha=0`` weights every frequency 1, and by
    Parseval (orthonormal FFT) the loss is then exactly MSE, or with ``weight`` the MSE
    weighted by ``weight²``.
    """
    with torch.autocast(pred.device.type, enabled=False):
        diff = pred.float() - target.float()
        if weight is not None:
            w = weight.float()
            diff = diff * w  # the FFT is linear: F(w p) - F(w t) = F(w (p - t))
        spectrum = torch.fft.fft2(diff, norm="ortho")
        distance = spectrum.real.square() + spectrum.imag.square()
        with torch.no_grad():
            focal = distance.sqrt() ** alpha
            peak = focal.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
            focal = (focal / peak).clamp(0, 1)
        loss = (focal * distance).mean()
        if weight is not None:
            loss = loss / w.square().mean().clamp_min(1e-8)
        return loss


@LOSSES.register("ffl")
def ffl_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Focal Frequency Loss (Jiang et al. 2021, alpha 1): squared distance of the two images'
    orthonormal 2-D spectra, each frequency weighted by its own error over the largest one.

    Pixel losses let a network trade away the frequencies it finds hard (fine skin texture,
    hair, eyelashes): the focal weight concentrates the loss on exactly those, so the spectrum
    of the reconstruction catches up instead of settling for a blurry average. It is at most
    the MSE (the weights are <= 1) and usually well below it, so give it a large weight; a
    brightness or colour offset (the 0-frequency error becomes the peak) lowers every other
    frequency's weight, so keep ``l1`` or ``ssim`` for colour. A pixel weight map multiplies
    the difference before the transform, and the loss is divided by mean(weight²) to keep its
    scale. float32 with autocast off (no bf16 FFT on CPU).
    """
    return focal_frequency_loss(pred, target, weight, alpha=1.0)


_LAP_LEVELS = 5  # band-pass levels at most
_LAP_MIN_SIZE = 8  # px: the coarsest (low-pass) level keeps a side of at least this


def _lap_matrices(n: int, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, m) reduce and (m, n) expand matrices, m = ceil(n / 2), for one image axis.

    ``v @ reduce`` is ``v`` blurred (reflect padding) then subsampled at the even samples;
    ``g @ expand`` zero-inserts ``g`` back to n samples and blurs it, normalised so that
    each output sample's weights sum to 1 (a constant expands to itself exactly; the
    5-tap sigma-1 Gaussian alone would leave a +-2.3 % ripple on alternate pixels).
    """
    blur = _blur_matrix(n, window)
    expand = blur[::2]
    return blur[:, ::2], expand / expand.sum(0, keepdim=True)


def laplacian_pyramid(x: torch.Tensor, max_levels: int = _LAP_LEVELS) -> list[torch.Tensor]:
    """Laplacian pyramid of (N, C, H, W) maps, finest first, in float32.

    Gaussian levels G_0 = x, G_{j+1} = reduce(G_j) (5x5 Gaussian, sigma 1, reflect padding,
    every other pixel; a side of n becomes ceil(n / 2)); band-pass levels
    L_j = G_j - expand(G_{j+1}). Levels are added while the next Gaussian level keeps a side
    of at least 8 px, up to ``max_levels``; the last entry is that low-pass level itself, so
    the list is ``[L_0, ..., L_{K-1}, G_K]`` (64 px: K = 3, sizes 64, 32, 16, 8) and the image
    is exactly ``G_K`` expanded and added back level by level.
    """
    with torch.autocast(x.device.type, enabled=False):
        current = x.float()
        window = _gaussian_window(5, 1.0, current)
        pyramid = []
        for _ in range(max_levels):
            h, w = current.shape[-2:]
            if min(math.ceil(h / 2), math.ceil(w / 2)) < _LAP_MIN_SIZE:
                break
            reduce_w, expand_w = _lap_matrices(w, window)
            reduce_h, expand_h = (reduce_w, expand_w) if h == w else _lap_matrices(h, window)
            coarse = reduce_h.t() @ current @ reduce_w
            pyramid.append(current - expand_h.t() @ coarse @ expand_w)
            current = coarse
        pyramid.append(current)
        return pyramid


@LOSSES.register("laplacian")
def laplacian_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Laplacian-pyramid L1, "Lap1" (Bojanowski et al. 2018): sum over pyramid levels j
    (0 the finest, the low-pass residual last) of 2^(-2j) times the mean absolute difference
    of the two images' level j (see :func:`laplacian_pyramid`).

    Each level holds one band of detail, so an error in edges and texture costs its full
    amplitude while a smooth, low-frequency error (a shading or colour drift) lands in the
    coarse levels and costs 4x less per octave: the term pushes for sharp detail and leaves
    overall colour to ``l1``/``ssim`` (at 64 px the low-pass level weighs 1/64), so use it
    next to them. A weight map is average-pooled alongside the levels like ``ms-ssim`` does.
    """
    # The pyramid is linear: one of the difference is the difference of the two.
    levels = laplacian_pyramid(pred.float() - target.float())
    w = None if weight is None else weight.float()
    total = pred.new_zeros((), dtype=torch.float32)
    for j, level in enumerate(levels):
        if j and w is not None:
            w = F.avg_pool2d(w, 2, ceil_mode=True)  # sides round up like the pyramid's
        total = total + 4.0**-j * weighted_mean(level.abs(), w)
    return total


def parse_loss_spec(spec: str) -> tuple[tuple[str, float], ...]:
    """Parse ``"ssim:1,l1:0.5"`` (weight defaults to 1) into ``(("ssim", 1.0), ("l1", 0.5))``.

    Raises:
        FaceswapError: an unknown loss name (lists the valid ones) or a weight that is not a
            non-negative number.
    """
    terms = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition(":")
        name = name.strip()
        LOSSES.get(name)
        try:
            w = float(value) if value.strip() else 1.0
        except ValueError:
            raise FaceswapError(
                f"loss '{part}': weight '{value}' is not a number; write e.g. {name}:1.0"
            ) from None
        if w < 0 or not math.isfinite(w):
            raise FaceswapError(f"loss '{part}': weight must be a non-negative number")
        terms.append((name, w))
    if not terms:
        raise FaceswapError(f"loss spec '{spec}' names no loss; write e.g. 'ssim:1,l1:1'")
    return tuple(terms)


@dataclass(frozen=True)
class LossConfig:
    """Which reconstruction terms to sum and how masks weight the pixels.

    Attributes:
        terms: ``(name, weight)`` pairs from :data:`LOSSES`, or a spec string
            ``"ssim:1,l1:1"`` (turned into pairs).
        background_weight: weight of pixels outside the face mask relative to inside, in
            [0, 1]: 0 ignores the background, 1 treats it like the face.
        mask_weight: weight of the learned-mask term (L1 between predicted mask and target
            mask) when the model predicts a mask and a target mask is given; 0 turns it off.
    """

    terms: tuple[tuple[str, float], ...] | str = (("ssim", 1.0), ("l1", 1.0))
    background_weight: float = 0.1
    mask_weight: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.terms, str):
            object.__setattr__(self, "terms", parse_loss_spec(self.terms))
        else:
            spec = ",".join(f"{n}:{w}" for n, w in (tuple(t) for t in self.terms))
            object.__setattr__(self, "terms", parse_loss_spec(spec))
        if not 0.0 <= self.background_weight <= 1.0:
            raise FaceswapError(
                f"background_weight must be in [0, 1], got {self.background_weight}"
            )
        if self.mask_weight < 0:
            raise FaceswapError(f"mask_weight must be >= 0, got {self.mask_weight}")


class ReconstructionLoss(nn.Module):
    """Sum of weighted loss terms over a masked, priority-weighted face.

    Call with ``pred``, ``target`` (N, 3, H, W) in [0, 1]; ``mask`` (N, 1, H, W) in [0, 1] (1 =
    face, e.g. the landmark hull) or None; ``priority`` (N, 1, H, W) >= 1 inside regions that
    matter more (eyes, mouth) and 1 elsewhere, or None; ``pred_mask`` (N, 1, H, W) from a
    learned-mask decoder, or None. Returns a dict: ``loss`` (the total, for backward) and one
    detached entry per term (``l1``, ``ssim``, ..., ``mask``).
    """

    def __init__(self, config: LossConfig | None = None) -> None:
        super().__init__()
        self.config = config or LossConfig()
        self._fns = [(name, w, LOSSES.get(name)) for name, w in self.config.terms]

    def pixel_weights(
        self, mask: torch.Tensor | None, priority: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(weight, norm) maps for :func:`weighted_mean`; (None, None) means a plain mean."""
        if mask is None and priority is None:
            return None, None
        if mask is None:
            base = torch.ones_like(priority)  # type: ignore[arg-type]
        else:
            bg = self.config.background_weight
            base = mask.float() * (1 - bg) + bg
        weight = base if priority is None else base * priority
        return weight, base

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
        priority: torch.Tensor | None = None,
        pred_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        weight, norm = self.pixel_weights(mask, priority)
        # Each term is a weighted mean (divided by the sum of ``weight``); rescale it so the
        # denominator is the mask weight sum instead (see the module docstring).
        scale = None if weight is None else (weight.sum() / norm.sum().clamp_min(1e-8)).detach()
        parts: dict[str, torch.Tensor] = {}
        total = pred.new_zeros((), dtype=torch.float32)
        for name, w, fn in self._fns:
            value = fn(pred, target, weight)
            if scale is not None:
                value = value * scale
            parts[name] = value.detach()
            total = total + w * value
        if pred_mask is not None and mask is not None and self.config.mask_weight > 0:
            value = l1_loss(pred_mask, mask.to(pred_mask.dtype))
            parts["mask"] = value.detach()
            total = total + self.config.mask_weight * value
        parts["loss"] = total
        return parts

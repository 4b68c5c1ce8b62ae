"""Building blocks shared by the encoders and decoders (convs, pixel-shuffle upscales)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Route the weight gradient of small-map convs through a batched oneDNN GEMM on the CPU (see
#: :class:`Conv2d`). A switch so benchmarks can compare; the results are equal either way.
SMALL_MAP_WEIGHT_GRAD = True
# Output maps up to this many pixels (4x4) take the GEMM path; from 8x8 oneDNN's own
# weight-gradient kernel was as fast in our measurements.
_SMALL_MAP_PIXELS = 16


def init_conv(conv: nn.Conv2d | nn.Linear, negative_slope: float) -> None:
    """He-uniform weights for a LeakyReLU net and zero bias (the deepfakes/DFL default)."""
    nn.init.kaiming_uniform_(conv.weight, a=negative_slope, nonlinearity="leaky_relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def icnr_(weight: torch.Tensor, scale: int, negative_slope: float) -> None:
    """ICNR init of a conv feeding ``PixelShuffle(scale)``, in place.

    Every group of ``scale**2`` output channels that the shuffle spreads over one output
    pixel block gets the same kernel, so at step 0 the upscale equals a nearest-neighbour
    resize: no checkerboard artefacts (Aitken et al. 2017).
    """
    out_ch = weight.shape[0] // (scale * scale)
    base = torch.empty(out_ch, *weight.shape[1:], dtype=weight.dtype, device=weight.device)
    nn.init.kaiming_uniform_(base, a=negative_slope, nonlinearity="leaky_relu")
    with torch.no_grad():
        weight.copy_(base.repeat_interleave(scale * scale, dim=0))


class _SmallMapConvFn(torch.autograd.Function):
    """conv2d whose weight gradient is one GEMM run as a batched 1x1 oneDNN convolution.

    For a conv with a tiny output map (the 4x4 layers around the bottleneck) the weight
    gradient is dW (O, C*k*k) = dY (O, M) @ cols (M, C*k*k) with M = N*H*W small and the
    result large; oneDNN's direct weight-gradient kernel blocks over the tiny spatial map and
    ran 2-2.5x slower than the same GEMM laid out as a (O/64, M, 8, 8) channels-last batch
    through its 1x1 forward kernel. Forward and input gradient use the ordinary kernels.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: int,
        padding: int,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, bias is not None)  # type: ignore[attr-defined]
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors  # type: ignore[attr-defined]
        stride, padding, has_bias = ctx.conf  # type: ignore[attr-defined]
        out_ch, in_ch, k, _ = weight.shape
        grad_out = grad_out.contiguous()
        grad_x = grad_b = None
        if ctx.needs_input_grad[0]:  # type: ignore[attr-defined]
            # Input gradient only: asking oneDNN for the bias gradient in the same call
            # sends it down its slow weight-gradient path.
            grad_x = torch.ops.aten.convolution_backward(
                grad_out,
                x,
                weight,
                None,
                [stride, stride],
                [padding, padding],
                [1, 1],
                False,
                [0, 0],
                1,
                [True, False, False],
            )[0]
        if has_bias:
            grad_b = grad_out.sum((0, 2, 3))
        grad_w = None
        if ctx.needs_input_grad[1]:  # type: ignore[attr-defined]
            n, _, h, w = grad_out.shape
            m = n * h * w
            ckk = in_ch * k * k
            # cols^T (C*k*k, M), in unfold's (c, kh, kw) order = the weight's own layout.
            cols = F.unfold(x, k, padding=padding, stride=stride)  # (N, C*k*k, h*w)
            cols_t = cols.permute(1, 0, 2).reshape(ckk, m, 1, 1)
            # dY as O rows of length M, viewed as a channels-last (O/64, M, 8, 8) batch.
            rows = grad_out.permute(1, 0, 2, 3).reshape(out_ch // 64, 8, 8, m)
            prod = F.conv2d(rows.permute(0, 3, 1, 2), cols_t)  # (O/64, C*k*k, 8, 8)
            grad_w = prod.permute(0, 2, 3, 1).reshape(out_ch, in_ch, k, k)
        return grad_x, grad_w, grad_b, None, None


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and state dict) with a faster CPU backward for tiny maps.

    Square kernels, equal stride and padding on both axes, no groups or dilation. On the CPU,
    in float32, when the output map has at most 16 pixels and ``out_channels`` is a multiple
    of 64, the weight gradient goes through :class:`_SmallMapConvFn`; everywhere else this is
    the stock convolution.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            SMALL_MAP_WEIGHT_GRAD
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and self.weight.dtype == torch.float32
            and self.weight.requires_grad
            and torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu")
            and self.out_channels % 64 == 0
            and self.groups == 1
            and self.dilation == (1, 1)
            and self._out_pixels(x) <= _SMALL_MAP_PIXELS
        ):
            return _SmallMapConvFn.apply(x, self.weight, self.bias, self.stride[0], self.padding[0])
        return super().forward(x)

    def _out_pixels(self, x: torch.Tensor) -> int:
        k, s, p = self.kernel_size[0], self.stride[0], self.padding[0]
        h = (x.shape[-2] + 2 * p - k) // s + 1
        w = (x.shape[-1] + 2 * p - k) // s + 1
        return h * w


class DownBlock(nn.Sequential):
    """Conv (stride 2, 'same' padding) + LeakyReLU: (N, C_in, H, W) → (N, C_out, H/2, W/2)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, negative_slope: float) -> None:
        conv = Conv2d(c_in, c_out, kernel, stride=2, padding=kernel // 2)
        init_conv(conv, negative_slope)
        super().__init__(conv, nn.LeakyReLU(negative_slope, inplace=True))


class UpscaleBlock(nn.Sequential):
    """Conv to 4x channels + LeakyReLU + PixelShuffle(2): (N, C_in, H, W) → (N, C_out, 2H, 2W)."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, negative_slope: float, icnr: bool = True
    ) -> None:
        conv = Conv2d(c_in, c_out * 4, kernel, padding=kernel // 2)
        init_conv(conv, negative_slope)
        if icnr:
            icnr_(conv.weight, 2, negative_slope)
        super().__init__(conv, nn.LeakyReLU(negative_slope, inplace=True), nn.PixelShuffle(2))


class ResBlock(nn.Module):
    """DFL-style residual block: x + conv(lrelu(conv(x))), then LeakyReLU; shape-preserving."""

    def __init__(self, channels: int, kernel: int, negative_slope: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
        init_conv(self.conv1, negative_slope)
        init_conv(self.conv2, negative_slope)
        self.act = nn.LeakyReLU(negative_slope)
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.act(self.conv1(x)))
        return self.act(x + y)


class DenseToMap(nn.Module):
    """Flatten → dense ``bottleneck`` → dense → reshape (C, L, L) → upscale.

    The face code of the deepfakes/DFL layouts. No activation between the dense layers (as in
    the original model): they act as a linear low-rank bottleneck.
    Shapes: (N, C_in, S, S) → (N, c_up, 2L, 2L).
    """

    def __init__(
        self,
        in_features: int,
        bottleneck: int,
        channels: int,
        size: int,
        c_up: int,
        kernel: int,
        negative_slope: float,
        icnr: bool = True,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.size = size
        self.dense1 = nn.Linear(in_features, bottleneck)
        self.dense2 = nn.Linear(bottleneck, channels * size * size)
        for layer in (self.dense1, self.dense2):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.upscale = UpscaleBlock(channels, c_up, kernel, negative_slope, icnr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dense2(self.dense1(torch.flatten(x, 1)))
        h = h.view(-1, self.channels, self.size, self.size)
        if x.is_contiguous(memory_format=torch.channels_last):
            # Keep the caller's layout for the convs that follow (oneDNN / cuDNN NHWC paths).
            h = h.contiguous(memory_format=torch.channels_last)
        return self.upscale(h)

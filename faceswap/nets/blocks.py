"""Building blocks shared by the encoders and decoders (convs, pixel-shuffle upscales)."""

from __future__ import annotations

import torch
from torch import nn


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


class DownBlock(nn.Sequential):
    """Conv (stride 2, 'same' padding) + LeakyReLU: (N, C_in, H, W) → (N, C_out, H/2, W/2)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, negative_slope: float) -> None:
        conv = nn.Conv2d(c_in, c_out, kernel, stride=2, padding=kernel // 2)
        init_conv(conv, negative_slope)
        super().__init__(conv, nn.LeakyReLU(negative_slope, inplace=True))


class UpscaleBlock(nn.Sequential):
    """Conv to 4x channels + LeakyReLU + PixelShuffle(2): (N, C_in, H, W) → (N, C_out, 2H, 2W)."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, negative_slope: float, icnr: bool = True
    ) -> None:
        conv = nn.Conv2d(c_in, c_out * 4, kernel, padding=kernel // 2)
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

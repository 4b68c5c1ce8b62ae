"""A small U-Net that tells face from what is not face in an aligned crop.

DeepFaceLab's XSeg idea: trained on a few hundred crops whose masks were painted to leave out
hands, hair, glasses and the background, it draws such masks for every other crop, and for
the destination faces at convert time, so what covers a face stays in front of the swap.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from faceswap.errors import FaceswapError


@dataclass(frozen=True)
class SegmenterConfig:
    """Shape of a :class:`Segmenter`.

    Attributes:
        resolution: side of the square input in pixels; crops are resized to it. Must be a
            multiple of ``2 ** (len(widths) - 1)``.
        widths: channels of each level, full resolution first; each further level halves
            the resolution.
    """

    resolution: int = 128
    widths: tuple[int, ...] = (16, 32, 64, 128)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        step = 2 ** (len(self.widths) - 1)
        if len(self.widths) < 2 or min(self.widths) < 1:
            raise FaceswapError(f"segmenter widths need 2 or more levels, got {self.widths}")
        if self.resolution < step or self.resolution % step:
            raise FaceswapError(
                f"segmenter resolution {self.resolution} must be a multiple of {step} "
                f"for {len(self.widths)} levels"
            )


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.LeakyReLU(0.1, inplace=True),
    )


class Segmenter(nn.Module):
    """U-Net: ``forward(x)`` maps (N, 3, R, R) RGB in [0, 1] to (N, 1, R, R) face logits."""

    def __init__(self, config: SegmenterConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.widths
        self.down = nn.ModuleList()
        c_in = 3
        for i, width in enumerate(widths):
            # Each level after the first starts with a stride-2 conv (learned downsampling).
            entry = nn.Conv2d(c_in, width, 3, stride=2, padding=1) if i else nn.Identity()
            self.down.append(nn.Sequential(entry, _block(width if i else c_in, width)))
            c_in = width
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(nn.Conv2d(c_in, width, 3, padding=1))
            self.merge.append(_block(2 * width, width))
            c_in = width
        self.out = nn.Conv2d(c_in, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level in self.down:
            x = level(x)
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            skip = skips.pop()
            x = F.leaky_relu(up(F.interpolate(x, size=skip.shape[-2:], mode="nearest")), 0.1)
            x = merge(torch.cat([x, skip], dim=1))
        return self.out(x)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice overlap of ``sigmoid(logits)`` and ``target`` (N, 1, H, W) in [0, 1],
    per image then averaged: thin occluders count as much as the large face around them."""
    prob = torch.sigmoid(logits.float())
    target = target.float()
    inter = (prob * target).sum(dim=(1, 2, 3))
    total = prob.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3))
    return (1 - (2 * inter + eps) / (total + eps)).mean()


def segmenter_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus Dice loss of face logits against a mask in [0, 1]."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), target.float())
    return bce + dice_loss(logits, target)

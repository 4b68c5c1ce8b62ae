"""A small CNN that tells a swapped face from a real one in an aligned crop.

The classic face-forensics set-up (MesoNet, the FaceForensics++ baselines): the face is cut
out and aligned as extract does, and a compact network looks at its texture, blending
seams and colour for the traces a swap leaves. It learns them from examples you give it
(real faces, and faces from your own swaps); no weights ship.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from faceswap.errors import FaceswapError


@dataclass(frozen=True)
class FakeNetConfig:
    """Shape of a :class:`FakeNet`.

    Attributes:
        resolution: side of the square input in pixels; crops are resized to it.
        widths: channels of each stride-2 convolution block.
    """

    resolution: int = 64
    widths: tuple[int, ...] = (16, 32, 64, 128)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if not self.widths or min(self.widths) < 1:
            raise FaceswapError(
                f"detector widths need 1 or more positive levels, got {self.widths}"
            )
        if self.resolution < 2 ** len(self.widths):
            raise FaceswapError(
                f"detector resolution {self.resolution} is too small for {len(self.widths)} "
                f"levels; use {2 ** len(self.widths)} or more"
            )


class FakeNet(nn.Module):
    """(N, 3, R, R) float in [0, 1] -> (N,) logits; sigmoid is the chance the face is swapped."""

    def __init__(self, config: FakeNetConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels = 3
        for width in config.widths:
            layers += [
                nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(width, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.LeakyReLU(0.1, inplace=True),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        features = self.features(faces * 2.0 - 1.0)
        return self.head(features.mean(dim=(2, 3))).squeeze(1)

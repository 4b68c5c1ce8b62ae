"""The mask U-Net: shapes, gradients, config checks, losses."""

from __future__ import annotations

import pytest
import torch

from faceswap.errors import FaceswapError
from faceswap.nets.segmenter import Segmenter, SegmenterConfig, dice_loss, segmenter_loss


@pytest.mark.parametrize(("resolution", "widths"), [(32, (4, 8)), (64, (4, 8, 16, 16))])
def test_forward_shape_and_every_parameter_learns(resolution: int, widths: tuple) -> None:
    torch.manual_seed(0)
    net = Segmenter(SegmenterConfig(resolution, widths))
    x = torch.rand(2, 3, resolution, resolution)
    logits = net(x)
    assert logits.shape == (2, 1, resolution, resolution) and torch.isfinite(logits).all()
    segmenter_loss(logits, (torch.rand_like(logits) > 0.5).float()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_config_checks_levels_and_resolution() -> None:
    with pytest.raises(FaceswapError, match="multiple of 8"):
        SegmenterConfig(60, (4, 8, 16, 32))
    with pytest.raises(FaceswapError, match="2 or more levels"):
        SegmenterConfig(32, (4,))
    assert SegmenterConfig(32, [4, 8]).widths == (4, 8)  # YAML/JSON lists


def test_dice_is_zero_for_a_perfect_mask_and_one_for_the_opposite() -> None:
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:6, 2:6] = 1
    sure = (target * 2 - 1) * 50  # logits: certain and right
    assert float(dice_loss(sure, target)) == pytest.approx(0, abs=1e-3)
    assert float(dice_loss(-sure, target)) == pytest.approx(1, abs=0.1)

"""Preview grids: the columns, the learned-mask columns, uneven sides."""

from __future__ import annotations

import numpy as np
import torch

from faceswap.train.preview import COLUMNS, COLUMNS_MASKED, preview_grid


def test_grid_columns_with_and_without_masks() -> None:
    g = torch.Generator().manual_seed(0)
    a = [torch.rand(3, 3, 8, 8, generator=g) for _ in range(3)]
    b = [torch.rand(2, 3, 8, 8, generator=g) for _ in range(3)]  # fewer B faces: padded
    plain = preview_grid(*a, *b, gap=2)
    assert plain.shape == (3 * 8, len(COLUMNS) * 8 + 2, 3)
    expected_a = a[0].mul(255).round().byte().permute(0, 2, 3, 1).reshape(-1, 8, 3).numpy()
    np.testing.assert_array_equal(plain[:, :8], expected_a)
    assert not plain[2 * 8 :, 3 * 8 + 2 :].any()  # the missing third B row is black
    masks = (torch.rand(3, 1, 8, 8, generator=g), torch.rand(2, 1, 8, 8, generator=g))
    masked = preview_grid(*a, *b, masks=masks, gap=2)
    assert masked.shape == (3 * 8, len(COLUMNS_MASKED) * 8 + 2, 3)
    grey = masks[0].mul(255).round().byte()[:, 0].reshape(-1, 8).numpy()
    for channel in range(3):
        np.testing.assert_array_equal(masked[:, 3 * 8 : 4 * 8, channel], grey)

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
    own_a, swap_a = (torch.rand(3, 1, 8, 8, generator=g) for _ in range(2))
    own_b, swap_b = (torch.rand(2, 1, 8, 8, generator=g) for _ in range(2))
    masked = preview_grid(*a, *b, masks=((own_a, swap_a), (own_b, swap_b)), gap=2)
    assert masked.shape == (3 * 8, len(COLUMNS_MASKED) * 8 + 2, 3)
    for mask, column in ((own_a, COLUMNS_MASKED.index("mask A→A")),
                         (swap_a, COLUMNS_MASKED.index("mask A→B"))):  # fmt: skip
        grey = mask.mul(255).round().byte()[:, 0].reshape(-1, 8).numpy()
        for channel in range(3):
            np.testing.assert_array_equal(masked[:, column * 8 : (column + 1) * 8, channel], grey)
    # The B half starts after the gap: its own mask follows B→B.
    b_own = 5 * 8 + 2 + 2 * 8
    grey_b = own_b.mul(255).round().byte()[:, 0].reshape(-1, 8).numpy()
    np.testing.assert_array_equal(masked[: 2 * 8, b_own : b_own + 8, 0], grey_b)

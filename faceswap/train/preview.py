"""Preview grids: how the model draws each side and the swaps, written as PNG."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import torch

from faceswap.errors import FaceswapError
from faceswap.io.files import write_bytes_atomic

COLUMNS = ("A", "A→A", "A→B", "B", "B→B", "B→A")
#: With a learned mask each drawing is followed by its mask: the face's own (what
#: ``--mask learned-dst`` blends with; with painted masks it leaves out what covers the
#: face) and the swap's.
COLUMNS_MASKED = (
    "A", "A→A", "mask A→A", "A→B", "mask A→B", "B", "B→B", "mask B→B", "B→A", "mask B→A"
)  # fmt: skip
#: ``--show-samples``: for each side, the model's input (augmented, warped), the target it
#: is taught to draw, and the loss weight of each pixel (white: the most).
SAMPLE_COLUMNS = ("input A", "target A", "weight A", "input B", "target B", "weight B")


def preview_grid(
    a: torch.Tensor,
    a2a: torch.Tensor,
    a2b: torch.Tensor,
    b: torch.Tensor,
    b2b: torch.Tensor,
    b2a: torch.Tensor,
    *,
    masks: tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    | None = None,
    gap: int = 2,
) -> np.ndarray:
    """Tile faces into one RGB uint8 image: one row per sample, columns as :data:`COLUMNS`
    (:data:`COLUMNS_MASKED` with ``masks``).

    Args:
        a, a2a, a2b: ``(N, 3, S, S)`` floats in [0, 1]: A faces, A redrawn by decoder A, A
            swapped to B.
        b, b2b, b2a: the same for B (``N`` may differ from A's; the shorter side is padded).
        masks: ``((A→A, A→B), (B→B, B→A))`` learned masks ``(N, 1, S, S)``, each shown in
            grey after its drawing.
        gap: pixels of black between the A half and the B half.

    Returns:
        ``(rows * S, 6 * S + gap, 3)`` uint8 RGB (``10 * S + gap`` wide with ``masks``).
    """
    halves: tuple[tuple[torch.Tensor, ...], ...] = ((a, a2a, a2b), (b, b2b, b2a))
    if masks is not None:
        halves = tuple(
            (face, own, own_mask, swap, swap_mask)
            for (face, own, swap), (own_mask, swap_mask) in zip(halves, masks, strict=True)
        )
    return tile_halves(halves[0], halves[1], gap=gap)


def tile_halves(
    half_a: tuple[torch.Tensor, ...], half_b: tuple[torch.Tensor, ...], *, gap: int = 2
) -> np.ndarray:
    """Columns of faces side by side, A's then a ``gap`` of black then B's: one row per
    sample, each column an ``(N, C, S, S)`` float tensor in [0, 1], shown in grey when
    ``C`` is 1. The side with fewer rows is padded with black.

    Returns:
        ``(rows * S, columns * S + gap, 3)`` uint8 RGB.
    """
    rows = max(half_a[0].shape[0], half_b[0].shape[0])
    size = half_a[0].shape[-1]

    def strip(tensors: tuple[torch.Tensor, ...]) -> np.ndarray:
        cols = []
        for t in tensors:
            t = t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t
            arr = t.detach().float().clamp(0, 1).mul(255).round().byte().cpu().numpy()
            arr = arr.transpose(0, 2, 3, 1).reshape(-1, size, 3)
            pad = rows * size - arr.shape[0]
            cols.append(np.pad(arr, ((0, pad), (0, 0), (0, 0))))
        return np.concatenate(cols, axis=1)

    spacer = np.zeros((rows * size, gap, 3), dtype=np.uint8)
    return np.concatenate([strip(half_a), spacer, strip(half_b)], axis=1)


def write_preview(
    paths: Path | tuple[Path, ...], grid: np.ndarray, text: Mapping[str, str] | None = None
) -> None:
    """Write an RGB uint8 grid as PNG atomically (encoded once for several ``paths``), with
    ``text`` as its tEXt chunks (:func:`~faceswap.provenance.preview_tags` for a grid
    showing swapped faces)."""
    from faceswap.io.images import png_with_text

    targets = (paths,) if isinstance(paths, Path) else paths
    ok, data = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    if not ok:
        raise FaceswapError(
            f"{targets[0]}: could not encode the preview PNG; check free disk space"
        )
    png = png_with_text(data.tobytes(), text) if text else data.tobytes()
    for path in targets:
        write_bytes_atomic(path, png)

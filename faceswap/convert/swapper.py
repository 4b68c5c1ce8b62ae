"""Batched inference: aligned crops of one person in, the other person's faces out."""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch

from faceswap.convert.pipeline import DIRECTIONS
from faceswap.errors import FaceswapError

log = logging.getLogger(__name__)


class Swapper:
    """Runs a :class:`~faceswap.nets.FaceSwapModel` on batches of aligned crops.

    Args:
        model: the model (moved to ``device`` and put in eval mode here).
        device: torch device.
        direction: ``a2b`` (encode A's faces, draw them with decoder B) or ``b2a``.
        amp: float16 autocast on CUDA (ignored elsewhere, with a warning).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        direction: str = "a2b",
        *,
        amp: bool = False,
    ) -> None:
        if direction not in DIRECTIONS:
            raise FaceswapError(
                f"unknown direction '{direction}'; choose from {', '.join(DIRECTIONS)}"
            )
        if amp and device.type != "cuda":
            log.warning("--amp works on CUDA only; running in float32 on %s", device.type)
            amp = False
        self.model = model.to(device).eval()
        self.device = device
        self.direction = direction
        self.amp = amp
        self.resolution = int(model.config.resolution)
        self.has_mask = bool(model.config.learned_mask)

    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Swap a batch of faces.

        Args:
            crops: uint8 (N, R, R, 3) RGB aligned crops at the model's resolution R.

        Returns:
            ``(faces, masks)``: float32 (N, R, R, 3) RGB in [0, 1], and float32 (N, R, R) in
            [0, 1] when the model learns a mask, else None.
        """
        if crops.ndim != 4 or crops.shape[1:] != (self.resolution, self.resolution, 3):
            raise ValueError(
                f"expected (N, {self.resolution}, {self.resolution}, 3) crops, got {crops.shape}"
            )
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        autocast = (
            torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()
        )
        with torch.inference_mode():
            with autocast:
                out = self.model.swap(x, self.direction)
            faces = out.rgb.float().clamp_(0, 1).permute(0, 2, 3, 1).contiguous().cpu().numpy()
            masks = None
            if out.mask is not None:
                masks = out.mask.float().clamp_(0, 1)[:, 0].contiguous().cpu().numpy()
        return faces, masks

"""Batched inference: aligned crops of one person in, the other person's faces out."""

from __future__ import annotations

import contextlib
import logging
from typing import NamedTuple

import numpy as np
import torch

from faceswap.convert.pipeline import DIRECTIONS
from faceswap.device import cpu_inference_gemm_library, resolve_amp
from faceswap.errors import FaceswapError

log = logging.getLogger(__name__)


class Swapped(NamedTuple):
    """What :class:`Swapper` returns for a batch of N faces at resolution R.

    Attributes:
        faces: float32 (N, R, R, 3) RGB in [0, 1], drawn by the other side's decoder.
        masks: float32 (N, R, R) in [0, 1], the mask that decoder draws with them (models
            with a learned mask), else None.
        dst_masks: float32 (N, R, R), the mask the faces' own decoder draws for them (with
            ``dst_mask``), else None.
    """

    faces: np.ndarray
    masks: np.ndarray | None
    dst_masks: np.ndarray | None = None


class Swapper:
    """Runs a :class:`~faceswap.nets.FaceSwapModel` on batches of aligned crops.

    Args:
        model: the model (moved to ``device``, cast to bf16 for ``amp`` on the CPU, and put
            in eval mode here: in place).
        device: torch device.
        direction: ``a2b`` (encode A's faces, draw them with decoder B) or ``b2a``.
        amp: mixed precision: float16 autocast on CUDA, bf16 on a CPU with native bf16
            (AVX512-BF16 or AMX, where the model also runs channels-last); float32
            elsewhere, with a warning (see :func:`faceswap.device.resolve_amp`). A float32
            model runs channels-last on CPUs whose BLAS is the faster GEMM library for
            inference (:func:`faceswap.device.cpu_inference_gemm_library`).
        dst_mask: also decode each face with its own side's decoder for that decoder's
            mask (:attr:`Swapped.dst_masks`; models with a learned mask): one more decoder
            pass per batch.
        morph: how far toward the other person the faces are drawn (DeepFaceLab's morph
            factor; 1: the whole swap). LIAE models only (:meth:`FaceSwapModel.morph`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        direction: str = "a2b",
        *,
        amp: bool = False,
        dst_mask: bool = False,
        morph: float = 1.0,
    ) -> None:
        if direction not in DIRECTIONS:
            raise FaceswapError(
                f"unknown direction '{direction}'; choose from {', '.join(DIRECTIONS)}"
            )
        # Inference needs no loss scaling, so CUDA takes float16, its fastest dtype.
        self.amp_dtype = resolve_amp(device, amp, "fp16" if device.type == "cuda" else "auto")
        memory_format = torch.contiguous_format
        # On the CPU the model itself is cast to bf16 (its input too) instead of autocast,
        # which would cast every weight again for every batch: a third of a batch's time for
        # ``original``. oneDNN's bf16 kernels are NHWC, hence channels-last. In float32,
        # where BLAS is the faster GEMM library, channels-last with the 4x4 convs as GEMMs
        # ran 9-29 % faster (``original`` 58 -> 75 faces/s, ``tiny`` +17 %, 2 cores; on an
        # AVX2 AMD CPU ``original`` +22-24 %, ``dfl-h128`` +4-14 %).
        self.input_dtype = torch.float32
        if device.type == "cpu" and self.amp_dtype is not None:
            memory_format = torch.channels_last
            self.input_dtype = self.amp_dtype
        elif device.type == "cpu" and cpu_inference_gemm_library() == "blas":
            memory_format = torch.channels_last
        if device.type == "cuda":
            # Batches have one shape (bar the last): let cuDNN pick the fastest kernels once.
            torch.backends.cudnn.benchmark = True
        self.model = model.to(device, self.input_dtype, memory_format=memory_format).eval()
        self.memory_format = memory_format
        self.device = device
        self.direction = direction
        self.resolution = int(model.config.resolution)
        self.has_mask = bool(model.config.learned_mask)
        if dst_mask and not self.has_mask:
            raise FaceswapError("dst_mask needs a model with a learned mask")
        self.dst_mask = dst_mask
        self.morph = morph
        if morph != 1.0:  # refused here, before any frame: a df model or a bad amount
            model.check_morph(morph)

    def __call__(self, crops: np.ndarray) -> Swapped:
        """Swap a batch of faces.

        Args:
            crops: uint8 (N, R, R, 3) RGB aligned crops at the model's resolution R (or
                uint16, 0-65535, from frames of more than 8 bits).

        Returns:
            :class:`Swapped` ``(faces, masks, dst_masks)``.
        """
        if crops.ndim != 4 or crops.shape[1:] != (self.resolution, self.resolution, 3):
            raise ValueError(
                f"expected (N, {self.resolution}, {self.resolution}, 3) crops, got {crops.shape}"
            )
        if crops.dtype == np.uint16:  # few torch ops take uint16: convert on the host
            x = torch.from_numpy(crops.astype(np.float32)).to(self.device, non_blocking=True)
            x = x.permute(0, 3, 1, 2).div_(65535.0)
        else:
            x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device, non_blocking=True)
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
        x = x.to(self.input_dtype, memory_format=self.memory_format)
        autocast = (
            torch.autocast(self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None and self.device.type != "cpu"
            else contextlib.nullcontext()
        )
        with torch.inference_mode():
            with autocast:
                own, other = ("a", "b") if self.direction == "a2b" else ("b", "a")
                z = self.model.encode(x)
                out = (
                    self.model.decode(z, other)
                    if self.morph == 1.0
                    else self.model.morph(z, other, self.morph)
                )
                dst = self.model.decode(z, own).mask if self.dst_mask else None
            faces = out.rgb.float().clamp_(0, 1).permute(0, 2, 3, 1).contiguous().cpu().numpy()
            masks = None if out.mask is None else _mask_array(out.mask)
            dst_masks = None if dst is None else _mask_array(dst)
        return Swapped(faces, masks, dst_masks)


def _mask_array(mask: torch.Tensor) -> np.ndarray:
    """(N, 1, R, R) decoder mask -> float32 (N, R, R) numpy in [0, 1]."""
    return mask.float().clamp_(0, 1)[:, 0].contiguous().cpu().numpy()

"""Pick a torch device by name."""

from __future__ import annotations

import torch

from faceswap.errors import FaceswapError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """Map ``auto|cpu|cuda|cuda:N|mps`` to a usable :class:`torch.device`.

    ``auto`` prefers CUDA, then Apple MPS, then the CPU. Asking for a device that is absent
    is an error naming what is available.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FaceswapError(
                f"device '{name}' requested but torch {torch.__version__} sees no CUDA GPU; "
                "use --device cpu or install a CUDA build of torch"
            )
        return torch.device(name)
    if name == "mps":
        if not _mps_available():
            raise FaceswapError(
                "device 'mps' requested but Apple MPS is not available; use --device cpu"
            )
        return torch.device("mps")
    raise FaceswapError(f"unknown device '{name}'; choose from {', '.join(DEVICE_CHOICES)}")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())

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


def keep_freed_memory() -> bool:
    """Make glibc keep freed host memory for reuse instead of handing it back to the OS.

    A CPU training step allocates and frees the same large tensors (weight gradients of
    tens of MB) every iteration. glibc serves blocks that large with fresh ``mmap`` pages and
    unmaps them on free, so each step pays page faults and zeroing for all of them: 15-20%
    of an ``original``-preset step on the CPU. With ``mmap`` off and trimming raised, freed
    blocks stay in the heap and are reused, the way torch's CUDA caching allocator works; the
    process keeps its peak memory. Returns False where the C library is not glibc.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))

"""Pick a torch device by name, and the mixed-precision dtype it runs well."""

from __future__ import annotations

import functools
import logging
import os
import platform

import torch

from faceswap.errors import FaceswapError

log = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
#: ``--amp-dtype`` values.
AMP_DTYPES = ("auto", "bf16", "fp16")
#: Values of the ``FACESWAP_CPU_GEMM`` environment variable (see :func:`cpu_gemm_library`).
CPU_GEMM_LIBRARIES = ("auto", "blas", "onednn")


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


def cpu_has_native_bf16() -> bool:
    """True when the CPU multiplies bf16 in hardware (AVX512-BF16 or AMX tiles).

    There oneDNN runs bf16 convolutions and matmuls several times faster than float32 (AMX:
    about 6x on a large matmul); elsewhere bf16 is emulated and slower than float32.
    """
    return cpu_has_amx() or bool(getattr(torch.cpu, "_is_avx512_bf16_supported", bool)())


def cpu_has_amx() -> bool:
    """True when the CPU has AMX tiles (Intel Xeon from Sapphire Rapids on).

    They set how much bf16 gains: with AMX 1.4-4.9x over float32 in training (machine B of
    the README), with AVX512-BF16 alone, which runs on the float32 vector units, 1.4-2.2x
    (machine D, AMD Zen 4).
    """
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", bool)())


def cpu_vendor() -> str:
    """The CPU's vendor string (``GenuineIntel``, ``AuthenticAMD``, ...), or '' if unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    text = platform.processor()
    return next((v for v in ("GenuineIntel", "AuthenticAMD") if v in text), "")


@functools.cache
def cpu_gemm_library() -> str:
    """Which library runs the CPU's large float32 GEMMs fastest: ``blas`` or ``onednn``.

    torch reaches two GEMM libraries on the CPU: MKL behind ``torch.mm`` and oneDNN behind
    convolutions. MKL runs its widest kernels on Intel CPUs only and serves others AVX2 code:
    on one AVX-512 machine it ran at half oneDNN's speed (239 against 506 GFLOP/s), on an
    Intel Xeon 10-15 % above it (385-417 against 345-375). The layers in
    :mod:`faceswap.nets.blocks` that run their own GEMMs follow this: ``blas`` on an Intel CPU
    with MKL, else ``onednn``. A fixed rule rather than a timing at start-up, so a machine
    always computes the same way (a resumed run reproduces the uninterrupted one).
    ``FACESWAP_CPU_GEMM=blas|onednn`` overrides it.
    """
    forced = _forced_cpu_gemm()
    if forced != "auto":
        return forced
    mkl = torch.backends.mkl.is_available()
    return "blas" if mkl and cpu_vendor() == "GenuineIntel" else "onednn"


@functools.cache
def cpu_inference_gemm_library() -> str:
    """The GEMM library for float32 inference on the CPU (``faceswap convert``).

    As :func:`cpu_gemm_library`, and also ``blas`` on a non-Intel CPU whose widest vectors
    are AVX2 (torch's CPU capability; MKL present): there MKL's AVX2 kernels are as wide as
    anything oneDNN has, and with a 4x4 map a conv's output has few pixels, which oneDNN's
    direct kernels block over. On a 2-core AMD EPYC (Zen 3, AVX2; machine C of the README)
    the BLAS route (channels-last, the 4x4 convs as GEMMs) ran ``original``'s model 22-24 %
    faster (22.9-23.4 against 18.7-18.8 faces/s), ``dfl-h128`` 4-14 %, ``liae`` 12 %,
    ``lightweight`` 5 % (``tiny``, whose convert is bound by ffmpeg, 22 % slower), with
    faces equal to 1e-6. Training keeps :func:`cpu_gemm_library`: on that machine
    the same switch trained ``original`` 5-15 % faster but ``dfl-h128`` 17 % slower.
    AVX-512 CPUs keep oneDNN: on a Zen 4 (AVX-512 on 256-bit units, machine D) the BLAS
    route had no clear edge (``original`` 1-9 % slower, the 128 px presets 6-8 % faster).
    ``FACESWAP_CPU_GEMM`` overrides both.
    """
    library = cpu_gemm_library()
    if library == "blas" or _forced_cpu_gemm() != "auto":
        return library
    avx2_only = torch.backends.cpu.get_cpu_capability() == "AVX2"
    return "blas" if avx2_only and torch.backends.mkl.is_available() else "onednn"


def _forced_cpu_gemm() -> str:
    forced = os.environ.get("FACESWAP_CPU_GEMM", "auto").strip().lower() or "auto"
    if forced not in CPU_GEMM_LIBRARIES:
        raise FaceswapError(
            f"FACESWAP_CPU_GEMM={forced!r} is not known; choose from "
            f"{', '.join(CPU_GEMM_LIBRARIES)}"
        )
    return forced


def resolve_channels_last(
    requested: bool | None, device: torch.device, amp_dtype: torch.dtype | None
) -> bool:
    """Whether training runs channels-last (NHWC): ``requested`` when given, else the layout
    measured faster on ``device``.

    Channels-last is the default on CUDA (cuDNN's tensor-core kernels are NHWC) and on a CPU
    whose BLAS is the faster GEMM library (:func:`cpu_gemm_library`): there oneDNN's NHWC
    convolutions ran 5-15 % faster and ``original`` trained 5 % faster a step (1270 against
    1340 ms on 2 cores). Elsewhere on the CPU float32 stays NCHW, measured faster on such a
    machine before (69 % against 78 % MFU for ``original``). CPU bf16 always runs
    channels-last: its NCHW kernels were 1.4-1.6x slower.
    """
    if device.type == "cpu" and amp_dtype is not None:
        return True
    if requested is not None:
        return requested
    if device.type == "cuda":
        return True
    return device.type == "cpu" and cpu_gemm_library() == "blas"


def resolve_amp(device: torch.device, amp: bool, dtype: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``--amp`` on ``device``, or None to run in float32.

    Args:
        device: the device the model runs on.
        amp: whether mixed precision was asked for.
        dtype: ``auto``, ``bf16`` or ``fp16``. On CUDA ``auto`` is bf16 where the GPU
            supports it, else fp16 (which needs loss scaling in training). On the CPU only
            bf16 exists: ``auto`` uses it when the CPU has native bf16
            (:func:`cpu_has_native_bf16`) and stays in float32 otherwise, ``bf16`` forces it.
            Other devices run in float32. Each fallback is logged as a warning.
    """
    if not amp:
        return None
    if dtype not in AMP_DTYPES:
        raise FaceswapError(f"unknown AMP dtype '{dtype}'; choose from {', '.join(AMP_DTYPES)}")
    if device.type == "cuda":
        if dtype == "fp16" or (dtype == "auto" and not torch.cuda.is_bf16_supported()):
            return torch.float16
        return torch.bfloat16
    if device.type == "cpu":
        if dtype == "fp16":
            log.warning("--amp-dtype fp16 is for CUDA; the CPU runs --amp in bf16")
            dtype = "auto"
        if cpu_has_native_bf16():
            return torch.bfloat16
        if dtype == "bf16":
            log.warning("this CPU has no native bf16 (AVX512-BF16 or AMX): bf16 runs emulated")
            return torch.bfloat16
        log.warning(
            "this CPU has no native bf16 (AVX512-BF16 or AMX), so --amp would be slower: "
            "running in float32 (--amp-dtype bf16 forces it)"
        )
        return None
    log.warning("--amp works on CUDA and bf16-capable CPUs; running in float32 on %s", device.type)
    return None


def amp_hint(device_name: str, amp: bool) -> str | None:
    """A one-line tip when a run on a CPU with native bf16 was started without ``--amp``."""
    if amp:
        return None
    try:
        if resolve_device(device_name).type != "cpu" or not cpu_has_native_bf16():
            return None
    except FaceswapError:  # the run itself reports a bad device
        return None
    units, gain = ("AMX", "2-4x") if cpu_has_amx() else ("AVX512-BF16", "about 2x")
    return f"tip: this CPU has native bf16 ({units}): add --amp to run {gain} faster"


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


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: CUDA's ``OutOfMemoryError``, or the
    RuntimeError the CPU and MPS allocators raise."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower()
    )


def out_of_memory_error(device: torch.device, batch_size: int, fixes: str) -> FaceswapError:
    """The one-line error for running out of ``device``'s memory at ``batch_size``."""
    where = "GPU" if device.type in ("cuda", "mps") else "host"
    smaller = max(1, batch_size // 2)
    return FaceswapError(
        f"out of {where} memory on {device} at --batch-size {batch_size}; rerun with "
        f"--batch-size {smaller}{fixes}"
    )

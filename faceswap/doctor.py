"""Environment report behind `faceswap doctor`."""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import platform

from faceswap import __version__
from faceswap.errors import FaceswapError


def collect_report() -> list[str]:
    """Lines describing torch, device, ffmpeg, cv2 and each detector backend."""
    import torch

    from faceswap.device import (
        cpu_gemm_library,
        cpu_has_amx,
        cpu_has_native_bf16,
        cpu_inference_gemm_library,
        cpu_vendor,
        resolve_device,
    )
    from faceswap.faces.detectors import backend_status
    from faceswap.io.ffmpeg_bin import locate_ffmpeg

    lines = [
        f"faceswap {__version__} on Python {platform.python_version()} ({platform.machine()})",
        f"torch {torch.__version__} (cuda build: {torch.version.cuda or 'no'}), "
        f"threads {torch.get_num_threads()}",
    ]
    device = resolve_device("auto")
    detail = ""
    if device.type == "cuda":
        detail = f" ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} GPU(s))"
    if device.type == "cpu":
        units = "AMX" if cpu_has_amx() else "AVX512-BF16"
        detail = (
            f" (native bf16, {units}: --amp trains and converts in bf16)"
            if cpu_has_native_bf16()
            else " (no native bf16: --amp stays float32)"
        )
    lines.append(f"device: {device.type}{detail}")
    try:
        library = cpu_gemm_library()
        inference = cpu_inference_gemm_library()
        if inference != library:
            library = f"{library} to train, {inference} to convert"
        lines.append(
            f"CPU GEMMs: {library} ({cpu_vendor() or 'unknown vendor'}, "
            f"{torch.backends.cpu.get_cpu_capability()}, "
            f"MKL {'yes' if torch.backends.mkl.is_available() else 'no'}; "
            "FACESWAP_CPU_GEMM=blas|onednn overrides)"
        )
    except FaceswapError as exc:
        lines.append(f"CPU GEMMs: {exc}")
    try:
        ffmpeg = locate_ffmpeg()
        major, minor = ffmpeg.version
        version = "git build" if ffmpeg.version == (99, 0) else f"{major}.{minor}"
        lines.append(f"ffmpeg: {ffmpeg.path} ({version}, from {ffmpeg.source})")
        if ffmpeg.note:
            lines.append(f"  {ffmpeg.note}")
    except FaceswapError as exc:
        lines.append(f"ffmpeg: MISSING - {exc}")
    lines.append(_cv2_line())
    try:
        lines.append(f"OpenEXR {md.version('OpenEXR')} (EXR frames in and out)")
    except md.PackageNotFoundError:
        lines.append("OpenEXR: MISSING - EXR frames cannot be read; pip install OpenEXR")
    lines.append("detector backends:")
    for status in backend_status():
        mark = "ok " if status.usable else "no "
        lines.append(f"  {mark} {status.name:<9} {status.reason}")
    return lines


def _cv2_line() -> str:
    import cv2

    dists = {}
    for name in ("opencv-python-headless", "opencv-python", "opencv-contrib-python"):
        with contextlib.suppress(md.PackageNotFoundError):
            dists[name] = md.version(name)
    line = f"cv2 {cv2.__version__} from {', '.join(f'{k}=={v}' for k, v in dists.items())}"
    if len(set(dists.values())) > 1:
        headless = dists.get("opencv-python-headless", "")
        line += (
            "  WARNING: several opencv distributions of different versions share one cv2; "
            f"fix: pip install --force-reinstall --no-deps opencv-python-headless=={headless}"
        )
    return line

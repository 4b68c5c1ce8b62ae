"""--amp resolves to the dtype each device runs well, and says so when it falls back."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from faceswap import device
from faceswap.device import resolve_amp
from faceswap.errors import FaceswapError

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("native", "dtype", "expected", "warns"),
    [
        (True, "auto", torch.bfloat16, False),
        (True, "bf16", torch.bfloat16, False),
        (True, "fp16", torch.bfloat16, True),  # fp16 autocast is CUDA's; told, then bf16
        (False, "auto", None, True),  # emulated bf16 would be slower than float32
        (False, "bf16", torch.bfloat16, True),  # forced: runs, with a warning
    ],
)
def test_cpu_amp_uses_bf16_where_the_cpu_has_it(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    native: bool,
    dtype: str,
    expected: torch.dtype | None,
    warns: bool,
) -> None:
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: native)
    with caplog.at_level(logging.WARNING, logger="faceswap.device"):
        assert resolve_amp(CPU, True, dtype) == expected
    assert bool(caplog.records) == warns


def test_no_amp_is_float32_everywhere_and_bad_dtypes_are_named() -> None:
    assert resolve_amp(CPU, False, "bf16") is None
    assert resolve_amp(torch.device("mps"), True) is None
    with pytest.raises(FaceswapError, match="choose from auto, bf16, fp16"):
        resolve_amp(CPU, True, "fp8")


def test_native_bf16_probe_matches_the_cpu_flags() -> None:
    flags = set()
    try:
        with open("/proc/cpuinfo") as info:
            flags = {f for line in info if line.startswith("flags") for f in line.split()}
    except OSError:
        pytest.skip("no /proc/cpuinfo to compare with")
    assert device.cpu_has_native_bf16() == bool(flags & {"avx512_bf16", "amx_tile"})
    assert device.cpu_has_amx() == ("amx_tile" in flags)


def test_a_cpu_with_native_bf16_suggests_amp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(device, "cpu_has_amx", lambda: True)
    assert device.amp_hint("cpu", amp=False) == (
        "tip: this CPU has native bf16 (AMX): add --amp to run 2-4x faster"
    )
    monkeypatch.setattr(device, "cpu_has_amx", lambda: False)
    hint = device.amp_hint("cpu", amp=False)
    assert hint == "tip: this CPU has native bf16 (AVX512-BF16): add --amp to run about 2x faster"
    assert device.amp_hint("cpu", amp=True) is None
    assert device.amp_hint("nonsense", amp=False) is None  # the run reports the bad device
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert device.amp_hint("cpu", amp=False) is None


@pytest.mark.parametrize(
    ("vendor", "mkl", "env", "expected"),
    [
        ("GenuineIntel", True, "", "blas"),
        ("AuthenticAMD", True, "", "onednn"),
        ("GenuineIntel", False, "", "onednn"),
        ("", True, "auto", "onednn"),
        ("AuthenticAMD", True, "blas", "blas"),
        ("GenuineIntel", True, " ONEDNN ", "onednn"),
    ],
)
def test_cpu_gemm_library_follows_the_vendor_unless_told(
    monkeypatch: pytest.MonkeyPatch, vendor: str, mkl: bool, env: str, expected: str
) -> None:
    monkeypatch.setattr(device, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: mkl)
    monkeypatch.setenv("FACESWAP_CPU_GEMM", env)
    device.cpu_gemm_library.cache_clear()
    try:
        assert device.cpu_gemm_library() == expected
    finally:
        device.cpu_gemm_library.cache_clear()


@pytest.mark.parametrize(
    ("vendor", "capability", "mkl", "env", "expected"),
    [
        ("GenuineIntel", "AVX512", True, "", "blas"),  # as training
        ("GenuineIntel", "AVX2", True, "", "blas"),
        ("AuthenticAMD", "AVX512", True, "", "onednn"),  # MKL's AVX2 code loses there
        ("AuthenticAMD", "AVX2", True, "", "blas"),  # as wide as oneDNN's
        ("AuthenticAMD", "AVX2", False, "", "onednn"),
        ("", "DEFAULT", True, "", "onednn"),
        ("AuthenticAMD", "AVX2", True, "onednn", "onednn"),  # the override holds
        ("AuthenticAMD", "AVX512", True, "blas", "blas"),
    ],
)
def test_cpu_inference_gemm_library_adds_avx2_cpus_unless_told(
    monkeypatch: pytest.MonkeyPatch,
    vendor: str,
    capability: str,
    mkl: bool,
    env: str,
    expected: str,
) -> None:
    monkeypatch.setattr(device, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: mkl)
    monkeypatch.setenv("FACESWAP_CPU_GEMM", env)
    device.cpu_gemm_library.cache_clear()
    device.cpu_inference_gemm_library.cache_clear()
    try:
        assert device.cpu_inference_gemm_library() == expected
        training = "blas" if env == "blas" or (vendor == "GenuineIntel" and mkl) else "onednn"
        assert device.cpu_gemm_library() == training  # training keeps its own rule
    finally:
        device.cpu_gemm_library.cache_clear()
        device.cpu_inference_gemm_library.cache_clear()


def test_cpu_gemm_library_refuses_an_unknown_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESWAP_CPU_GEMM", "cublas")
    device.cpu_gemm_library.cache_clear()
    try:
        with pytest.raises(FaceswapError, match="auto, blas, onednn"):
            device.cpu_gemm_library()
    finally:
        monkeypatch.delenv("FACESWAP_CPU_GEMM")
        device.cpu_gemm_library.cache_clear()


def test_cpu_vendor_reads_the_cpu() -> None:
    vendor = device.cpu_vendor()
    assert isinstance(vendor, str)
    if Path("/proc/cpuinfo").exists() and "vendor_id" in Path("/proc/cpuinfo").read_text():
        assert vendor  # x86 Linux names its vendor


@pytest.mark.parametrize(
    ("requested", "device_type", "amp", "library", "expected"),
    [
        (None, "cuda", None, "onednn", True),
        (None, "cpu", None, "blas", True),  # Intel CPUs: NHWC convs measured faster
        (None, "cpu", None, "onednn", False),
        (None, "cpu", torch.bfloat16, "onednn", True),  # CPU bf16 kernels are NHWC
        (False, "cpu", torch.bfloat16, "blas", True),
        (False, "cpu", None, "blas", False),
        (True, "cpu", None, "onednn", True),
        (False, "cuda", torch.bfloat16, "blas", False),
        (None, "mps", None, "blas", False),
    ],
)
def test_channels_last_is_the_faster_layout_unless_asked(
    monkeypatch: pytest.MonkeyPatch,
    requested: bool | None,
    device_type: str,
    amp: torch.dtype | None,
    library: str,
    expected: bool,
) -> None:
    monkeypatch.setattr(device, "cpu_gemm_library", lambda: library)
    assert device.resolve_channels_last(requested, torch.device(device_type), amp) is expected

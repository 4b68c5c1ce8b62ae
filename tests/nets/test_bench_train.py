"""The training benchmark script runs end to end on a tiny preset (keeps it from rotting)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_train.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_train", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_train"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_prints_throughput_flops_and_mfu(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench()
    argv = ["--presets", "tiny", "--batch-size", "2", "--iters", "2", "--warmup", "1"]
    argv += ["--resolution", "32", "--device", "cpu", "--data-seconds", "0.2"]
    argv += ["--peak-seconds", "0.2", "--profile", "1"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.strip().startswith("tiny"))
    fields = row.split()
    gflop_per_example = float(fields[6])
    assert gflop_per_example > 0
    assert fields[-2].endswith("%") and float(fields[-2].rstrip("%")) >= 0
    assert "peak float32 matmul" in out
    assert "data pipeline (32 px):" in out and "samples/s" in out
    # --profile: the ops of one step, the convolutions' backward among them
    assert "profile of 1 tiny steps:" in out and "aten::convolution_backward" in out


def test_flop_count_matches_the_conv_arithmetic() -> None:
    """FLOPs per example of a one-conv model equal 2 * MACs * 3 (forward + two backward)."""
    import torch

    bench = load_bench()
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    x = torch.rand(2, 3, 16, 16, requires_grad=True)

    def step(batch: dict[str, torch.Tensor]) -> None:
        conv(batch["x"]).sum().backward()

    flops = bench.count_flops(step, {"x": x})
    macs = 2 * 16 * 16 * 8 * 3 * 9
    assert flops == pytest.approx(3 * 2 * macs)

"""Training throughput and efficiency per model preset: examples/s, FLOPs, FLOP/s and MFU.

For each preset and device this times full training steps (forward A and B, reconstruction
losses, backward, Adam step) on random data and prints:

* examples/s (A + B faces per second: one step on batch size N processes 2N faces),
* FLOPs per example, forward + backward, counted by ``torch.utils.flop_counter``,
* achieved FLOP/s = FLOPs per example x examples/s,
* MFU = achieved / peak, where the peak is a large matmul measured in the same run
  (fp32 on the CPU, bf16 with ``--amp``; bf16 on CUDA),

and the data pipeline's own samples/s (``faceswap.train.dataset``) when it is installed.

Run from the repository root::

    PYTHONPATH=$PWD python benchmarks/bench_train.py --presets tiny,original --batch-size 16

Numbers depend on the machine and its load; report them with the printed conditions.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faceswap.nets import build_model, load_preset  # noqa: E402
from faceswap.nets.losses import LossConfig, ReconstructionLoss  # noqa: E402


@dataclasses.dataclass
class StepResult:
    preset: str
    device: str
    batch_size: int
    resolution: int
    params_m: float
    examples_per_s: float
    flops_per_example: float
    achieved: float
    peak: float
    step_ms: float

    @property
    def mfu(self) -> float:
        return self.achieved / self.peak if self.peak else float("nan")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """FLOP/s of a large square matmul, best of several timed runs (the roofline to beat)."""
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b, out=out)
    sync(device)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        sync(device)
        t0 = time.perf_counter()
        reps = 5
        for _ in range(reps):
            torch.mm(a, b, out=out)
        sync(device)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0))
    return best


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[None]:
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def make_step(
    model: torch.nn.Module,
    device: torch.device,
    amp: bool,
    compile_model: bool,
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None]:
    """One training step as the train loop runs it (reconstruction losses, no GAN)."""
    criterion = ReconstructionLoss(LossConfig())
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-5, betas=(0.5, 0.999))
    forward = torch.compile(model) if compile_model else model

    def step(x_a: torch.Tensor, x_b: torch.Tensor, t_a: torch.Tensor, t_b: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
            out_a, out_b = forward(x_a, x_b)
        loss = criterion(out_a.rgb.float(), t_a)["loss"] + criterion(out_b.rgb.float(), t_b)["loss"]
        loss.backward()
        optimizer.step()

    return step


def count_flops(step: Callable[..., None], *args: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(*args)
    return float(counter.get_total_flops())


def bench_preset(
    name: str,
    device: torch.device,
    batch_size: int,
    iters: int,
    warmup: int,
    channels_last: bool,
    compile_model: bool,
    amp: bool,
    peak: float,
    resolution: int | None,
) -> StepResult:
    cfg = load_preset(name)
    if resolution:
        cfg = dataclasses.replace(cfg, resolution=resolution)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    r = cfg.resolution
    data = [
        torch.rand(batch_size, 3, r, r, device=device).contiguous(memory_format=fmt)
        for _ in range(4)
    ]
    step = make_step(model, device, amp, compile_model)
    for _ in range(max(1, warmup)):
        step(*data)
    flops_per_step = count_flops(step, *data)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        step(*data)
    sync(device)
    elapsed = time.perf_counter() - t0
    examples = 2 * batch_size * iters
    eps = examples / elapsed
    fpe = flops_per_step / (2 * batch_size)
    return StepResult(
        preset=name,
        device=str(device),
        batch_size=batch_size,
        resolution=r,
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        examples_per_s=eps,
        flops_per_example=fpe,
        achieved=fpe * eps,
        peak=peak,
        step_ms=1000 * elapsed / iters,
    )


def bench_data_pipeline(resolution: int, batch_size: int, seconds: float) -> str:
    """samples/s of ``faceswap.train.dataset`` on generated faces, or why it was skipped."""
    try:
        from faceswap.train import dataset  # type: ignore[attr-defined]
    except ImportError:
        return "skipped: faceswap.train.dataset is not installed (merge main once it lands)"
    hook = getattr(dataset, "benchmark_samples_per_s", None)
    if hook is None:
        return "skipped: faceswap.train.dataset has no benchmark_samples_per_s hook yet"
    rate = hook(resolution=resolution, batch_size=batch_size, seconds=seconds)
    return f"{rate:.1f} samples/s"


def conditions(device: torch.device) -> Iterator[str]:
    yield f"torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}"
    if device.type == "cuda":
        yield f"GPU: {torch.cuda.get_device_name(device)}"
    else:
        yield (
            f"CPU: {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}, "
            f"capability {torch.backends.cpu.get_cpu_capability()}, "
            f"mkldnn {torch.backends.mkldnn.is_available()}"
        )
        with contextlib.suppress(OSError, AttributeError):
            yield "load average (1/5/15 min): " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="tiny,lightweight,original", help="comma-separated")
    p.add_argument("--batch-size", type=int, default=16, help="faces per side per step")
    p.add_argument("--iters", type=int, default=10, help="timed steps per preset")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument(
        "--device", default="auto", help="cpu, cuda, or auto (cpu, plus cuda when present)"
    )
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (peak measured in bf16)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--resolution", type=int, default=0, help="override the preset resolution")
    p.add_argument("--data-seconds", type=float, default=3.0, help="0 skips the data pipeline")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        devices = [torch.device("cpu")]
        if torch.cuda.is_available():
            devices.append(torch.device("cuda"))
    else:
        devices = [torch.device(args.device)]
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    for device in devices:
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        peak_dtype = torch.bfloat16 if (args.amp or device.type == "cuda") else torch.float32
        peak = matmul_peak(device, peak_dtype)
        print(f"== device {device} ==")
        for line in conditions(device):
            print(f"  {line}")
        print(
            f"  options: batch {args.batch_size}/side, iters {args.iters}, channels_last "
            f"{args.channels_last}, compile {args.compile}, amp {args.amp}"
        )
        print(f"  peak ({str(peak_dtype).replace('torch.', '')} matmul): {peak / 1e9:.1f} GFLOP/s")
        header = (
            f"  {'preset':<12}{'res':>5}{'params':>9}{'step ms':>9}{'ex/s':>9}"
            f"{'GFLOP/ex':>10}{'GFLOP/s':>10}{'MFU':>7}"
        )
        print(header)
        for name in presets:
            res = bench_preset(
                name,
                device,
                args.batch_size,
                args.iters,
                args.warmup,
                args.channels_last,
                args.compile,
                args.amp,
                peak,
                args.resolution or None,
            )
            print(
                f"  {res.preset:<12}{res.resolution:>5}{res.params_m:>8.1f}M{res.step_ms:>9.1f}"
                f"{res.examples_per_s:>9.1f}{res.flops_per_example / 1e9:>10.2f}"
                f"{res.achieved / 1e9:>10.1f}{100 * res.mfu:>6.0f}%",
                flush=True,
            )
    if args.data_seconds > 0:
        res = args.resolution or load_preset(presets[0]).resolution
        print(
            f"data pipeline ({res} px): {bench_data_pipeline(res, args.batch_size, args.data_seconds)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

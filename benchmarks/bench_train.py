"""Training throughput and efficiency per model preset: examples/s, FLOPs, FLOP/s and MFU.

For each preset and device this times the training loop's own step (``Trainer.step``:
uint8 batches in, random warp, forward A and B, reconstruction losses, backward, Adam) on
random data and prints:

* examples/s (A + B faces per second: one step on batch size N processes 2N faces),
* FLOPs per example, forward + backward, counted by ``torch.utils.flop_counter``,
* achieved FLOP/s = FLOPs per example x examples/s,
* MFU = achieved / peak, where the peak is a large matmul measured in the same run
  (fp32 on the CPU; bf16 on CUDA, where fp32 steps run TF32),

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
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faceswap.device import (
    cpu_gemm_library,
    cpu_has_native_bf16,
    keep_freed_memory,
    resolve_amp,
    resolve_channels_last,
)
from faceswap.nets import load_preset
from faceswap.nets.config import ModelConfig
from faceswap.train.ddp import DistInfo
from faceswap.train.loop import TrainConfig, Trainer
from tests.train.synthetic_faces import write_synthetic_faces


@dataclasses.dataclass
class StepResult:
    """Timings of one preset on one device; rates are A + B faces per second."""

    preset: str
    resolution: int
    params_m: float
    batch_size: int
    flops_per_example: float
    step_s: list[float]
    peak_bytes: int | None = None  # CUDA: the allocator's peak over the run
    profile: str | None = None  # --profile: where a step's time goes, op by op

    @property
    def median_s(self) -> float:
        return statistics.median(self.step_s)

    @property
    def best_s(self) -> float:
        return min(self.step_s)

    def examples_per_s(self, seconds: float) -> float:
        return 2 * self.batch_size / seconds

    def flops_per_s(self, seconds: float) -> float:
        return self.flops_per_example * self.examples_per_s(seconds)


def _memory_note(name: str, res: StepResult, args: argparse.Namespace) -> str:
    """On CUDA: the step's peak allocated memory beside `faceswap presets`' estimate."""
    if res.peak_bytes is None:
        return ""
    from faceswap.nets.model import summarize_model

    cfg = load_preset(name)
    if args.resolution:
        cfg = dataclasses.replace(cfg, resolution=args.resolution)
    estimate = summarize_model(cfg).training_bytes(res.batch_size)
    return f"  peak {res.peak_bytes / 2**30:.2f} GB (estimate {estimate / 2**30:.2f})"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 2.0) -> dict[str, float]:
    """FLOP/s of a large square matmul per implementation, best of repeated timed runs.

    On the CPU two GEMM libraries serve torch: BLAS (MKL) behind ``torch.mm`` and oneDNN
    behind convolutions. They can differ by 2x on one machine (MKL picks slower kernels on
    some non-Intel CPUs), so both are measured and the peak is the faster: the model's convs
    run on oneDNN and must be judged against what oneDNN's GEMM reaches. oneDNN's GEMM is
    timed as a 1x1 convolution on a channels-last tensor (exactly an (M, K) @ (K, N) matmul).
    """
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    kernels: dict[str, Callable[[], object]] = {"mm": lambda: torch.mm(a, b, out=out)}
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        # The same (2048 x 2048) @ (2048 x 2048) product as a 1x1 convolution over a
        # (32, 2048, 8, 8) channels-last batch: oneDNN blocks over the minibatch, and a
        # batch-of-1 layout of the same GEMM runs at half speed.
        x = a.view(32, 8, 8, n).permute(0, 3, 1, 2)
        w = b.t().contiguous().view(n, n, 1, 1)
        kernels["onednn"] = lambda: torch.nn.functional.conv2d(x, w)
    best = dict.fromkeys(kernels, 0.0)
    for fn in kernels.values():
        fn()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for name, fn in kernels.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            best[name] = max(best[name], 2 * n**3 / (time.perf_counter() - t0))
    return best


StepFn = Callable[[dict[str, Any]], None]


def make_step(
    model_config: ModelConfig,
    device: torch.device,
    args: argparse.Namespace,
    channels_last: bool | None,
) -> tuple[StepFn, Trainer]:
    """The training loop's own step (``Trainer.step``): uint8 batches to float, random warp,
    both sides' reconstructions, masked SSIM + L1 with eye/mouth priority, the learned-mask
    term when the preset has one, backward, Adam (fused where the device has it), and AMP
    with its scaler on CUDA. No GAN (its cost depends on the discriminator options, not
    the preset)."""
    cfg = TrainConfig(
        faces_a=Path("unused"),
        faces_b=Path("unused"),
        model_dir=Path("unused"),
        batch_size=args.batch_size,
        amp=args.amp,
        channels_last=channels_last,
        compile=args.compile,
        workers=0,
        freeze=args.freeze,
        optimizer=args.optimizer,
        lr_dropout=args.lr_dropout,
        autoclip=args.autoclip,
        true_face_power=args.true_face_power,
        face_style_power=args.face_style_power,
        bg_style_power=args.bg_style_power,
    )
    trainer = Trainer(cfg, model_config, device, DistInfo())
    iteration = 0

    def step(batch: dict[str, torch.Tensor]) -> None:
        nonlocal iteration
        trainer.step(iteration, batch["a"], batch["b"])
        iteration += 1

    return step, trainer


def make_batch(batch_size: int, resolution: int) -> dict[str, dict[str, torch.Tensor]]:
    """Random uint8 faces and targets with an elliptic face mask and eye/mouth bands for
    both sides, laid out as ``FaceDataset`` batches them (the trainer moves them to the
    device, as it does with the loader's batches)."""
    r = resolution
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, r), torch.linspace(-1, 1, r), indexing="ij")
    face = (xx / 0.8) ** 2 + (yy / 0.95) ** 2 <= 1
    eyes = face & ((yy + 0.2).abs() < 0.1)
    mouth = face & ((yy - 0.45).abs() < 0.12)
    masks = (255 * torch.stack([face, eyes, mouth])).to(torch.uint8)
    generator = torch.Generator().manual_seed(0)

    def faces() -> torch.Tensor:
        return torch.randint(0, 256, (batch_size, 3, r, r), generator=generator).to(torch.uint8)

    return {
        side: {"source": faces(), "target": faces(), "masks": masks.expand(batch_size, 3, r, r)}
        for side in "ab"
    }


def count_flops(step: StepFn, batch: dict[str, torch.Tensor]) -> float:
    """FLOPs of one step (forward + backward + optimizer), as FlopCounterMode counts them:
    matmuls and convolutions; elementwise work (activations, Adam) counts 0."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(batch)
    return float(counter.get_total_flops())


def bench_preset(name: str, device: torch.device, args: argparse.Namespace) -> StepResult:
    cfg = load_preset(name)
    if args.resolution:
        cfg = dataclasses.replace(cfg, resolution=args.resolution)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    step, trainer = make_step(cfg, device, args, args.channels_last)
    batch = make_batch(args.batch_size, cfg.resolution)
    for _ in range(max(1, args.warmup)):
        step(batch)
    flops = count_flops(step, batch)
    times = []
    for _ in range(args.iters):
        sync(device)
        t0 = time.perf_counter()
        step(batch)
        sync(device)
        times.append(time.perf_counter() - t0)
    profile = profile_steps(step, batch, device, args.profile) if args.profile else None
    return StepResult(
        preset=name,
        resolution=cfg.resolution,
        params_m=sum(p.numel() for p in trainer.model.parameters()) / 1e6,
        batch_size=args.batch_size,
        flops_per_example=flops / (2 * args.batch_size),
        step_s=times,
        peak_bytes=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        profile=profile,
    )


def profile_steps(step: StepFn, batch: dict[str, torch.Tensor], device: torch.device,
                  steps: int, rows: int = 25) -> str:  # fmt: skip
    """The ops that take a step's time, over ``steps`` steps under torch.profiler: on CUDA by
    their own device time (kernels), on the CPU by their own CPU time. What one GPU run must
    bring back for the next change to be chosen without another."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step(batch)
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def bench_data_pipeline(resolution: int, batch_size: int, seconds: float, workers: int) -> str:
    """samples/s of ``faceswap.train.dataset`` (read, masks, warp, colour), reading the PNG
    crops and from the decoded-face cache (the training default), or why skipped.

    ``workers`` = 0 times ``FaceDataset`` in this process (one core's rate); more uses the
    DataLoader setup of the training loop with that many worker processes.
    """
    import tempfile

    try:
        from faceswap.train.augment import AugmentConfig
        from faceswap.train.dataset import (
            FaceDataset,
            LandmarkPartners,
            StreamSampler,
            face_cache,
            load_face_set,
        )
    except ImportError as exc:
        return f"skipped: the train data pipeline is not importable ({exc}); merge main"
    import cv2

    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        faces = load_face_set(write_synthetic_faces(Path(tmp) / "a", 32, 256), "A")
        cache = face_cache(faces, resolution)
        # --colour-transfer rct: B's faces take the colours of A's (here the same set).
        reference = FaceDataset(faces, resolution, AugmentConfig(), cache)
        rct = AugmentConfig(colour_transfer="rct")
        # --warp-to-landmarks: each face takes the shape of a near one (the set's own here).
        landmarks = AugmentConfig(warp_to_landmarks=True)
        partners = LandmarkPartners.between(faces, faces)
        rates = {}
        for name, dataset in (
            ("crops", FaceDataset(faces, resolution, AugmentConfig())),
            ("cached", FaceDataset(faces, resolution, AugmentConfig(), cache)),
            ("rct", FaceDataset(faces, resolution, rct, cache, colour_ref=reference)),
            ("landmarks", FaceDataset(faces, resolution, landmarks, cache, partners=partners)),
            ("jpeg", FaceDataset(faces, resolution, AugmentConfig(jpeg=True), cache)),
            ("downscale", FaceDataset(faces, resolution, AugmentConfig(downscale=True), cache)),
        ):
            rates[name] = _samples_per_s(dataset, StreamSampler(len(faces), batch_size, 0, 0),
                                         batch_size, seconds, workers)  # fmt: skip
    where = "in one process" if workers == 0 else f"with {workers} DataLoader workers"
    return (
        f"{rates['cached']:.0f} samples/s {where} from the face cache, {rates['crops']:.0f} "
        f"reading the PNG crops (256 px, augment defaults); {rates['rct']:.0f} from the cache "
        f"with --colour-transfer rct, {rates['landmarks']:.0f} with --warp-to-landmarks, "
        f"{rates['jpeg']:.0f} with --jpeg, {rates['downscale']:.0f} with --downscale"
    )


def _samples_per_s(
    dataset: Any, sampler: Any, batch_size: int, seconds: float, workers: int
) -> float:
    if workers == 0:
        stream = iter(sampler)
        dataset[next(stream)]  # first-call setup (albumentations pipelines)
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            dataset[next(stream)]
            count += 1
        return count / (time.perf_counter() - t0)
    from torch.utils.data import DataLoader

    loader = iter(
        DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=workers,
            drop_last=True,
            prefetch_factor=4,
            multiprocessing_context="spawn",
        )
    )
    next(loader)
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        count += next(loader)["source"].shape[0]
    return count / (time.perf_counter() - t0)


def conditions(device: torch.device) -> Iterator[str]:
    yield f"torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}"
    if device.type == "cuda":
        yield f"GPU: {torch.cuda.get_device_name(device)}"
    else:
        yield (
            f"CPU: {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}, "
            f"capability {torch.backends.cpu.get_cpu_capability()}, "
            f"mkldnn {torch.backends.mkldnn.is_available()}, native bf16 {cpu_has_native_bf16()}"
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
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="NHWC tensors and weights (default: as `faceswap train`: on for CUDA, CPU bf16 "
        "and CPUs whose BLAS is the faster GEMM library)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--freeze", default="", help="model parts kept fixed, as `train --freeze`")
    p.add_argument("--optimizer", default="adam", help="as `train --optimizer` (adam, adabelief)")
    p.add_argument("--lr-dropout", type=float, default=0.0, help="as `train --lr-dropout`")
    p.add_argument("--autoclip", action="store_true", help="as `train --autoclip`")
    for power in ("true-face", "face-style", "bg-style"):
        p.add_argument(
            f"--{power}-power", type=float, default=0.0, help=f"as `train --{power}-power`"
        )
    p.add_argument(
        "--amp",
        action="store_true",
        help="mixed precision as `faceswap train --amp` (CUDA; bf16 on CPUs that have it)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--resolution", type=int, default=0, help="override the preset resolution")
    p.add_argument("--peak-seconds", type=float, default=2.0, help="time spent on the peak")
    p.add_argument("--data-seconds", type=float, default=3.0, help="0 skips the data pipeline")
    p.add_argument("--data-workers", type=int, default=0, help="DataLoader workers (0: inline)")
    p.add_argument(
        "--profile", type=int, default=0, help="profile N more steps and print the top ops"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keep_freed_memory()  # as faceswap train does
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
        # On CUDA the peak is bf16 tensor-core matmul (fp32 steps run TF32 against it);
        # the CPU is judged in the dtype it trains in: float32, or bf16 under --amp where
        # the CPU has native bf16 (as `faceswap train --amp` decides).
        amp_dtype = resolve_amp(device, args.amp)
        peak_dtype = torch.bfloat16 if device.type == "cuda" or amp_dtype else torch.float32
        channels_last = resolve_channels_last(args.channels_last, device, amp_dtype)
        gemm = f", CPU GEMMs {cpu_gemm_library()}" if device.type == "cpu" else ""
        dtype_name = str(peak_dtype).replace("torch.", "")
        peaks = matmul_peak(device, peak_dtype, args.peak_seconds)
        print(f"== device {device} ==")
        for line in conditions(device):
            print(f"  {line}")
        print(
            f"  options: batch {args.batch_size}/side ({2 * args.batch_size} faces/step), "
            f"{args.iters} timed steps, channels_last {channels_last}{gemm}, compile "
            f"{args.compile}, amp {str(amp_dtype).replace('torch.', '') if amp_dtype else 'off'}, "
            f"random warp on, optimizer {args.optimizer}"
            + (f", frozen {args.freeze}" if args.freeze else "")
            + (f", lr dropout {args.lr_dropout}" if args.lr_dropout else "")
            + (", autoclip" if args.autoclip else "")
            + (f", true face {args.true_face_power}" if args.true_face_power else "")
            + (f", face style {args.face_style_power}" if args.face_style_power else "")
            + (f", background style {args.bg_style_power}" if args.bg_style_power else "")
        )
        results = []
        print(
            f"  {'preset':<12}{'res':>5}{'params':>9}{'med ms':>9}{'best ms':>9}{'ex/s':>8}"
            f"{'GFLOP/ex':>10}{'GFLOP/s':>9}{'MFU':>6}{'best':>6}"
        )
        for name in presets:
            res = bench_preset(name, device, args)
            # Re-measure the peak after each preset and keep the best: on a shared machine
            # a single early measurement may have been slowed by other load.
            for key, value in matmul_peak(device, peak_dtype, args.peak_seconds / 2).items():
                peaks[key] = max(peaks[key], value)
            results.append(res)
            peak = max(peaks.values())
            med, best = res.median_s, res.best_s
            print(
                f"  {res.preset:<12}{res.resolution:>5}{res.params_m:>8.1f}M"
                f"{1000 * med:>9.0f}{1000 * best:>9.0f}{res.examples_per_s(med):>8.1f}"
                f"{res.flops_per_example / 1e9:>10.2f}{res.flops_per_s(med) / 1e9:>9.0f}"
                f"{100 * res.flops_per_s(med) / peak:>5.0f}%"
                f"{100 * res.flops_per_s(best) / peak:>5.0f}%" + _memory_note(name, res, args),
                flush=True,
            )
        for res in results:
            if res.profile:
                print(f"  profile of {args.profile} {res.preset} steps:\n{res.profile}")
        detail = ", ".join(f"{k} {v / 1e9:.0f}" for k, v in peaks.items())
        print(
            f"  peak {dtype_name} matmul (best over the run): {max(peaks.values()) / 1e9:.0f} "
            f"GFLOP/s ({detail}); MFU = GFLOP/s of the median step / peak, 'best' uses the "
            "fastest step"
        )
    if args.data_seconds > 0:
        res = args.resolution or load_preset(presets[0]).resolution
        rate = bench_data_pipeline(res, args.batch_size, args.data_seconds, args.data_workers)
        print(f"data pipeline ({res} px): {rate}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Multi-process training: DistributedDataParallel under ``torchrun``.

``torchrun --nproc_per_node=N -m faceswap train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and ``MASTER_ADDR/PORT``; :func:`setup` sees them and joins the process group
(NCCL on CUDA, gloo on the CPU). Without them training runs as a single process.
Rank 0 alone writes checkpoints, previews, metrics and the model card; every rank reads its
own slice of each global batch (see :class:`faceswap.train.dataset.StreamSampler`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Attributes:
        rank: global rank (0 when not distributed).
        world: number of processes.
        local_rank: rank on this machine (picks the GPU).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """Read the torchrun environment; a single process when it is absent."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        world=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def setup(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun (idempotent).

    Args:
        device: the training device type; CUDA uses NCCL, everything else gloo.
    """
    info = env_info()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return info


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (so all ranks stop together)."""
    return any_ranks((flag,), info, device)[0]


def any_ranks(flags: tuple[bool, ...], info: DistInfo, device: torch.device) -> tuple[bool, ...]:
    """:func:`any_rank` of several flags in one all-reduce."""
    if not info.enabled:
        return flags
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v > 0) for v in t.tolist())


def average_gradients(module: torch.nn.Module, info: DistInfo) -> None:
    """All-reduce and average ``module``'s gradients (for the discriminator, see loop)."""
    if not info.enabled:
        return
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(info.world)


def average_scalars(values: dict[str, float], info: DistInfo, device: torch.device) -> dict:
    """Mean of each scalar over the ranks (for logging the job's loss, not rank 0's)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], device=device, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {k: float(v) / info.world for k, v in zip(keys, t.tolist(), strict=True)}


def assert_in_sync(module: torch.nn.Module, info: DistInfo, what: str) -> None:
    """Raise if the replicas of ``module`` differ between ranks (checked at each checkpoint).

    Compares a float64 checksum of every parameter and buffer; a mismatch means a bug in how
    gradients or buffers are synchronised, and a checkpoint of rank 0 would not be the job's.
    """
    if not info.enabled:
        return
    tensors = [*module.parameters(), *module.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    local = torch.stack(
        [t.detach().double().sum() for t in tensors] or [torch.zeros((), dtype=torch.float64)]
    ).to(device)
    gathered = [torch.empty_like(local) for _ in range(info.world)]
    dist.all_gather(gathered, local)
    for rank, other in enumerate(gathered):
        if not torch.allclose(other, gathered[0], rtol=1e-6, atol=1e-8):
            raise RuntimeError(f"DDP replicas of the {what} differ between rank 0 and {rank}")

"""The training stage: ``run_train(TrainConfig) -> TrainResult``.

One shared encoder and two decoders learn to redraw faces of A and of B from randomly warped
copies. Each step draws a balanced batch (``batch_size`` faces of A and as many of B), warps
the inputs on the training device, and minimises the masked, eye/mouth-weighted
reconstruction loss of both sides (plus an adversarial term when a GAN is on, with its own
discriminator optimiser). Checkpoints are written every ``save_every`` iterations, after
``save_minutes`` since the last one, and when the process gets Ctrl-C or SIGTERM;
``resume`` continues bit-exactly on the CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from faceswap.config import config_to_dict, dump_json
from faceswap.device import (
    AMP_DTYPES,
    is_out_of_memory,
    keep_freed_memory,
    out_of_memory_error,
    resolve_amp,
    resolve_channels_last,
    resolve_device,
)
from faceswap.errors import FaceswapError
from faceswap.io.files import ensure_writable_dir, is_disk_full, write_text_atomic
from faceswap.provenance import preview_tags
from faceswap.registry import Registry
from faceswap.train import checkpoint as ckpt
from faceswap.train import ddp
from faceswap.train.augment import AugmentConfig, blur_out_background, random_warp
from faceswap.train.dataset import (
    ALIGNMENTS_FILE,
    FaceDataset,
    FaceSet,
    LandmarkPartners,
    StreamSampler,
    face_cache,
    load_face_set,
    read_face,
    uniform_yaw_weights,
)
from faceswap.train.lr_finder import (
    LR_FINDER_MODES,
    LrFinderResult,
    diverged,
    lr_schedule,
    smooth,
    smoothing,
    suggest_lr,
    write_lr_finder,
)
from faceswap.train.metrics import MetricsLog, Throughput
from faceswap.train.plot import LOSS_CURVES, plot_losses
from faceswap.train.preview import preview_grid, tile_halves, write_preview

log = logging.getLogger(__name__)

DEFAULT_PRESET = "original"
#: ``init_parts`` values: what ``init_from`` copies.
INIT_PARTS = ("all", "encoder")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs.

    Attributes:
        faces_a, faces_b: extract output folders (crops + ``alignments.json``), or for a
            side several of them (a tuple), read as one set.
        model_dir: where weights, checkpoints, previews and metrics go.
        preset: model preset name or YAML path; None means the model dir's own config on
            resume, else ``original``.
        model_config: a ModelConfig overriding ``preset`` (library use, tests).
        learned_mask: override the preset's ``learned_mask`` (a 4th decoder output trained
            on the landmark hull mask, which convert can blend with); None keeps the preset's.
        iterations: stop after this many iterations in total (a resumed run counts from 0).
        batch_size: faces per side per step and per process (a step sees 2x this).
        lr: learning rate of the autoencoder.
        lr_finder: ``off``, ``set`` or ``exit`` (:data:`~faceswap.train.lr_finder.
            LR_FINDER_MODES`): before a new model trains, a copy of it runs the
            learning-rate range test for ``lr_finder_steps`` steps
            (:mod:`faceswap.train.lr_finder`), which writes ``lr_finder.csv`` and
            ``lr_finder.png`` into the model folder; ``set`` then trains with the
            suggestion (the run is the one ``lr`` = the suggestion would give), ``exit``
            stops there.
        lr_finder_steps: steps of the range test.
        lr_finder_strength: the suggestion is the rate of the lowest smoothed loss divided
            by this (faceswap's default 10, aggressive 5, extreme 2.5).
        optimizer: the autoencoder's optimiser, a name in :data:`OPTIMIZERS` (``adam``;
            ``adabelief``, DeepFaceLab's default); None: the checkpoint's on resume (a model
            keeps the one it started with), else ``adam``.
        lr_warmup: ramp the autoencoder's learning rate linearly up to ``lr`` over the
            model's first this many iterations (0: off). Counted from the model's first
            iteration, not each session's, so a resumed run stays the uninterrupted one.
        lr_dropout: share of the autoencoder's weight updates dropped at each step, drawn
            anew for every weight and step (DeepFaceLab's learning-rate dropout, whose
            ``lr_dropout`` keeps 30 %: 0.7 here); 0: off. See :class:`LrDropout`.
        betas: Adam betas.
        autoclip: clip the gradients adaptively instead (faceswap's AutoClip): to the
            ``autoclip_percentile``-th percentile of the gradient norms of the model's last
            ``AUTOCLIP_HISTORY`` steps (:class:`AutoClip`); logged as ``clip``.
        autoclip_percentile: that percentile (0-100).
        clip_grad: clip the autoencoder's gradients to this global L2 norm before each step
            (0: off), against the loss spikes that can wreck a long run; the norm before
            clipping is logged as ``grad_norm``.
        seed: seeds weights, sampling and augmentation.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        amp: mixed precision: on CUDA bf16 where supported, else fp16 with loss scaling;
            on the CPU bf16 where it is native (AVX512-BF16, AMX); float32 elsewhere, with a
            warning (:func:`faceswap.device.resolve_amp`).
        amp_dtype: ``auto``, ``bf16`` or ``fp16``.
        channels_last: NHWC memory format; None picks the faster layout for the device
            (:func:`faceswap.device.resolve_channels_last`: on for CUDA, for bf16 on the CPU,
            and for float32 on CPUs whose BLAS is the faster GEMM library).
        compile: wrap the model in ``torch.compile``.
        workers: DataLoader worker processes per side (0 loads in the main process); None
            picks them for the device (:func:`resolve_workers`).
        cache_faces: decode and resize the crops once into a file in each faces folder
            (:func:`faceswap.train.dataset.face_cache`); samples are the same either way.
        loss: reconstruction terms, e.g. ``"ssim:1,l1:1"`` (names from ``nets.losses``).
        background_weight: weight of pixels outside the landmark hull, in [0, 1].
        eye_weight, mouth_weight: loss multipliers inside the eye and mouth regions (>= 1).
        mask_weight: weight of the learned-mask loss (models with ``learned_mask``).
        gan: ``off``, ``bce``, ``hinge`` or ``wgan-gp``.
        gan_weight: weight of the generator's adversarial term.
        gan_lr: Adam learning rate of the discriminator.
        gp_lambda: gradient-penalty weight for ``wgan-gp``.
        gan_start: iteration at which the adversarial term starts (let the autoencoder
            learn the face first).
        disc_widths: channels of the PatchGAN's stride-2 convs.
        disc_norm: ``spectral``, ``instance``, ``none`` or ``auto`` (instance norm for
            wgan-gp, whose gradient penalty fights spectral norm; spectral otherwise).
        true_face_power: weight of DeepFaceLab's true-face term (0: off; DFL suggests
            0.01): a critic on the encoder's codes (:class:`~faceswap.nets.discriminator.
            CodeDiscriminator`) learns to tell A's codes from B's, and the encoder to make
            B's pass for A's, so the codes B's decoder sees at convert time look like those
            it trained on. ``df`` presets.
        face_style_power: DeepFaceLab's face style power (0: off; its numbers, 0-100, DFL
            says start from 0.001): A's faces drawn as B are pulled toward the colour and
            lighting of A's own reconstruction under A's face mask, through B's decoder
            alone (:func:`~faceswap.nets.losses.face_style_term`, weighted ``100 * power``).
        bg_style_power: DeepFaceLab's background style power (0: off; 0-100): outside A's
            mask A's faces drawn as B are pulled toward A's target
            (:func:`~faceswap.nets.losses.background_style_term`, weighted ``power / 10``),
            so the swapped face's edge continues A's background.
        augment: augmentation switches.
        blur_out_mask: replace the targets' background by its own Gaussian blur (sigma
            resolution / 128; DeepFaceLab's blur out mask): the decoders learn a smooth
            background near the face, which shows less around the swapped face.
            Inputs keep theirs (:func:`~faceswap.train.augment.blur_out_background`).
        flip_b: with ``augment.flip``, flip B's faces too; off, only A's are flipped
            (DeepFaceLab's src flip, off by default there: a parting or a mole of the face
            put in stays on its side).
        save_every: checkpoint interval in iterations.
        save_minutes: also checkpoint once this many minutes passed since the last one (0:
            off), so a crash loses at most that much of slow steps (DeepFaceLab autosaves
            every 25 minutes); under torchrun the ranks save together.
        max_minutes: stop with a checkpoint once this run has trained this long (0: no
            limit), as Ctrl-C would: for a job with a wall-time limit or a GPU rented by
            the hour; ``resume`` goes on from there.
        keep: checkpoints to keep.
        preview_every: preview interval in iterations (0: only at the end).
        preview_faces: faces of each side in the preview (rows), spread over the set.
        preview_a, preview_b: folders of crops to show in the previews instead (up to 64
            each; copy a few from the faces folder): the same faces at every preview, for
            a timelapse of ``previews/`` (DeepFaceLab's preview history image, faceswap's
            timelapse).
        log_every: metrics interval in iterations.
        show_samples: write ``samples.png`` into the model folder (the first batch's
            ``preview_faces`` faces of each side as the model gets them:
            :func:`render_samples`) and stop before any training (or LR finding); with
            ``resume``, the batch the run would go on with.
        uniform_yaw: sample faces so that every head turn (yaw, from the landmarks) comes up
            equally often (:func:`faceswap.train.dataset.uniform_yaw_weights`).
        resume: continue from the newest checkpoint in ``model_dir``.
        resume_from: continue from the checkpoint of this iteration instead (implies
            ``resume``): a roll-back, e.g. to a snapshot from before a GAN collapse. Newer
            checkpoints are moved to ``checkpoints/abandoned_<iteration>/``.
        snapshot_every: also keep every checkpoint at a multiple of this many iterations,
            beyond the newest ``keep`` (0: none).
        init_from: start a new model from the weights of this model folder (one `faceswap
            train` wrote) instead of random ones: reusing a trained model for a new pair
            converges much sooner. Without ``preset`` its preset is used.
        init_parts: ``all`` (encoder and decoders; the same preset and shapes) or
            ``encoder`` (the shared encoder only, whose features do not depend on who A and
            B are; the decoders start fresh).
        freeze: model parts whose weights stay fixed (names of the model's top-level
            modules: ``encoder``, ``decoder_a``...; or the text ``"encoder,inter_ab"``), as
            faceswap's freeze-weights: new decoders learn on a trained encoder, and each
            step skips the frozen parts' weight gradients.
        progress: show a progress bar.
        tensorboard: also log to TensorBoard when it is installed.
    """

    faces_a: Path | tuple[Path, ...]
    faces_b: Path | tuple[Path, ...]
    model_dir: Path
    preset: str | None = None
    model_config: Any = None
    learned_mask: bool | None = None
    iterations: int = 100_000
    batch_size: int = 16
    lr: float = 5e-5
    lr_finder: str = "off"
    lr_finder_steps: int = 300
    lr_finder_strength: float = 10.0
    optimizer: str | None = None
    lr_warmup: int = 0
    lr_dropout: float = 0.0
    betas: tuple[float, float] = (0.5, 0.999)
    clip_grad: float = 0.0
    autoclip: bool = False
    autoclip_percentile: float = 10.0
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    amp_dtype: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    workers: int | None = None
    cache_faces: bool = True
    loss: str = "ssim:1,l1:1"
    background_weight: float = 0.1
    eye_weight: float = 3.0
    mouth_weight: float = 2.0
    mask_weight: float = 1.0
    gan: str = "off"
    gan_weight: float = 0.1
    gan_lr: float = 1e-4
    gp_lambda: float = 10.0
    gan_start: int = 0
    disc_widths: tuple[int, ...] = (64, 128, 256)
    disc_norm: str = "auto"
    true_face_power: float = 0.0
    face_style_power: float = 0.0
    bg_style_power: float = 0.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    flip_b: bool = True
    blur_out_mask: bool = False
    save_every: int = 1000
    save_minutes: float = 30.0
    max_minutes: float = 0.0
    keep: int = 3
    preview_every: int = 500
    preview_faces: int = 4
    preview_a: Path | None = None
    preview_b: Path | None = None
    log_every: int = 10
    uniform_yaw: bool = False
    resume: bool = False
    resume_from: int | None = None
    snapshot_every: int = 0
    init_from: Path | None = None
    init_parts: str = "all"
    freeze: tuple[str, ...] | str = ()
    progress: bool = True
    tensorboard: bool = True
    show_samples: bool = False

    def __post_init__(self) -> None:
        for name in ("faces_a", "faces_b"):
            value = getattr(self, name)
            # One folder stays a Path; several (a list from YAML or JSON) a tuple of Paths.
            if isinstance(value, (str, Path)):
                object.__setattr__(self, name, Path(value))
            else:
                paths = tuple(Path(v) for v in value)
                object.__setattr__(self, name, paths[0] if len(paths) == 1 else paths)
        for name in ("preview_a", "preview_b"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        freeze = self.freeze
        if isinstance(freeze, str):
            freeze = [part.strip() for part in freeze.split(",")]
        # Configs from YAML or JSON carry lists: normalise to a tuple of names.
        object.__setattr__(self, "freeze", tuple(part for part in freeze if part))
        if self.lr_warmup < 0:
            raise FaceswapError(f"--lr-warmup must be >= 0 (0: off), got {self.lr_warmup}")
        if not 0 <= self.lr_dropout < 1:
            raise FaceswapError(
                f"--lr-dropout is the share of updates dropped, in [0, 1) (0: off; "
                f"DeepFaceLab's is 0.7), got {self.lr_dropout}"
            )
        for name in ("iterations", "batch_size", "save_every", "keep", "log_every"):
            if getattr(self, name) < 1:
                raise FaceswapError(f"--{name.replace('_', '-')} must be at least 1")
        if self.save_minutes < 0:
            raise FaceswapError(f"--save-minutes must be >= 0 (0: off), got {self.save_minutes}")
        if self.max_minutes < 0:
            raise FaceswapError(f"--max-minutes must be >= 0 (0: none), got {self.max_minutes}")
        if not 1 <= self.preview_faces <= 64:
            raise FaceswapError(f"--preview-faces must be in [1, 64], got {self.preview_faces}")
        if (self.workers or 0) < 0 or self.preview_every < 0 or self.gan_start < 0:
            raise FaceswapError("--workers, --preview-every and --gan-start must be >= 0")
        if self.snapshot_every < 0 or (self.resume_from is not None and self.resume_from < 0):
            raise FaceswapError("--snapshot-every and --resume-from must be >= 0")
        if not (self.lr > 0 and self.gan_lr > 0):
            raise FaceswapError("--lr and --gan-lr must be positive")
        if self.init_parts not in INIT_PARTS:
            raise FaceswapError(
                f"unknown --init-parts '{self.init_parts}'; choose from {', '.join(INIT_PARTS)}"
            )
        if self.init_from is not None and self.resuming:
            raise FaceswapError(
                "--init-from starts a new model and --resume continues one; drop one of them"
            )
        if self.lr_finder not in LR_FINDER_MODES:
            raise FaceswapError(
                f"unknown --lr-finder '{self.lr_finder}'; choose from {', '.join(LR_FINDER_MODES)}"
            )
        if self.lr_finder != "off":
            if self.resuming:
                raise FaceswapError(
                    "--lr-finder picks the learning rate of a new model; drop --resume (a "
                    "resumed model keeps its --lr)"
                )
            if self.lr_finder_steps < 20 or not self.lr_finder_strength >= 1:
                raise FaceswapError(
                    "--lr-finder-steps must be at least 20 and --lr-finder-strength at least 1"
                )
        if self.clip_grad < 0:
            raise FaceswapError(f"--clip-grad must be >= 0 (0: off), got {self.clip_grad}")
        if not self.true_face_power >= 0:
            raise FaceswapError(
                f"--true-face-power must be >= 0 (0: off; DFL suggests 0.01), got "
                f"{self.true_face_power}"
            )
        for name in ("face_style_power", "bg_style_power"):
            if not 0 <= getattr(self, name) <= 100:
                raise FaceswapError(
                    f"--{name.replace('_', '-')} must be in [0, 100] (0: off; DeepFaceLab's "
                    f"numbers), got {getattr(self, name)}"
                )
        if self.true_face_power > 0 and self.compile:
            raise FaceswapError(
                "--true-face-power reads the encoder's codes, which --compile hides; drop one"
            )
        if self.autoclip and self.clip_grad > 0:
            raise FaceswapError("--autoclip and --clip-grad both clip: give one of them")
        if not 0 < self.autoclip_percentile <= 100:
            raise FaceswapError(
                f"--autoclip-percentile must be in (0, 100], got {self.autoclip_percentile}"
            )
        if self.eye_weight < 1 or self.mouth_weight < 1:
            raise FaceswapError("--eye-weight and --mouth-weight must be >= 1 (1 turns it off)")
        if self.optimizer is not None:
            OPTIMIZERS.get(self.optimizer)  # unknown names fail listing the valid ones
        if self.amp_dtype not in AMP_DTYPES:
            raise FaceswapError(
                f"unknown AMP dtype '{self.amp_dtype}'; choose from {', '.join(AMP_DTYPES)}"
            )

    def side_augment(self, side: str) -> AugmentConfig:
        """The augmentation of side ``side``'s faces ("a" or "b")."""
        if side == "b" and not self.flip_b:
            return dataclasses.replace(self.augment, flip=False)
        return self.augment

    @property
    def resuming(self) -> bool:
        """``resume``, or ``resume_from`` an older checkpoint."""
        return self.resume or self.resume_from is not None


@dataclass(frozen=True)
class TrainResult:
    """What a run did.

    Attributes:
        model_dir: the model folder.
        start_iteration: iteration the run started from (0, or the resumed checkpoint's).
        iteration: iterations completed in total when it stopped.
        interrupted: stopped by Ctrl-C/SIGTERM before ``iterations``.
        losses: the last logged loss parts (averaged over ranks).
        checkpoint: the newest checkpoint folder (None on non-zero ranks).
        seconds: wall time of the training loop.
        it_per_s: mean iterations per second of the loop after warm-up (over the whole
            run when it was too short to leave warm-up).
        data_wait: share of the last steps' time spent waiting for a batch (0: the model
            was the bottleneck).
        workers: DataLoader workers per side the run used (after `resolve_workers`).
        lr_found: the learning rate ``lr_finder`` suggested (None without it).
        samples: the ``show_samples`` image (None without it).
        train_seconds: training time of this run and the runs before it (the resumed
            checkpoint's ``train_seconds``).
        out_of_time: stopped (with a checkpoint) because ``max_minutes`` ran out.
    """

    model_dir: Path
    start_iteration: int
    iteration: int
    interrupted: bool
    losses: dict[str, float]
    checkpoint: Path | None
    seconds: float
    it_per_s: float
    data_wait: float = 0.0
    workers: int = 0
    lr_found: float | None = None
    samples: Path | None = None
    train_seconds: float = 0.0
    out_of_time: bool = False


class _StopFlag:
    """Turns SIGINT/SIGTERM into a request to checkpoint and stop; a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        with contextlib.suppress(ValueError):  # signals only install in the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        log.warning("%s received: saving a checkpoint, then stopping", self.signal_name)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def resolve_workers(workers: int | None, device: torch.device) -> int:
    """DataLoader workers per side: ``workers`` when given; else 2 on the CPU, where the
    model needs the cores, and on a GPU the host's cores less two, shared by both sides and
    every training process on this machine, 2 to 8 each (the GPU must not wait for data)."""
    if workers is not None:
        return workers
    if device.type == "cpu":
        return 2
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(2, min(8, ((cores or 2) - 2) // (2 * local)))


def _widths(widths: Sequence[int]) -> str:
    return ",".join(str(w) for w in widths)


def _step_seed(seed: int, iteration: int, salt: int = 11) -> int:
    return int(np.random.default_rng([seed, iteration, salt]).integers(2**62))


def _flat_alias(tensor: torch.Tensor) -> torch.Tensor | None:
    """A 1-D contiguous view of a dense tensor laid out in a permuted order (channels-last),
    or None when it has none (contiguous already, or not dense)."""
    if tensor.is_contiguous():
        return None
    order = sorted(range(tensor.dim()), key=lambda d: -tensor.stride(d))
    permuted = tensor.permute(order)
    return permuted.view(-1) if permuted.is_contiguous() else None


def _flat_view(tensor: torch.Tensor) -> torch.Tensor:
    """A 1-D view of a dense tensor's memory, in its own memory order."""
    flat = tensor.view(-1) if tensor.is_contiguous() else _flat_alias(tensor)
    if flat is None:
        raise ValueError(f"tensor of strides {tensor.stride()} is not dense")
    return flat


def _unflatten_like(flat: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``flat`` (made by :func:`_flat_alias` for a tensor of ``like``'s layout) back in
    ``like``'s shape and strides."""
    return flat.as_strided(like.shape, like.stride())


_MOMENTS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


class _LayoutSafeAdam(torch.optim.Adam):
    """Fused Adam that keeps each moment in its parameter's memory layout, and on the CPU
    steps channels-last parameters through flat aliases.

    The fused CPU kernel updates a moment laid out differently from its parameter wrongly,
    silently (a checkpoint of a channels-last run resumed in NCHW, or the reverse; tested),
    so loading a state dict converts the moments to their parameters' layouts, on every
    device. The fused CPU kernel also
    copies every non-contiguous tensor it gets (parameter, gradient and both moments) to a
    contiguous one and back through a slow transpose: 3x the time of the contiguous step for
    a channels-last model (34 against 12 ms for a 19M-value weight on 2 cores; ``original``
    150 against 46 ms). Adam is elementwise, so on the CPU each such tensor is swapped for a
    1-D view of the same memory for the step. The state dict keeps the parameters' shapes
    and layouts, so checkpoints are the same either way.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._conform_moments()

    def _conform_moments(self) -> None:
        for group in self.param_groups:
            for param in group["params"]:
                state = self.state.get(param, {})
                for key in _MOMENTS:
                    moment = state.get(key)
                    if isinstance(moment, torch.Tensor) and moment.stride() != param.stride():
                        state[key] = torch.empty_like(param).copy_(moment)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        self._conform_moments()
        swapped: list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]] = []
        for group in self.param_groups:
            for param in group["params"]:
                grad = param.grad
                if param.device.type != "cpu" or grad is None or grad.stride() != param.stride():
                    continue
                flat = _flat_alias(param.data)
                if flat is None:
                    continue
                state = self.state.get(param, {})
                for key in _MOMENTS:
                    if key in state:
                        state[key] = _flat_alias(state[key])
                original = param.data
                param.grad = None
                param.data = flat
                param.grad = _flat_alias(grad)
                swapped.append((param, original, grad))
        try:
            return super().step(closure)
        finally:
            for param, original, grad in swapped:
                param.grad = None
                param.data = original
                param.grad = grad
                state = self.state[param]
                for key in _MOMENTS:
                    if key in state:
                        state[key] = _unflatten_like(state[key], original)


def make_adam(
    params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float]
) -> torch.optim.Adam:
    """Adam with the fused kernel where the parameters' device has one (CPU, CUDA, MPS).

    The stock CPU Adam walks the parameters in several elementwise passes: 61 ms a step for
    the 82M-parameter ``original`` preset on 2 cores (~7 % of a step), the fused kernel
    19 ms. Its state dict is the same, so checkpoints load either way, whatever the memory
    layout of the run that wrote them (:class:`_LayoutSafeAdam`)."""
    params = list(params)
    try:
        return _LayoutSafeAdam(params, lr=lr, betas=betas, fused=True)
    except RuntimeError:  # a device without a fused kernel
        return torch.optim.Adam(params, lr=lr, betas=betas)


def keep_mask(numel: int, keep: float, gen: torch.Generator) -> torch.Tensor:
    """A flat bool tensor of ``numel`` independent draws, each True with probability
    ``keep`` rounded to a multiple of 1/256 (1/256 to 255/256), on ``gen``'s device.

    On the CPU ``torch.rand`` makes 82M floats in 320 ms on 2 cores; one random byte per draw,
    cut from 64-bit random words, takes a fifth of that. The words hold 63 random bits (the
    sign bit is 0), so each gives its 7 low bytes.
    """
    threshold = min(255, max(1, round(keep * 256)))
    words = torch.empty((numel + 6) // 7, dtype=torch.int64, device=gen.device)
    words.random_(generator=gen)
    as_bytes = words.view(torch.uint8).view(-1, 8)
    low = as_bytes[:, :7] if sys.byteorder == "little" else as_bytes[:, 1:]
    return low.reshape(-1)[:numel] < threshold


class LrDropout:
    """Learning-rate dropout (as DeepFaceLab's ``lr_dropout``): after each optimiser step,
    each weight keeps its update with probability ``1 - drop`` and returns to its value
    before the step otherwise; Adam's moments still see every gradient.

    DeepFaceLab's users turn it on for the last stage of training, with the warp off, to
    settle the model into finer detail. The draws come from ``(seed, iteration)`` alone:
    every DDP rank drops the same weights, and a resumed run repeats the uninterrupted one.
    It keeps one copy of the weights (the model's size again in memory).
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], drop: float) -> None:
        self.keep = 1.0 - drop
        self.params = [p for p in params if p.requires_grad]
        self._before = [torch.empty_like(_flat_view(p.data)) for p in self.params]

    @torch.no_grad()
    def remember(self) -> None:
        """Copy the weights that are about to be stepped (call before ``optimizer.step``)."""
        for param, before in zip(self.params, self._before, strict=True):
            if param.grad is not None:
                before.copy_(_flat_view(param.data))

    @torch.no_grad()
    def drop(self, seed: int, iteration: int) -> None:
        """Return the dropped share of the stepped weights to their remembered values."""
        if not self.params:
            return
        gen = torch.Generator(device=self.params[0].device)
        gen.manual_seed(_step_seed(seed, iteration, salt=12))
        for param, before in zip(self.params, self._before, strict=True):
            if param.grad is not None:
                flat = _flat_view(param.data)
                torch.where(keep_mask(flat.numel(), self.keep, gen), flat, before, out=flat)


#: Gradient norms :class:`AutoClip` remembers.
AUTOCLIP_HISTORY = 10_000


class AutoClip:
    """Adaptive gradient clipping (Seetharaman et al. 2020, as faceswap's AutoClip): each
    step's gradients are clipped to a percentile of the global gradient norms seen so far
    (the last :data:`AUTOCLIP_HISTORY`), so a loss spike is cut to what is usual for this
    model at this point of training, with no threshold to guess.

    The norms stay on the training device (no host sync per step) and travel with the
    checkpoint (:meth:`state`), so a resumed run clips as the uninterrupted one. A step
    whose norm is not finite (fp16 overflow, which the loss scaler skips) does not count.
    """

    def __init__(self, percentile: float, device: torch.device) -> None:
        self.quantile = percentile / 100.0
        self.norms = torch.zeros(AUTOCLIP_HISTORY, device=device)
        self.count = 0

    def __call__(self, params: list[torch.nn.Parameter]) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip ``params``' gradients in place; returns ``(norm before, clip threshold)``."""
        stepped = [p for p in params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm([p.grad for p in stepped], foreach=True)
        # Not finite (an fp16 overflow the scaler skips): kept as NaN, which the percentile
        # leaves out.
        kept = torch.where(torch.isfinite(norm), norm, torch.full_like(norm, math.nan))
        self.norms[self.count % AUTOCLIP_HISTORY] = kept
        self.count += 1
        seen = self.norms[: min(self.count, AUTOCLIP_HISTORY)]
        threshold = torch.nanquantile(seen, self.quantile)
        torch.nn.utils.clip_grads_with_norm_(stepped, threshold, norm, foreach=True)
        return norm, threshold

    def state(self) -> dict[str, Any]:
        return {"norms": self.norms.detach().cpu(), "count": self.count}

    def load(self, state: dict[str, Any]) -> None:
        self.norms.copy_(state["norms"].to(self.norms.device))
        self.count = int(state["count"])


def make_adabelief(
    params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float]
) -> torch.optim.Optimizer:
    from faceswap.train.optim import AdaBelief

    return AdaBelief(params, lr=lr, betas=betas)


#: The autoencoder's optimisers by name: ``(params, lr, betas) -> Optimizer``.
OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")
OPTIMIZERS.add("adam", make_adam)
OPTIMIZERS.add("adabelief", make_adabelief)


def warmup_factor(iteration: int, warmup: int) -> float:
    """The fraction of the learning rate for 0-based step ``iteration`` of a ``warmup``-step
    linear warm-up: 1/warmup at the first step, 1 from step ``warmup - 1`` on."""
    return 1.0 if warmup <= 0 else min(1.0, (iteration + 1) / warmup)


def freeze_parts(model: torch.nn.Module, parts: tuple[str, ...], preset: str) -> None:
    """Stop gradients into the top-level modules ``parts`` of ``model``.

    Frozen weights stay in the optimiser, which skips them while their gradients are None,
    so a checkpoint resumes with or without ``--freeze``.

    Raises:
        FaceswapError: a name that is not a part of this model, or every part frozen.
    """
    names = [name for name, _ in model.named_children()]
    for part in parts:
        if part not in names:
            raise FaceswapError(
                f"--freeze {part}: preset '{preset}' has no part of that name; its parts are "
                f"{', '.join(names)}"
            )
    if parts and set(parts) >= set(names):
        raise FaceswapError(f"--freeze {','.join(parts)}: that is every part, nothing would train")
    for part in parts:
        getattr(model, part).requires_grad_(False)


class Trainer:
    """Model, discriminator, optimisers and the training step (one object per process).

    Args:
        cfg: the run's config.
        model_config: the ModelConfig to build.
        device: training device.
        info: DDP placement.
    """

    def __init__(
        self, cfg: TrainConfig, model_config: Any, device: torch.device, info: ddp.DistInfo
    ) -> None:
        from faceswap.nets import build_model
        from faceswap.nets.discriminator import (
            GAN_MODES,
            CodeDiscriminator,
            DiscriminatorConfig,
            PatchDiscriminator,
        )
        from faceswap.nets.losses import LossConfig, ReconstructionLoss

        self.cfg, self.device, self.info = cfg, device, info
        self.gan = GAN_MODES.get(cfg.gan)
        torch.manual_seed(cfg.seed)
        self.model = build_model(model_config)
        freeze_parts(self.model, cfg.freeze, model_config.name)
        self.disc = None
        if self.gan.enabled:
            norm = cfg.disc_norm
            if norm == "auto":
                norm = "instance" if self.gan.uses_gradient_penalty else "spectral"
            self.disc = PatchDiscriminator(
                DiscriminatorConfig(widths=tuple(cfg.disc_widths), norm=norm)
            )
        self.code_disc = None
        self._codes: torch.Tensor | None = None
        if cfg.true_face_power > 0:
            if model_config.arch != "df":
                raise FaceswapError(
                    f"--true-face-power needs a df preset (a shared encoder whose codes both "
                    f"decoders read); '{model_config.name}' is {model_config.arch}"
                )
            self.code_disc = CodeDiscriminator(
                model_config.encoder_upscale, 2 * model_config.latent_size
            )
            # The codes both decoders read: the shared encoder's output, caught in the
            # forward (under DDP too, whose forward must be the one that runs).
            self.model.encoder.register_forward_hook(self._keep_codes)
            if "encoder" in cfg.freeze and info.is_main:
                log.warning(
                    "--true-face-power moves only the encoder, which --freeze keeps fixed: "
                    "it changes nothing in this run"
                )
        drawer = "decoder_b" if model_config.arch == "df" else "decoder"
        if cfg.face_style_power > 0 and drawer in cfg.freeze and info.is_main:
            log.warning(
                "--face-style-power moves only %s, which --freeze keeps fixed: it changes "
                "nothing in this run",
                drawer,
            )
        self.amp_dtype = resolve_amp(device, cfg.amp, cfg.amp_dtype)
        # oneDNN's bf16 kernels work on NHWC: CPU bf16 steps ran up to 1.5x faster so.
        channels_last = resolve_channels_last(cfg.channels_last, device, self.amp_dtype)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(device, memory_format=self.memory_format)
        for critic in (self.disc, self.code_disc):
            if critic is not None:
                critic.to(device, memory_format=self.memory_format)
        self.recon = ReconstructionLoss(
            LossConfig(
                terms=cfg.loss,
                background_weight=cfg.background_weight,
                mask_weight=cfg.mask_weight,
            )
        )
        self.opt_g = OPTIMIZERS.get(cfg.optimizer or "adam")(
            self.model.parameters(), lr=cfg.lr, betas=cfg.betas
        )
        self.lr_dropout = (
            LrDropout(self.model.parameters(), cfg.lr_dropout) if cfg.lr_dropout > 0 else None
        )
        self.autoclip = AutoClip(cfg.autoclip_percentile, device) if cfg.autoclip else None
        self.opt_d = (
            make_adam(self.disc.parameters(), lr=cfg.gan_lr, betas=(0.5, 0.999))
            if self.disc is not None
            else None
        )
        self.opt_code = (
            make_adam(self.code_disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
            if self.code_disc is not None
            else None
        )
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=self.amp_dtype == torch.float16 and device.type == "cuda"
        )
        self.forward: Any = self.model
        if info.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [device.index] if device.type == "cuda" else None
            self.forward = DistributedDataParallel(self.model, device_ids=ids)
        if cfg.compile:
            self.forward = torch.compile(self.forward)

    def _autocast(self) -> torch.autocast:
        """The run's mixed precision (off without ``--amp``), for the model and the critics."""
        return torch.autocast(
            self.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        )

    def _keep_codes(self, module: torch.nn.Module, args: Any, codes: torch.Tensor) -> None:
        self._codes = codes

    # ---- state ---------------------------------------------------------------------------

    def state(self, iteration: int) -> dict[str, Any]:
        state: dict[str, Any] = {
            "iteration": iteration,
            "opt_g": self.opt_g.state_dict(),
            "optimizer": self.cfg.optimizer or "adam",
            "scaler": self.scaler.state_dict(),
            "rng": ckpt.capture_rng(),
        }
        if self.opt_d is not None:
            state["opt_d"] = self.opt_d.state_dict()
            state["disc"] = self._disc_build()
        if self.autoclip is not None:
            state["autoclip"] = self.autoclip.state()
        if self.code_disc is not None and self.opt_code is not None:
            state["code_disc"] = self.code_disc.state_dict()
            state["opt_code"] = self.opt_code.state_dict()
        return state

    def load(self, folder: Path) -> int:
        """Restore weights, optimisers, scaler and RNG from a checkpoint; returns its iteration."""
        ckpt.load_weights_into(self.model, folder / "model.safetensors", "model")
        state = ckpt.load_checkpoint_state(folder)
        if self.disc is not None:
            self._load_disc(folder, state)
        trained_with = state.get("optimizer", "adam")  # older checkpoints: Adam
        if trained_with != (self.cfg.optimizer or "adam"):
            raise FaceswapError(
                f"{folder}: this model trains with --optimizer {trained_with}, not "
                f"{self.cfg.optimizer}; resume with --optimizer {trained_with}"
            )
        self.opt_g.load_state_dict(state["opt_g"])
        self.scaler.load_state_dict(state["scaler"])
        if self.autoclip is not None and "autoclip" in state:
            self.autoclip.load(state["autoclip"])
        if self.code_disc is not None and self.opt_code is not None:
            if "code_disc" in state and "opt_code" in state:
                self.code_disc.load_state_dict(state["code_disc"])
                self.opt_code.load_state_dict(state["opt_code"])
            else:
                log.warning("%s has no true-face critic: it starts from scratch", folder)
        ckpt.restore_rng(state["rng"])
        return int(state["iteration"])

    def _disc_build(self) -> dict[str, Any]:
        """What the discriminator is: the GAN mode it trains under, its norm and widths."""
        assert self.disc is not None
        config = self.disc.config
        return {"gan": self.cfg.gan, "norm": config.norm, "widths": list(config.widths)}

    def _load_disc(self, folder: Path, state: dict[str, Any]) -> None:
        """The checkpoint's discriminator, or a fresh one (with a warning) where it has none
        or one of another build: changing ``--gan`` between runs of a model is a schedule
        step (bce and hinge share a build and go on; wgan-gp's critic has another norm)."""
        disc_path = folder / "disc.safetensors"
        if not disc_path.is_file() or "opt_d" not in state:
            log.warning("%s has no discriminator: the GAN starts from scratch", folder)
            return
        built, saved = self._disc_build(), state.get("disc")
        fresh = "the GAN starts from scratch, the autoencoder goes on"
        if saved is not None and (saved["norm"], saved["widths"]) != (
            built["norm"],
            built["widths"],
        ):
            log.warning(
                "%s: its discriminator (--gan %s: %s norm, widths %s) is not the one --gan %s "
                "builds (%s norm, widths %s): %s", folder, saved["gan"], saved["norm"],
                _widths(saved["widths"]), built["gan"], built["norm"], _widths(built["widths"]),
                fresh,
            )  # fmt: skip
            return
        mismatch = ckpt.weights_mismatch(self.disc, disc_path)  # checkpoints before the record
        if mismatch:
            log.warning("%s: its discriminator is of another --gan, --gan-widths or --gan-norm "
                        "(%s): %s", folder, mismatch, fresh)  # fmt: skip
            return
        ckpt.load_weights_into(self.disc, disc_path, "discriminator")
        self.opt_d.load_state_dict(state["opt_d"])  # type: ignore[union-attr]
        if saved is not None and saved["gan"] != built["gan"]:
            log.info("the discriminator of --gan %s goes on under --gan %s", saved["gan"],
                     built["gan"])  # fmt: skip

    # ---- one step ------------------------------------------------------------------------

    def _prepare(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        def to(t: torch.Tensor) -> torch.Tensor:
            t = t.to(self.device, non_blocking=True).float().div_(255.0)
            return t.contiguous(memory_format=self.memory_format)

        masks = to(batch["masks"])
        cfg = self.cfg
        priority = (
            1.0 + (cfg.eye_weight - 1.0) * masks[:, 1:2] + (cfg.mouth_weight - 1.0) * masks[:, 2:3]
        )
        target = to(batch["target"])
        if cfg.blur_out_mask:
            target = blur_out_background(target, masks[:, 0:1], target.shape[-1] / 128)
        return {
            "source": to(batch["source"]),
            "target": target,
            "mask": masks[:, 0:1],
            "priority": priority,
        }

    def model_inputs(
        self, iteration: int, batch_a: dict[str, torch.Tensor], batch_b: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
        """What step ``iteration`` feeds the model: both sides prepared on the device
        (``source``, ``target``, ``mask``, ``priority``) and the inputs, A's then B's, with
        the random warp of that step (seeded by it)."""
        cfg = self.cfg
        a, b = self._prepare(batch_a), self._prepare(batch_b)
        src = torch.cat([a["source"], b["source"]])
        if cfg.augment.grid_warp:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(_step_seed(cfg.seed, iteration))
            src = random_warp(
                src,
                gen,
                cfg.augment.warp_strength,
                cfg.augment.warp_grid,
                shard=(self.info.rank, self.info.world),
            ).contiguous(memory_format=self.memory_format)
        return a, b, src

    def step(
        self, iteration: int, batch_a: dict[str, torch.Tensor], batch_b: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """One optimisation step on a balanced batch.

        Args:
            iteration: 0-based index of this step (seeds the warp).
            batch_a, batch_b: samples from :class:`FaceDataset` (uint8 tensors).

        Returns:
            detached scalars: ``loss`` (total generator loss) and its parts: ``loss_a``,
            ``loss_b``, ``<term>_a``/``<term>_b`` per reconstruction term, and with a GAN
            ``g_adv``, ``d_loss`` (and ``gp`` for wgan-gp).
        """
        from faceswap.nets.discriminator import generator_loss
        from faceswap.nets.losses import background_style_term, face_style_term

        cfg = self.cfg
        a, b, src = self.model_inputs(iteration, batch_a, batch_b)
        n = a["source"].shape[0]
        use_gan = self.disc is not None and iteration >= cfg.gan_start
        autocast = self._autocast()
        self.model.train()
        bg_style, face_style = cfg.bg_style_power > 0, cfg.face_style_power > 0
        with autocast:
            out_a, out_b, *swaps = self.forward(
                src[:n], src[n:], swap=bg_style, swap_held=face_style
            )
        parts: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=self.device)
        for side, out, data in (("a", out_a, a), ("b", out_b, b)):
            rec = self.recon(
                out.rgb.float(),
                data["target"],
                mask=data["mask"],
                priority=data["priority"],
                pred_mask=None if out.mask is None else out.mask.float(),
            )
            total = total + rec["loss"]
            parts[f"loss_{side}"] = rec["loss"].detach()
            for key, value in rec.items():
                if key != "loss":
                    parts[f"{key}_{side}"] = value
        # DeepFaceLab's style powers on A's faces drawn as B, with its weights: the
        # background's through everything that drew the swap, the face's through B's
        # decoder alone (its codes held), against A's own reconstruction.
        if bg_style:
            term = background_style_term(swaps.pop(0).rgb.float(), a["target"], a["mask"])
            parts["bg_style"] = term.detach()
            total = total + cfg.bg_style_power / 10 * term
        if face_style:
            term = face_style_term(swaps.pop(0).rgb.float(), out_a.rgb.float(), a["mask"])
            parts["face_style"] = term.detach()
            total = total + 100 * cfg.face_style_power * term
        codes, self._codes = self._codes, None
        if self.code_disc is not None:
            assert codes is not None
            self.code_disc.requires_grad_(False)  # G's step must not leave gradients in it
            with autocast:
                true_face = generator_loss("bce", self.code_disc(codes[n:]).float())
            parts["true_face"] = true_face.detach()
            total = total + cfg.true_face_power * true_face
            self.code_disc.requires_grad_(True)
        fakes = torch.cat([out_a.rgb, out_b.rgb])
        if use_gan:
            assert self.disc is not None
            self.disc.requires_grad_(False)  # G's step must not leave gradients in D
            with autocast:
                g_adv = generator_loss(cfg.gan, self.disc(fakes))
            parts["g_adv"] = g_adv.detach().float()
            total = total + cfg.gan_weight * g_adv.float()
            self.disc.requires_grad_(True)
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if cfg.clip_grad > 0 or self.autoclip is not None:
            self.scaler.unscale_(self.opt_g)  # clip true gradients, not fp16-scaled ones
            params = [p for group in self.opt_g.param_groups for p in group["params"]]
            if self.autoclip is not None:
                norm, threshold = self.autoclip(params)
                parts["clip"] = threshold.detach().float()
            else:
                norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad, foreach=True)
            parts["grad_norm"] = norm.detach().float()
        if cfg.lr_warmup:
            lr = cfg.lr * warmup_factor(iteration, cfg.lr_warmup)
            for group in self.opt_g.param_groups:
                group["lr"] = lr
            parts["lr"] = torch.tensor(lr)
        if self.lr_dropout is not None:
            self.lr_dropout.remember()
        self.scaler.step(self.opt_g)
        if self.lr_dropout is not None:
            self.lr_dropout.drop(cfg.seed, iteration)
        parts["loss"] = total.detach()
        if use_gan:
            parts.update(self._disc_step(fakes.detach(), torch.cat([a["target"], b["target"]])))
        if self.code_disc is not None:
            assert codes is not None
            parts["code_d_loss"] = self._code_disc_step(codes.detach(), n)
        self.scaler.update()
        return parts

    def _code_disc_step(self, codes: torch.Tensor, n: int) -> torch.Tensor:
        """One step of the true-face critic: A's codes (the first ``n``) real, B's fake."""
        from faceswap.nets.discriminator import discriminator_loss

        assert self.code_disc is not None and self.opt_code is not None
        with self._autocast():
            logits = self.code_disc(codes).float()
        loss = discriminator_loss("bce", logits[:n], logits[n:])
        self.opt_code.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        ddp.average_gradients(self.code_disc, self.info)
        self.scaler.step(self.opt_code)
        return loss.detach()

    def _disc_step(self, fakes: torch.Tensor, reals: torch.Tensor) -> dict[str, torch.Tensor]:
        from faceswap.nets.discriminator import discriminator_loss, gradient_penalty

        assert self.disc is not None and self.opt_d is not None
        cfg = self.cfg
        n = reals.shape[0]
        with self._autocast():
            # Reals and fakes in one pass: one set of activations and, under DDP, one reduce.
            logits = self.disc(torch.cat([reals, fakes.to(reals.dtype)]))
            d_loss = discriminator_loss(cfg.gan, logits[:n].float(), logits[n:].float())
        out = {"d_loss": d_loss.detach()}
        if self.gan.uses_gradient_penalty:
            gp = gradient_penalty(self.disc, reals, fakes.float(), weight=cfg.gp_lambda)
            out["gp"] = gp.detach()
            d_loss = d_loss + gp
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(d_loss).backward()
        # D is not wrapped in DDP (its gradient penalty needs a second forward pass that
        # DDP's reducer does not allow), so its gradients are averaged by hand.
        ddp.average_gradients(self.disc, self.info)
        self.scaler.step(self.opt_d)
        return out


def _loader(
    dataset: FaceDataset,
    cfg: TrainConfig,
    side: int,
    start: int,
    info: ddp.DistInfo,
    pin: bool,
) -> Generator[dict[str, torch.Tensor], None, None]:
    weights = uniform_yaw_weights(dataset.faces) if cfg.uniform_yaw else None
    sampler = StreamSampler(
        len(dataset), cfg.batch_size, cfg.seed, side, start, info.rank, info.world, weights
    )
    yield from stream_batches(
        dataset, sampler, cfg.batch_size, cfg.workers, seed=cfg.seed * 2 + side, pin=pin
    )


def stream_batches(
    dataset: FaceDataset,
    sampler: StreamSampler,
    batch_size: int,
    workers: int,
    *,
    seed: int,
    pin: bool = False,
) -> Generator[dict[str, torch.Tensor], None, None]:
    """Batches of ``dataset`` in ``sampler``'s order, from ``workers`` spawned processes
    (0: this one), which are shut down when the generator closes."""
    from torch.utils.data import DataLoader

    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        drop_last=True,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=_worker_init,
        # Forked workers inherit cv2's and OpenMP's thread pools mid-state and can deadlock
        # on their first parallel call (seen on Linux); spawned ones start clean.
        multiprocessing_context="spawn" if workers > 0 else None,
        # Its own generator: creating the iterator would otherwise draw a worker base seed
        # from the global RNG, which a resumed run has just restored (and must not shift).
        generator=torch.Generator().manual_seed(seed),
    )
    with _one_blas_thread_in_workers():
        batches = iter(loader)  # starts the workers
    try:
        yield from batches
    finally:
        # Close the workers now, not when the iterator is collected: a traceback that keeps
        # run_train's frame alive would otherwise keep them running until the process exits.
        shutdown = getattr(batches, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()


@contextlib.contextmanager
def _one_blas_thread_in_workers() -> Iterator[None]:
    """Spawned workers start numpy's OpenBLAS with one thread (unless the user set
    ``OPENBLAS_NUM_THREADS``). Its idle threads spin, and the triangulation of
    ``--warp-to-landmarks`` woke them every sample: a worker then kept a core busy that the
    model needed (``tiny`` at batch 8 trained at 1.3 it/s against 12 with one thread)."""
    name = "OPENBLAS_NUM_THREADS"
    if name in os.environ:
        yield
        return
    os.environ[name] = "1"  # read by the children as they start, not by this process
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _datasets(
    faces_a: FaceSet, faces_b: FaceSet, size: int, cfg: TrainConfig, info: ddp.DistInfo
) -> tuple[FaceDataset, FaceDataset]:
    """Both sides' datasets: from their face caches, B's colours transferred from A's faces
    (with ``colour_transfer``), each side's landmark-warp partners on the other (with
    ``warp_to_landmarks``)."""
    caches = _face_caches((faces_a, faces_b), size, cfg, info)
    partners: tuple[LandmarkPartners | None, LandmarkPartners | None] = (None, None)
    if cfg.augment.landmark_warp:
        partners = (
            LandmarkPartners.between(faces_a, faces_b),
            LandmarkPartners.between(faces_b, faces_a),
        )
    data_a = FaceDataset(faces_a, size, cfg.side_augment("a"), caches[0], partners=partners[0])
    data_b = FaceDataset(faces_b, size, cfg.side_augment("b"), caches[1], colour_ref=data_a,
                         partners=partners[1])  # fmt: skip
    return data_a, data_b


def _face_caches(
    sides: tuple[FaceSet, FaceSet], size: int, cfg: TrainConfig, info: ddp.DistInfo
) -> list[Path | None]:
    """Each side's decoded-face cache (built by the main rank, then found by the others)."""
    if not cfg.cache_faces:
        return [None, None]
    if info.is_main:
        t0 = time.perf_counter()
        built = [face_cache(faces, size) for faces in sides]
        log.info("face caches ready in %.1f s", time.perf_counter() - t0)
    ddp.barrier(info)
    if not info.is_main:
        built = [face_cache(faces, size) for faces in sides]  # found, not rebuilt
    return built


def _next_batch(batches: Iterator[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    try:
        return next(batches)
    except FaceswapError as exc:
        # A worker's error arrives wrapped in its traceback text; keep the one-line message.
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else str(exc)
        raise FaceswapError(last.split("FaceswapError: ", 1)[-1]) from None


def _worker_init(worker_id: int) -> None:
    import cv2

    # Ctrl-C and `kill -- -PGID` reach the whole process group; the trainer turns them into
    # "checkpoint, then stop" and shuts its workers down itself, but a worker killed first
    # would make the DataLoader raise mid-step and lose that checkpoint. A group of their own
    # keeps those signals away; ignoring SIGTERM instead would also defeat multiprocessing's
    # terminate() and hang the interpreter's exit on any worker still alive then.
    if hasattr(os, "setpgrp"):
        os.setpgrp()

    # Workers run in parallel already; cv2's own threads would oversubscribe the cores.
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _resolve_model_config(cfg: TrainConfig, model_dir: Path) -> Any:
    from faceswap.nets import config_fingerprint, load_preset

    saved = None
    # An untrained model a failed first run left (see _check_fresh_or_resume) binds nothing.
    if (model_dir / ckpt.MODEL_JSON).is_file() and (cfg.resuming or not _never_trained(model_dir)):
        saved, _ = ckpt.read_model_json(model_dir)
    if cfg.model_config is not None:
        wanted = cfg.model_config
    elif cfg.preset is not None:
        wanted = load_preset(cfg.preset)
    elif saved is not None and cfg.resuming:
        wanted = saved
    elif cfg.init_from is not None:
        wanted, _ = ckpt.read_model_json(Path(cfg.init_from))
    else:
        wanted = load_preset(DEFAULT_PRESET)
    if cfg.learned_mask is not None and cfg.learned_mask != wanted.learned_mask:
        wanted = dataclasses.replace(wanted, learned_mask=cfg.learned_mask)
    if saved is not None and config_fingerprint(saved) != config_fingerprint(wanted):
        raise FaceswapError(
            f"{model_dir} holds a model of preset '{saved.name}' ({saved.resolution} px) but "
            f"this run asks for '{wanted.name}' ({wanted.resolution} px); resume with the same "
            "--preset (or none) or train into a new -m folder"
        )
    return wanted


def _resolve_optimizer(cfg: TrainConfig, resume_from: Path | None) -> str:
    """The optimiser of this run: the checkpoint's when resuming (a different one asked
    for is refused: its moments would be another optimiser's), else ``cfg.optimizer``."""
    if resume_from is None:
        return cfg.optimizer or "adam"
    try:
        meta = json.loads((resume_from / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    trained_with = str(meta.get("optimizer") or "adam")  # checkpoints before it: Adam
    if cfg.optimizer is not None and cfg.optimizer != trained_with:
        raise FaceswapError(
            f"{resume_from}: this model trains with --optimizer {trained_with}, not "
            f"{cfg.optimizer}; resume with --optimizer {trained_with} (or none)"
        )
    return trained_with


def _never_trained(model_dir: Path) -> bool:
    """Whether the model folder's card says it is at iteration 0 (a run that never saved)."""
    return ckpt.read_card(model_dir).get("iteration") == 0


def _load_checkpoint(trainer: Trainer, cfg: TrainConfig, model_dir: Path, folder: Path) -> int:
    """``trainer.load(folder)``; a damaged newest checkpoint names the older ones to go
    back to (``--resume-from``)."""
    try:
        return trainer.load(folder)
    except FaceswapError as exc:
        older = [it for it, path in ckpt.list_checkpoints(model_dir) if path != folder]
        if cfg.resume_from is not None or not older:
            raise
        raise FaceswapError(
            f"{exc}; or go back to an older checkpoint: --resume-from {older[-1]} (this folder "
            f"has {', '.join(map(str, older))})"
        ) from None


def _check_folders(model_dir: Path, faces_a: FaceSet, faces_b: FaceSet, info: ddp.DistInfo) -> None:
    """Refuse a model folder that is a faces folder (the model would be written among the
    crops); warn when both sides are the same faces (a pretrain, not a swap)."""
    sides = {side: {f.resolve() for f in (fs.sources or (fs.folder,))}
             for side, fs in (("--a", faces_a), ("--b", faces_b))}  # fmt: skip
    here = model_dir.resolve()
    for side, folders in sides.items():
        if here in folders:
            raise FaceswapError(
                f"-m {model_dir} is the faces folder of {side}; give the model a folder of "
                "its own (e.g. -m model)"
            )
    if (model_dir / ALIGNMENTS_FILE).is_file():
        raise FaceswapError(
            f"-m {model_dir} holds an {ALIGNMENTS_FILE}, so it is a faces folder; give the "
            "model a folder of its own (e.g. -m model)"
        )
    if sides["--a"] & sides["--b"] and info.is_main:
        log.warning(
            "--a and --b share faces (%s): both decoders learn the same person, which pretrains "
            "an encoder for --init-from but swaps nobody; give --b the other person's faces",
            ", ".join(str(f) for f in sorted(sides["--a"] & sides["--b"])),
        )


def _check_fresh_or_resume(cfg: TrainConfig, model_dir: Path) -> Path | None:
    """The checkpoint to resume from, or None; refuses to clobber an existing model."""
    found = ckpt.list_checkpoints(model_dir)
    if cfg.resuming:
        if not found:
            raise FaceswapError(
                f"{model_dir}: no checkpoint to resume from; drop --resume to start a new model"
            )
        if cfg.resume_from is None:
            return found[-1][1]
        chosen = dict(found).get(cfg.resume_from)
        if chosen is None:
            raise FaceswapError(
                f"{model_dir}: no checkpoint of iteration {cfg.resume_from}; it has "
                f"{', '.join(str(it) for it, _ in found)}"
            )
        return chosen
    if not found and (model_dir / ckpt.WEIGHTS).is_file() and _never_trained(model_dir):
        # A run that stopped before its first checkpoint (out of memory, a crash) left only
        # the untrained model it writes at the start: start over rather than refuse.
        log.info("%s: holds an untrained model and no checkpoint; starting over", model_dir)
        return None
    if found or (model_dir / ckpt.WEIGHTS).is_file():
        raise FaceswapError(
            f"{model_dir} already holds a trained model; pass --resume to continue it or "
            "choose a new -m folder"
        )
    return None


def _init_from(
    model: torch.nn.Module, cfg: TrainConfig, model_config: Any, crop: Any
) -> dict[str, Any] | None:
    """Copy ``cfg.init_from``'s weights (``cfg.init_parts``) into ``model``; what was copied,
    for the model card, or None without ``init_from``."""
    from faceswap.nets import config_fingerprint
    from faceswap.provenance import file_sha256

    if cfg.init_from is None:
        return None
    source = Path(cfg.init_from)
    config, source_crop = ckpt.read_model_json(source)
    weights = source / ckpt.WEIGHTS
    if not weights.is_file():
        raise FaceswapError(f"{weights}: missing; --init-from needs a model that was saved")
    if cfg.init_parts == "all" and config_fingerprint(config) != config_fingerprint(model_config):
        raise FaceswapError(
            f"--init-from {source}: its model is preset '{config.name}' "
            f"({config.resolution} px), this run's '{model_config.name}' "
            f"({model_config.resolution} px) has other shapes; drop --preset to train its "
            "preset, or copy only what fits with --init-parts encoder"
        )
    prefix = "" if cfg.init_parts == "all" else "encoder."
    ckpt.load_weights_into(model, weights, f"--init-from {cfg.init_parts}", prefix=prefix)
    if (source_crop.centering, source_crop.coverage) != (crop.centering, crop.coverage):
        log.warning(
            "--init-from %s was trained on faces framed with centering '%s', coverage %s, "
            "these faces with '%s', %s: it will first have to unlearn that framing",
            source, source_crop.centering, source_crop.coverage, crop.centering, crop.coverage,
        )  # fmt: skip
    return {"model": source.name, "weights_sha256": file_sha256(weights), "parts": cfg.init_parts}


#: The most faces a ``preview_a``/``preview_b`` folder shows.
PREVIEW_MAX = 64


def _preview_faces(
    faces: FaceSet, size: int, count: int, chosen: Path | None = None, option: str = ""
) -> torch.Tensor:
    """The preview's faces of one side: the crops of ``chosen`` (a folder, in name order),
    else ``count`` crops spread over the set."""
    from faceswap.io.images import list_images

    if chosen is None:
        picks = np.linspace(0, len(faces) - 1, num=min(count, len(faces))).round().astype(int)
        files = [faces.files[i] for i in picks]
    else:
        files = sorted(list_images(chosen)) if chosen.is_dir() else []
        if not files:
            raise FaceswapError(
                f"{option} {chosen}: no face crops there; copy a few crops of the faces "
                "folder into it"
            )
        files = files[:PREVIEW_MAX]
    arr = [read_face(path, size) for path in files]
    return torch.from_numpy(np.stack(arr)).permute(0, 3, 1, 2).float().div(255.0)


@torch.no_grad()
def render_samples(
    trainer: Trainer,
    iteration: int,
    batch_a: dict[str, torch.Tensor],
    batch_b: dict[str, torch.Tensor],
    count: int,
) -> np.ndarray:
    """The first ``count`` faces of each side of step ``iteration``'s batches as the model
    gets them (:data:`~faceswap.train.preview.SAMPLE_COLUMNS`): the augmented, warped input,
    the target and the loss weight of each pixel (mask and eye/mouth priority, white = the
    largest weight the settings give)."""
    cfg = trainer.cfg
    a, b, src = trainer.model_inputs(iteration, batch_a, batch_b)
    n = a["source"].shape[0]
    peak = max(1.0, cfg.eye_weight, cfg.mouth_weight)

    def columns(data: dict[str, torch.Tensor], inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        weight, _ = trainer.recon.pixel_weights(data["mask"], data["priority"])
        assert weight is not None  # the mask is always given
        return inputs[:count], data["target"][:count], (weight / peak)[:count]

    return tile_halves(columns(a, src[:n]), columns(b, src[n:]))


@torch.no_grad()
def render_preview(model: Any, faces_a: torch.Tensor, faces_b: torch.Tensor) -> np.ndarray:
    """Preview grid of ``model`` on fixed faces: A, A→A, A→B, B, B→B, B→A, and with a
    learned mask each drawing's mask too (:data:`~faceswap.train.preview.COLUMNS_MASKED`)."""
    model.eval()
    za, zb = model.encode(faces_a), model.encode(faces_b)
    a2a, a2b = model.decode(za, "a"), model.decode(za, "b")
    b2b, b2a = model.decode(zb, "b"), model.decode(zb, "a")
    masks = None
    if a2b.mask is not None:
        masks = ((a2a.mask, a2b.mask), (b2b.mask, b2a.mask))
    grid = preview_grid(
        faces_a,
        a2a.rgb,
        a2b.rgb,
        faces_b,
        b2b.rgb,
        b2a.rgb,
        masks=masks,  # type: ignore[arg-type]
    )
    model.train()
    return grid


def _run_header(
    cfg: TrainConfig,
    trainer: Trainer,
    model_config: Any,
    faces: tuple[int, int],
    start: int,
    info: ddp.DistInfo,
) -> str:
    """One line saying what the run is about to do: model, device and precision, batch,
    data, iterations and when it checkpoints."""
    weights = sum(p.numel() for p in trainer.model.parameters()) / 1e6
    dtype = str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else "float32"
    layout = ", channels-last" if trainer.memory_format == torch.channels_last else ""
    world = f" x {info.world} processes" if info.enabled else ""
    every = f"every {cfg.save_every} iterations" + (
        f" or {cfg.save_minutes:g} minutes" if cfg.save_minutes else ""
    )
    return (
        f"training {model_config.name or 'model'} ({model_config.resolution} px, {weights:.1f}M "
        f"weights) on {trainer.device} ({dtype}{layout}){world}: batch {cfg.batch_size} a side, "
        f"{cfg.workers} workers a side; A {faces[0]} faces, B {faces[1]}; iteration {start} -> "
        f"{cfg.iterations}, checkpoints {every}"
    )


def _trained_seconds(checkpoint: Path) -> float:
    """The training time a checkpoint's runs added up to (0 for one written before it was
    recorded)."""
    try:
        meta = json.loads((Path(checkpoint) / "meta.json").read_text(encoding="utf-8"))
        return float(meta.get("train_seconds", 0.0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0.0


def _show_samples(
    cfg: TrainConfig,
    trainer: Trainer,
    start: int,
    faces: tuple[FaceSet, FaceSet],
    size: int,
    info: ddp.DistInfo,
) -> TrainResult:
    """``show_samples``: write the model's view of step ``start``'s batches, train nothing."""
    if info.enabled:
        raise FaceswapError("--show-samples runs in one process: run it without torchrun")
    model_dir = Path(cfg.model_dir)
    ensure_writable_dir(model_dir)
    data_a, data_b = _datasets(*faces, size, cfg, info)
    # One batch: no worker processes (each sample is seeded by its place in the stream, so
    # the faces are the ones the workers of a run would make).
    here = dataclasses.replace(cfg, workers=0)
    with (
        contextlib.closing(_loader(data_a, here, 0, start, info, False)) as iter_a,
        contextlib.closing(_loader(data_b, here, 1, start, info, False)) as iter_b,
    ):
        batch_a, batch_b = _next_batch(iter_a), _next_batch(iter_b)
    grid = render_samples(trainer, start, batch_a, batch_b, cfg.preview_faces)
    path = model_dir / "samples.png"
    write_preview(path, grid)
    return TrainResult(
        model_dir=model_dir,
        start_iteration=start,
        iteration=start,
        interrupted=False,
        losses={},
        checkpoint=None,
        seconds=0.0,
        it_per_s=0.0,
        samples=path,
    )


def _find_lr(
    cfg: TrainConfig,
    trainer: Trainer,
    model_config: Any,
    device: torch.device,
    info: ddp.DistInfo,
    datasets: tuple[FaceDataset, FaceDataset],
) -> LrFinderResult:
    """The range test on a copy of ``trainer``'s model (its optimiser fresh, no GAN or
    true-face critic: they learn at their own rates); ``trainer`` and the global RNGs are
    left as they were, so the run that follows is the one its ``lr`` alone gives."""
    rng = ckpt.capture_rng()
    probe_cfg = dataclasses.replace(cfg, gan="off", true_face_power=0.0, lr_warmup=0, compile=False)
    probe = Trainer(probe_cfg, model_config, device, info)
    probe.model.load_state_dict(trainer.model.state_dict())
    lrs = lr_schedule(cfg.lr_finder_steps)
    beta = smoothing(lrs)
    taken: list[float] = []
    losses: list[float] = []
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=len(lrs), unit="step", desc="lr finder", dynamic_ncols=True)
    pin = device.type == "cuda"
    with (
        contextlib.closing(_loader(datasets[0], probe_cfg, 0, 0, info, pin)) as iter_a,
        contextlib.closing(_loader(datasets[1], probe_cfg, 1, 0, info, pin)) as iter_b,
    ):
        for step, lr in enumerate(lrs):
            for group in probe.opt_g.param_groups:
                group["lr"] = float(lr)
            parts = probe.step(step, _next_batch(iter_a), _next_batch(iter_b))
            loss = float(parts["loss"])
            taken.append(float(lr))
            losses.append(loss)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(lr=f"{lr:.2g}", loss=f"{loss:.4f}", refresh=False)
            if diverged(smooth(losses, beta), loss):
                break
    if bar is not None:
        bar.close()
    del probe
    ckpt.restore_rng(rng)
    try:
        return suggest_lr(taken, losses, cfg.lr_finder_strength)
    except ValueError:
        raise FaceswapError(
            f"the learning-rate range test diverged at once (loss {losses[-1]}); check the "
            "faces, or train with a given --lr" + (" without --amp" if cfg.amp else "")
        ) from None


def run_train(cfg: TrainConfig) -> TrainResult:
    """Train (or resume) the model of ``cfg.model_dir`` on faces A and B.

    Raises:
        FaceswapError: unusable face folders, an existing model without ``resume``, a
            checkpoint of another preset, an unknown loss/GAN mode, an unwritable folder.
    """
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        keep_freed_memory()
    info = ddp.env_info()
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    info = ddp.setup(device)
    made_here = not Path(cfg.model_dir).exists()
    try:
        return _run(cfg, device, info)
    except BaseException as exc:
        said = _one_line_error(exc, cfg, device) if isinstance(exc, Exception) else None
        if made_here:  # a run refused before its first write leaves no empty folder behind
            with contextlib.suppress(OSError):
                Path(cfg.model_dir).rmdir()
        if said is not None:
            raise said from None
        raise
    finally:
        ddp.teardown(info)


def _one_line_error(exc: Exception, cfg: TrainConfig, device: torch.device) -> FaceswapError | None:
    """What the user can fix, said in one line (running out of GPU memory or disk), else
    None. Checkpoints are written atomically: the last complete one is intact either way."""
    if isinstance(exc, FaceswapError):
        return None
    if is_out_of_memory(exc):
        fixes = ", add --amp," if not cfg.amp else ""
        fixes += " or use a smaller --preset (`faceswap presets` estimates their memory)"
        return out_of_memory_error(device, cfg.batch_size, fixes)
    if is_disk_full(exc, cfg.model_dir):
        then = (
            "rerun with --resume (the last complete checkpoint is intact)"
            if ckpt.list_checkpoints(cfg.model_dir)
            else "rerun"
        )
        return FaceswapError(
            f"{cfg.model_dir}: no space left on its disk; free some space, then {then}"
        )
    return None


def _run(cfg: TrainConfig, device: torch.device, info: ddp.DistInfo) -> TrainResult:
    cfg = dataclasses.replace(cfg, workers=resolve_workers(cfg.workers, device))
    model_dir = Path(cfg.model_dir)
    faces_a = load_face_set(cfg.faces_a, "A")
    faces_b = load_face_set(cfg.faces_b, "B")
    ca, cb = faces_a.crop, faces_b.crop
    if (ca.centering, ca.coverage) != (cb.centering, cb.coverage):
        # The swap draws B's face into A's framing: both sides must be framed alike.
        raise FaceswapError(
            f"faces A are framed with centering '{ca.centering}', coverage {ca.coverage} but "
            f"faces B with '{cb.centering}', {cb.coverage}; re-extract one side with the "
            "other's --centering and --coverage"
        )
    _check_folders(model_dir, faces_a, faces_b, info)
    if info.is_main:
        ensure_writable_dir(model_dir)
        ckpt.remove_stale_temporaries(model_dir)
    resume_from = _check_fresh_or_resume(cfg, model_dir)
    if cfg.resume_from is not None and info.is_main:
        aside = ckpt.set_aside_newer(model_dir, cfg.resume_from)
        if aside is not None:
            log.warning("rolled back to iteration %d; newer checkpoints moved to %s",
                        cfg.resume_from, aside)  # fmt: skip
    model_config = _resolve_model_config(cfg, model_dir)
    size = model_config.resolution
    for faces in (faces_a, faces_b):
        if faces.crop_size < size:
            log.warning(
                "%s: crops are %d px, smaller than the model's %d px; they will be upscaled "
                "(blurry training data): extract at --size %d or more",
                faces.folder,
                faces.crop_size,
                size,
                size,
            )
        if len(faces) < cfg.batch_size and info.is_main:
            log.warning(
                "%s: %d faces, fewer than --batch-size %d: every batch repeats faces and the "
                "model learns them by heart; extract more (hundreds to thousands a side)",
                faces.folder,
                len(faces),
                cfg.batch_size,
            )
    chosen = None
    if info.is_main:  # read before anything is written: a bad folder leaves nothing behind
        chosen = (
            _preview_faces(faces_a, size, cfg.preview_faces, cfg.preview_a, "--preview-a"),
            _preview_faces(faces_b, size, cfg.preview_faces, cfg.preview_b, "--preview-b"),
        )
    cfg = dataclasses.replace(cfg, optimizer=_resolve_optimizer(cfg, resume_from))
    trainer = Trainer(cfg, model_config, device, info)
    start = _load_checkpoint(trainer, cfg, model_dir, resume_from) if resume_from else 0
    if cfg.show_samples:
        return _show_samples(cfg, trainer, start, (faces_a, faces_b), size, info)
    initialised = _init_from(trainer.model, cfg, model_config, faces_a.crop)
    found: LrFinderResult | None = None
    if cfg.lr_finder != "off":
        if info.enabled:
            raise FaceswapError(
                "--lr-finder runs in one process: find the rate without torchrun (--lr-finder "
                "exit), then train under torchrun with --lr set to it"
            )
        ensure_writable_dir(model_dir)
        datasets = _datasets(faces_a, faces_b, size, cfg, info)
        found = _find_lr(cfg, trainer, model_config, device, info, datasets)
        csv_path, png_path = write_lr_finder(model_dir, found)
        log.info(
            "lr finder: lowest smoothed loss at lr %.3g over %d steps; suggested %.3g (curve: "
            "%s, %s)", found.best_lr, len(found.lrs), found.suggested, png_path, csv_path
        )  # fmt: skip
        if cfg.lr_finder == "exit":
            return TrainResult(
                model_dir=model_dir,
                start_iteration=0,
                iteration=0,
                interrupted=False,
                losses={},
                checkpoint=None,
                seconds=0.0,
                it_per_s=0.0,
                workers=int(cfg.workers or 0),
                lr_found=found.suggested,
            )
        cfg = dataclasses.replace(cfg, lr=found.suggested)
        trainer.cfg = cfg
        for group in trainer.opt_g.param_groups:
            group["lr"] = cfg.lr
    if resume_from is not None and info.is_main:
        log.info("resuming from %s (iteration %d)", resume_from, start)
    # The CPU RNG is restored by trainer.load; nothing below may draw from it before step 1.

    card_base = {
        "preset": model_config.name,
        "data": {"a": faces_a.summary(), "b": faces_b.summary()},
        "training": {
            "batch_size": cfg.batch_size,
            "world_size": info.world,
            "lr": cfg.lr,
            "optimizer": cfg.optimizer,
            **(
                {
                    "lr_finder": {
                        "best_lr": found.best_lr,
                        "strength": found.strength,
                        "steps": len(found.lrs),
                    }
                }
                if found is not None
                else {}
            ),
            "lr_warmup": cfg.lr_warmup,
            "lr_dropout": cfg.lr_dropout,
            "freeze": list(cfg.freeze),
            "loss": cfg.loss,
            "gan": cfg.gan,
            "gan_weight": cfg.gan_weight,
            "true_face_power": cfg.true_face_power,
            "face_style_power": cfg.face_style_power,
            "bg_style_power": cfg.bg_style_power,
            "seed": cfg.seed,
            "device": device.type,
            "amp": str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else "off",
        },
    }
    if initialised is None and resume_from is not None:
        initialised = ckpt.read_card(model_dir).get("initialised_from")  # the first run's
    if initialised is not None:
        card_base["initialised_from"] = initialised
    if cfg.freeze and initialised is None and resume_from is None and info.is_main:
        log.warning(
            "--freeze %s on a new model keeps those parts at their random weights; freeze "
            "parts that --init-from copied or that earlier training taught",
            ",".join(cfg.freeze),  # type: ignore[arg-type]
        )
    metrics: MetricsLog | None = None
    preview_a = preview_b = None
    if info.is_main:
        write_text_atomic(
            model_dir / "train_config.json",
            dump_json(config_to_dict(dataclasses.replace(cfg, model_config=None))),
        )
        metrics = MetricsLog(
            model_dir / "metrics.csv",
            resume_from=start,
            tensorboard_dir=model_dir / "tensorboard" if cfg.tensorboard else None,
            history=tuple(LOSS_CURVES),
        )
        assert chosen is not None
        preview_a, preview_b = (faces.to(device) for faces in chosen)
        if resume_from is None:
            ckpt.save_model(
                model_dir, trainer.model, crop=faces_a.crop, card={**card_base, "iteration": 0}
            )

    throughput = Throughput(examples_per_step=2 * cfg.batch_size * info.world)
    bar = None
    header = _run_header(cfg, trainer, model_config, (len(faces_a), len(faces_b)), start, info)
    if info.is_main:
        log.info("%s", header)
    if info.is_main and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.iterations, initial=start, unit="it", dynamic_ncols=True)
        bar.write(header)

    last: dict[str, float] = {}
    # On rank 0 a resumed run that has nothing left to do still reports its checkpoint.
    last_ckpt: Path | None = resume_from if info.is_main else None
    if start >= cfg.iterations and info.is_main:
        log.warning("the model is at iteration %d already; raise --iterations to train on", start)
    iteration = start
    interrupted = False
    t0 = time.perf_counter()
    save_seconds, last_save = cfg.save_minutes * 60.0, time.monotonic()
    budget_seconds, out_of_time = cfg.max_minutes * 60.0, False
    # Training time over every run up to a checkpoint: what a roll-back goes back to as well.
    earlier_seconds = _trained_seconds(resume_from) if resume_from is not None else 0.0

    def save(it: int) -> Path | None:
        ddp.assert_in_sync(trainer.model, info, "model")
        if trainer.disc is not None:
            ddp.assert_in_sync(trainer.disc, info, "discriminator")
        if trainer.code_disc is not None:
            ddp.assert_in_sync(trainer.code_disc, info, "true-face critic")
        if not info.is_main:
            return None
        trained = round(earlier_seconds + time.perf_counter() - t0, 3)
        meta = {"losses": last, "time": time.time(), "optimizer": cfg.optimizer,
                "train_seconds": trained}  # fmt: skip
        folder = ckpt.save_checkpoint(
            model_dir,
            it,
            model=trainer.model,
            discriminator=trainer.disc,
            state=trainer.state(it),
            meta=meta,
            keep=cfg.keep,
            snapshot_every=cfg.snapshot_every,
        )
        ckpt.save_model(
            model_dir,
            trainer.model,
            crop=faces_a.crop,
            card={**card_base, "iteration": it, "losses": last, "train_seconds": trained},
        )
        return folder

    pin = device.type == "cuda"
    data_a, data_b = _datasets(faces_a, faces_b, size, cfg, info)
    with (
        contextlib.closing(_loader(data_a, cfg, 0, start, info, pin)) as iter_a,
        contextlib.closing(_loader(data_b, cfg, 1, start, info, pin)) as iter_b,
        _StopFlag() as stop,
    ):
        while iteration < cfg.iterations:
            waited = time.perf_counter()
            batch_a, batch_b = _next_batch(iter_a), _next_batch(iter_b)
            throughput.add_wait(time.perf_counter() - waited)
            parts = trainer.step(iteration, batch_a, batch_b)
            iteration += 1
            throughput.tick()
            due = 0 < save_seconds <= time.monotonic() - last_save
            over = 0 < budget_seconds <= time.perf_counter() - t0
            stopping, due, over = ddp.any_ranks((stop.requested, due, over), info, device)
            stopping = stopping or over
            out_of_time = out_of_time or over
            final = iteration == cfg.iterations
            save_now = iteration % cfg.save_every == 0 or final or stopping or due
            log_now = iteration % cfg.log_every == 0 or final
            if log_now or save_now:
                # Reading the losses syncs the GPU, so only here; never save NaN weights.
                values = {k: float(v) for k, v in parts.items()}
                if not all(math.isfinite(v) for v in values.values()):
                    raise FaceswapError(
                        f"training diverged at iteration {iteration} (loss {values['loss']}); "
                        f"resume from the last checkpoint with a lower --lr"
                        + (" or without --amp" if cfg.amp else "")
                    )
                last = ddp.average_scalars(values, info, device)
            if log_now:
                if metrics is not None:
                    metrics.log(
                        iteration,
                        {
                            "time_s": round(time.perf_counter() - t0, 3),
                            "it_per_s": throughput.it_per_s,
                            "examples_per_s": throughput.examples_per_s,
                            "data_wait": throughput.data_wait,
                            **last,
                        },
                    )
                if bar is not None:
                    bar.set_postfix(
                        loss=f"{last['loss']:.4f}",
                        a=f"{last['loss_a']:.4f}",
                        b=f"{last['loss_b']:.4f}",
                        ex_s=f"{throughput.examples_per_s:.1f}",
                        refresh=False,
                    )
            if bar is not None:
                bar.update(1)
            if save_now:
                last_ckpt = save(iteration) or last_ckpt
                last_save = time.monotonic()
                ddp.barrier(info)
            if info.is_main and (
                (cfg.preview_every and iteration % cfg.preview_every == 0)
                or iteration == cfg.iterations
                or stopping
                or due  # slow steps: a look at least as often as --save-minutes
            ):
                grid = render_preview(trainer.model, preview_a, preview_b)
                tags = preview_tags(model_config.name)  # its swap columns are synthetic
                history = model_dir / "previews" / f"preview_{iteration:09d}.png"
                write_preview((history, model_dir / "preview.png"), grid, tags)
                if metrics is not None:  # DFL's loss history, without TensorBoard
                    write_preview(model_dir / "loss.png", plot_losses(metrics.history))
            if stopping:
                interrupted = iteration < cfg.iterations
                break
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    if metrics is not None:
        metrics.close()
    return TrainResult(
        model_dir=model_dir,
        start_iteration=start,
        iteration=iteration,
        interrupted=interrupted,
        losses=last,
        checkpoint=last_ckpt,
        seconds=seconds,
        it_per_s=throughput.it_per_s or ((iteration - start) / seconds if seconds > 0 else 0.0),
        data_wait=throughput.data_wait,
        workers=int(cfg.workers or 0),
        lr_found=None if found is None else found.suggested,
        train_seconds=earlier_seconds + seconds,
        out_of_time=out_of_time,
    )

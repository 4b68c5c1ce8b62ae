"""Mask training: ``run_train_segmenter(SegmenterTrainConfig) -> SegmenterTrainResult``.

DeepFaceLab's XSeg workflow with our pieces: paint the masks of some face crops (``faceswap
masks FACES`` writes their hulls to start from; paint black what is not face), train a small
U-Net (:class:`~faceswap.nets.segmenter.Segmenter`) on them, then let it draw the masks of
every other crop (``faceswap masks FACES --model SEGMENTER``) and of the destination faces
at convert time (``--mask segment``). Samples come from :class:`FaceDataset`, so the
painted masks move with the face under the same flips, rotations, zooms and shifts, and the
faces get the same lighting and blur augmentation as in training.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from faceswap.config import config_from_dict, config_to_dict, dump_json
from faceswap.device import resolve_device
from faceswap.errors import FaceswapError
from faceswap.io.files import atomic_path, ensure_writable_dir, write_text_atomic
from faceswap.nets.segmenter import Segmenter, SegmenterConfig, segmenter_loss
from faceswap.train.augment import AugmentConfig
from faceswap.train.dataset import (
    ALIGNMENTS_FILE,
    FaceDataset,
    FaceSet,
    StreamSampler,
    load_face_set,
)

log = logging.getLogger(__name__)

#: Files of a segmenter folder.
WEIGHTS = "segmenter.safetensors"
CARD = "segmenter.json"
STATE = "segmenter_state.pt"
KIND = "faceswap-segmenter"


@dataclass(frozen=True)
class SegmenterTrainConfig:
    """One mask-training run.

    Attributes:
        faces: faces folders (``faceswap extract`` output) whose ``masks/`` hold masks;
            only the crops with a mask are used.
        model_dir: folder for the segmenter (its own, not a face-swap model's).
        network: the U-Net's shape (resolution and widths); kept from the folder on resume.
        iterations: total iterations (counting resumed ones).
        batch_size: crops per step.
        lr: Adam learning rate.
        seed: seeds weights, sampling and augmentation.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        workers: DataLoader worker processes (0: in the main process).
        augment: geometric and colour augmentation (the random warp does not apply).
        save_every: save interval in iterations (and at the end, and on Ctrl-C/SIGTERM).
        resume: continue the segmenter in ``model_dir``.
        progress: show a progress bar.
    """

    faces: tuple[Path, ...] | Path
    model_dir: Path
    network: SegmenterConfig = field(default_factory=SegmenterConfig)
    iterations: int = 3000
    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(rotation=15, zoom=0.1))
    save_every: int = 500
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        faces = self.faces
        paths = (Path(faces),) if isinstance(faces, (str, Path)) else tuple(map(Path, faces))
        object.__setattr__(self, "faces", paths)
        object.__setattr__(self, "model_dir", Path(self.model_dir))
        if not paths:
            raise FaceswapError("give one or more faces folders with painted masks")
        for name in ("iterations", "batch_size", "save_every"):
            if getattr(self, name) < 1:
                raise FaceswapError(f"--{name.replace('_', '-')} must be at least 1")
        if not self.lr > 0 or self.workers < 0:
            raise FaceswapError("--lr must be positive and --workers >= 0")


@dataclass(frozen=True)
class SegmenterTrainResult:
    """What a mask-training run did: the folder, iterations, last loss, the painted faces
    and the hull masks it learned from, and the time."""

    model_dir: Path
    start_iteration: int
    iteration: int
    loss: float
    faces: int
    seconds: float
    hulls: int = 0
    interrupted: bool = False


@dataclass(frozen=True)
class MaskExamples:
    """What a mask model learns from.

    Attributes:
        faces: the crops with a painted mask, then those with the hull mask ``faceswap
            masks`` wrote and nobody changed (faces with nothing in front, as far as the
            painter is concerned); masks a mask model wrote are not examples.
        painted: how many of them (the first) are painted.
        weights: sampling probabilities: the painted half of every batch when both kinds
            are there, so a few hundred painted faces are not drowned by thousands of hulls.
    """

    faces: FaceSet
    painted: int
    weights: np.ndarray | None


def mask_examples(folders: tuple[Path, ...]) -> MaskExamples:
    """The crops of ``folders`` a mask model trains on (:class:`MaskExamples`)."""
    from faceswap.train.dataset import generated_masks, is_painted

    faces = load_face_set(list(folders), "A", label="faces folder")
    painted, hulls = [], []
    for i in range(len(faces)):
        mask = faces.user_mask(i)
        if mask is None:
            continue
        if is_painted(mask):
            painted.append(i)
        elif generated_masks(mask.parent).get(mask.name, {}).get("by") == "hull":
            hulls.append(i)
    if not painted:
        names = ", ".join(str(f) for f in folders)
        raise FaceswapError(
            f"{names}: no painted masks to learn from (masks/ holds none, or only ones "
            f"`faceswap masks` wrote); run `faceswap masks {folders[0]}`, paint black what "
            "is not face on some of them, then rerun"
        )
    keep = painted + hulls
    weights = None
    if hulls:
        weights = np.array([0.5 / len(painted)] * len(painted) + [0.5 / len(hulls)] * len(hulls))
    subset = dataclasses.replace(
        faces,
        files=tuple(faces.files[i] for i in keep),
        landmarks=tuple(faces.landmarks[i] for i in keep),
        user_masks=tuple(faces.user_masks[i] for i in keep),
    )
    return MaskExamples(faces=subset, painted=len(painted), weights=weights)


def read_segmenter_card(model_dir: Path) -> dict[str, Any]:
    """The segmenter folder's card; a clear error when it is not one."""
    path = Path(model_dir) / CARD
    if not path.is_file():
        raise FaceswapError(
            f"{model_dir}: not a mask model folder (no {CARD}); pass the -m folder that "
            "`faceswap train-masks` wrote"
        )
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FaceswapError(f"{path}: unreadable ({exc}); retrain the mask model") from None
    if card.get("kind") != KIND:
        raise FaceswapError(f"{path}: not a faceswap mask model card")
    return card


def _check_folder(cfg: SegmenterTrainConfig) -> None:
    folder = cfg.model_dir
    if (folder / "model.json").is_file():
        raise FaceswapError(
            f"{folder}: holds a face-swap model; give the mask model a folder of its own"
        )
    if (folder / ALIGNMENTS_FILE).is_file():  # the faces folder itself, or another one
        raise FaceswapError(
            f"{folder}: is a faces folder (it holds an {ALIGNMENTS_FILE}); give the mask model "
            "a folder of its own (e.g. -m masknet)"
        )
    if (folder / CARD).is_file() and not cfg.resume:
        raise FaceswapError(
            f"{folder}: holds a mask model already; add --resume to train it on, or choose "
            "another -m folder"
        )
    if cfg.resume and not (folder / CARD).is_file():
        raise FaceswapError(f"{folder}: no mask model to resume; drop --resume to start one")


def _batches(
    dataset: FaceDataset, cfg: SegmenterTrainConfig, start: int, weights: np.ndarray | None
) -> Iterator[dict[str, torch.Tensor]]:
    from faceswap.train.loop import stream_batches

    sampler = StreamSampler(len(dataset), cfg.batch_size, cfg.seed, 2, start, weights=weights)
    return stream_batches(dataset, sampler, cfg.batch_size, cfg.workers, seed=cfg.seed)


def save_segmenter(
    model_dir: Path,
    model: Segmenter,
    optimizer: torch.optim.Optimizer | None,
    card: dict[str, Any],
) -> None:
    """Write the weights, the optimiser state (for ``--resume``) and the card, atomically."""
    from safetensors.torch import save_file

    from faceswap.train.checkpoint import software_versions, state_dict_for_save

    model_dir = ensure_writable_dir(model_dir)
    with atomic_path(model_dir / WEIGHTS) as tmp:
        save_file(state_dict_for_save(model), str(tmp), metadata={"kind": KIND})
    if optimizer is not None:
        with atomic_path(model_dir / STATE) as tmp:
            torch.save(optimizer.state_dict(), tmp)
    full = {
        "kind": KIND,
        "network": config_to_dict(model.config),
        **card,
        "versions": software_versions(),
    }
    write_text_atomic(model_dir / CARD, dump_json(full))


def load_segmenter(model_dir: Path | str, device: torch.device | str = "cpu") -> Segmenter:
    """The segmenter of ``model_dir`` on ``device``, in eval mode."""
    from faceswap.train.checkpoint import load_weights_into

    model_dir = Path(model_dir)
    card = read_segmenter_card(model_dir)
    network = config_from_dict(SegmenterConfig, card["network"], source=str(model_dir / CARD))
    model = Segmenter(network)
    load_weights_into(model, model_dir / WEIGHTS, "mask model")
    return model.to(device).eval()


def run_train_segmenter(cfg: SegmenterTrainConfig) -> SegmenterTrainResult:
    """Train (or with ``resume`` continue) a segmenter on the painted masks of ``cfg.faces``.

    Raises:
        FaceswapError: no masks in the faces folders, a folder that holds a face-swap
            model or another mask model (without ``resume``), or an unreadable mask.
    """
    from faceswap.train.loop import _StopFlag

    started = time.perf_counter()
    device = resolve_device(cfg.device)
    _check_folder(cfg)
    examples = mask_examples(cfg.faces)  # type: ignore[arg-type]
    faces = examples.faces
    start = 0
    if cfg.resume:
        model = load_segmenter(cfg.model_dir)
        start = int(read_segmenter_card(cfg.model_dir).get("iteration", 0))
    else:
        torch.manual_seed(cfg.seed)
        model = Segmenter(cfg.network)
    network = model.config
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    state = cfg.model_dir / STATE
    if cfg.resume and state.is_file():
        optimizer.load_state_dict(torch.load(state, map_location="cpu", weights_only=True))
    dataset = FaceDataset(faces, network.resolution, cfg.augment)
    log.info(
        "training a mask model on %d painted faces and %d hull masks",
        examples.painted,
        len(faces) - examples.painted,
    )
    card_base = {
        "faces": [str(f) for f in cfg.faces],
        "painted": examples.painted,
        "hulls": len(faces) - examples.painted,
        "crop": config_to_dict(faces.crop),
    }
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.iterations, initial=start, unit="it", dynamic_ncols=True)
    iteration, loss_value, interrupted = start, math.nan, False
    batches = _batches(dataset, cfg, start, examples.weights)
    try:
        with _StopFlag() as stop:
            while iteration < cfg.iterations:
                batch = next(batches)
                x = batch["source"].to(device).float().div_(255.0)
                target = batch["masks"][:, 0:1].to(device).float().div_(255.0)
                loss = segmenter_loss(model(x), target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                iteration += 1
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise FaceswapError(
                        f"mask training diverged at iteration {iteration}; rerun with a lower --lr"
                    )
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_value:.4f}")
                if iteration % cfg.save_every == 0 or iteration == cfg.iterations or stop.requested:
                    card = {**card_base, "iteration": iteration, "loss": loss_value}
                    save_segmenter(cfg.model_dir, model, optimizer, card)
                if stop.requested:
                    interrupted = iteration < cfg.iterations
                    break
    finally:
        batches.close()  # type: ignore[attr-defined]  # shut the workers down
    if bar is not None:
        bar.close()
    return SegmenterTrainResult(
        model_dir=cfg.model_dir,
        start_iteration=start,
        iteration=iteration,
        loss=loss_value,
        faces=examples.painted,
        hulls=len(faces) - examples.painted,
        seconds=time.perf_counter() - started,
        interrupted=interrupted,
    )


class MaskPredictor:
    """Masks of aligned crops by a trained segmenter, at the crops' own size.

    ``predictor(crops)`` takes (N, S, S, 3) RGB crops (uint8, uint16, or float in [0, 1])
    and returns float32 (N, S, S) in [0, 1], 1 = face; the crops are resized to the
    segmenter's resolution and its masks back to S.
    """

    def __init__(self, model_dir: Path | str, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = load_segmenter(model_dir, self.device)
        self.resolution = self.model.config.resolution

    @torch.inference_mode()
    def __call__(self, crops: np.ndarray) -> np.ndarray:
        if crops.ndim != 4 or crops.shape[-1] != 3:
            raise ValueError(f"expected (N, S, S, 3) crops, got {crops.shape}")
        peak = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(crops.dtype, 1.0)
        x = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32))
        x = x.to(self.device).permute(0, 3, 1, 2).div_(peak)
        size = x.shape[-1]
        if size != self.resolution:
            x = F.interpolate(x, size=(self.resolution,) * 2, mode="bilinear", antialias=True)
        mask = torch.sigmoid(self.model(x))
        if size != self.resolution:
            mask = F.interpolate(mask, size=(size, size), mode="bilinear")
        return mask[:, 0].clamp_(0, 1).float().cpu().numpy()

"""A learned detector of swapped faces: train it on real and swapped faces, run it on video.

``faceswap train-detector --real FACES --fake FACES -m DETECTOR`` trains a
:class:`~faceswap.nets.fakenet.FakeNet` on extract output folders: faces of real footage,
and faces extracted from swaps (``faceswap extract swapped.mp4 -o fake_faces``), as the
face-forensics literature does. ``faceswap detect-fakes VIDEO -m DETECTOR`` finds and aligns
the faces of a video the same way and gives each the network's chance that it is swapped.

Unlike ``faceswap verify``, which reads the marks this tool leaves, this looks at the
pixels alone, so it can flag swaps made elsewhere; it only knows the kinds of swap it was
trained on, and its figures are those of its own validation faces (in the card).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from faceswap.config import check_frame_limit, config_from_dict, config_to_dict, dump_json
from faceswap.device import resolve_device
from faceswap.errors import FaceswapError
from faceswap.io.files import atomic_path, ensure_writable_dir, write_text_atomic
from faceswap.nets.fakenet import FakeNet, FakeNetConfig

log = logging.getLogger(__name__)

WEIGHTS = "detector.safetensors"
CARD = "detector.json"
KIND = "faceswap-fake-detector"


@dataclass(frozen=True)
class DetectorTrainConfig:
    """Settings of :func:`run_train_detector`.

    Attributes:
        real, fake: extract output folders of real faces and of swapped faces (one or more
            each; several are read as one set).
        model_dir: where the detector is written.
        resolution: crops are resized to this side for the network.
        widths: channels of the network's levels.
        iterations: training steps; each sees ``batch_size`` real and as many fake faces.
        batch_size: faces of each kind a step.
        lr: Adam's learning rate.
        validation: share of each set held out to measure the detector (faces of one
            video are alike, so this flatters it; see ``validate_real``).
        validate_real, validate_fake: faces of other videos to measure it on instead (both
            or neither): the honest figure for footage it has not seen.
        jpeg: share of training faces re-compressed as JPEG (quality 60-95), so that a
            difference in compression between the two sets is not what it learns.
        seed: seeds the split, the batches and the augmentation.
        device: ``auto``, ``cpu``, ``cuda``...
    """

    real: tuple[Path, ...]
    fake: tuple[Path, ...]
    model_dir: Path
    resolution: int = 64
    widths: tuple[int, ...] = (16, 32, 64, 128)
    iterations: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    validation: float = 0.1
    validate_real: tuple[Path, ...] = ()
    validate_fake: tuple[Path, ...] = ()
    jpeg: float = 0.5
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.batch_size < 1:
            raise FaceswapError("--iterations and --batch-size must be 1 or more")
        if not 0.0 < self.validation < 0.5:
            raise FaceswapError(f"--validation must be in (0, 0.5), got {self.validation}")
        if bool(self.validate_real) != bool(self.validate_fake):
            raise FaceswapError("give --validate-real and --validate-fake together, or neither")
        if not 0.0 <= self.jpeg <= 1.0:
            raise FaceswapError(f"--jpeg must be in [0, 1], got {self.jpeg}")


@dataclass(frozen=True)
class DetectorTrainResult:
    model_dir: Path
    iterations: int
    train_faces: tuple[int, int]
    validation_faces: tuple[int, int]
    accuracy: float
    auc: float
    seconds: float


def _faces(folders: tuple[Path, ...], option: str, size: int) -> tuple[np.ndarray, Any]:
    from faceswap.train.dataset import load_face_set, read_face

    faces = load_face_set(folders, option, label=f"--{option}")
    return np.stack([read_face(path, size) for path in faces.files]), faces


def _split(n: int, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    held = max(1, round(n * share))
    return order[held:], order[:held]


def _augment(faces: np.ndarray, rng: np.random.Generator, jpeg: float) -> np.ndarray:
    out = faces.copy()
    flip = rng.random(len(out)) < 0.5
    out[flip] = out[flip, :, ::-1]
    for i in np.flatnonzero(rng.random(len(out)) < jpeg):
        quality = int(rng.integers(60, 96))
        ok, data = cv2.imencode(".jpg", out[i], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out[i] = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    gain = rng.uniform(0.9, 1.1, (len(out), 1, 1, 1)).astype(np.float32)
    bias = rng.uniform(-10, 10, (len(out), 1, 1, 1)).astype(np.float32)
    return np.clip(out.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)


def _tensor(faces: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(faces)).to(device).permute(0, 3, 1, 2) / 255.0


def auc_score(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random fake scores above a random real face
    (ties count half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


@torch.no_grad()
def _scores(
    model: FakeNet, faces: np.ndarray, device: torch.device, batch: int = 256
) -> np.ndarray:
    model.eval()
    out = [
        torch.sigmoid(model(_tensor(faces[i : i + batch], device))).float().cpu().numpy()
        for i in range(0, len(faces), batch)
    ]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def run_train_detector(cfg: DetectorTrainConfig) -> DetectorTrainResult:
    """Train a fake-face detector on ``cfg.real`` against ``cfg.fake`` and write it.

    Raises:
        FaceswapError: unusable face folders, the same folder on both sides, crops of two
            geometries, too few faces to hold some out, an unwritable model folder.
    """
    from safetensors.torch import save_file

    from faceswap.train.checkpoint import software_versions, state_dict_for_save

    start = time.perf_counter()
    shared = {p.resolve() for p in cfg.real} & {p.resolve() for p in cfg.fake}
    if shared:
        raise FaceswapError(
            f"{sorted(shared)[0]}: given as --real and as --fake; the fakes are faces "
            "extracted from swapped videos"
        )
    network = FakeNetConfig(cfg.resolution, cfg.widths)
    real, real_set = _faces(cfg.real, "real", cfg.resolution)
    fake, fake_set = _faces(cfg.fake, "fake", cfg.resolution)
    if real_set.crop != fake_set.crop:
        raise FaceswapError(
            f"--real faces are cut as {real_set.crop}, --fake as {fake_set.crop}; extract "
            "both with the same --size, --coverage and --centering"
        )
    for name, faces in (("--real", real), ("--fake", fake)):
        if len(faces) < 4:
            raise FaceswapError(f"{name}: {len(faces)} faces; give at least 4 (hundreds help)")
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.validate_real:
        real_held, _ = _faces(cfg.validate_real, "validate-real", cfg.resolution)
        fake_held, _ = _faces(cfg.validate_fake, "validate-fake", cfg.resolution)
        real_train, fake_train = np.arange(len(real)), np.arange(len(fake))
    else:
        real_train, real_val = _split(len(real), cfg.validation, rng)
        fake_train, fake_val = _split(len(fake), cfg.validation, rng)
        real_held, fake_held = real[real_val], fake[fake_val]
    device = resolve_device(cfg.device)
    model = FakeNet(network).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    labels = torch.cat([torch.zeros(cfg.batch_size), torch.ones(cfg.batch_size)]).to(device)
    model_dir = ensure_writable_dir(Path(cfg.model_dir))
    for step in range(cfg.iterations):
        model.train()
        picks = [rng.choice(real_train, cfg.batch_size), rng.choice(fake_train, cfg.batch_size)]
        batch = np.concatenate([real[picks[0]], fake[picks[1]]])
        logits = model(_tensor(_augment(batch, rng, cfg.jpeg), device))
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            log.info("detector step %d: loss %.4f", step, loss.item())
    scores = np.concatenate([_scores(model, real_held, device), _scores(model, fake_held, device)])
    truth = np.concatenate([np.zeros(len(real_held)), np.ones(len(fake_held))])
    accuracy = float(((scores >= 0.5) == truth).mean())
    auc = auc_score(scores, truth)
    with atomic_path(model_dir / WEIGHTS) as tmp:
        save_file(state_dict_for_save(model), str(tmp), metadata={"kind": KIND})
    card = {
        "kind": KIND,
        "network": config_to_dict(network),
        "crop": config_to_dict(real_set.crop),
        "iterations": cfg.iterations,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "seed": cfg.seed,
        "data": {"real": real_set.summary(), "fake": fake_set.summary()},
        "validation": {
            "on": "held-out folders" if cfg.validate_real else f"{cfg.validation:.0%} held out",
            "real_faces": len(real_held),
            "fake_faces": len(fake_held),
            "accuracy": round(accuracy, 4),
            "auc": round(auc, 4),
        },
        "versions": software_versions(),
    }
    write_text_atomic(model_dir / CARD, dump_json(card))
    return DetectorTrainResult(
        model_dir,
        cfg.iterations,
        (len(real_train), len(fake_train)),
        (len(real_held), len(fake_held)),
        accuracy,
        auc,
        time.perf_counter() - start,
    )


def load_detector(model_dir: Path | str, device: torch.device | str = "cpu") -> tuple[FakeNet, Any]:
    """The detector of ``model_dir`` (eval mode) and the crop geometry it was trained on."""
    import json

    from faceswap.faces.align import CropSpec
    from faceswap.train.checkpoint import load_weights_into

    model_dir = Path(model_dir)
    card_path = model_dir / CARD
    if not card_path.is_file():
        raise FaceswapError(
            f"{model_dir}: no {CARD}; pass a folder written by `faceswap train-detector`"
        )
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FaceswapError(f"{card_path}: corrupt detector card (not valid JSON)") from None
    if card.get("kind") != KIND:
        raise FaceswapError(f"{card_path}: not a fake-face detector's card")
    network = config_from_dict(FakeNetConfig, card["network"], source=str(card_path))
    crop = config_from_dict(CropSpec, card["crop"], source=str(card_path))
    model = FakeNet(network)
    load_weights_into(model, model_dir / WEIGHTS, "fake-face detector")
    return model.to(device).eval(), crop


@dataclass(frozen=True)
class DetectFakesConfig:
    """Settings of :func:`run_detect_fakes`.

    Attributes:
        input: a video, an image or a folder of images.
        model_dir: a ``faceswap train-detector`` folder.
        frames: look at most at this many frames, spread over the input (0: all).
        threshold: a face whose chance of being swapped is this or more counts as swapped.
        detector, device: face detector, and torch device for the network.
        rotate: also look for faces turned in the picture at these angles (see
            :func:`~faceswap.faces.rotation.parse_rotations`).
    """

    input: Path
    model_dir: Path
    frames: int = 120
    threshold: float = 0.5
    detector: str = "dlib-hog"
    device: str = "auto"
    rotate: tuple[float, ...] | str = ()

    def __post_init__(self) -> None:
        from faceswap.faces.rotation import as_rotations

        check_frame_limit(self.frames)
        object.__setattr__(self, "rotate", as_rotations(self.rotate))
        if not 0.0 < self.threshold < 1.0:
            raise FaceswapError(f"--threshold must be in (0, 1), got {self.threshold}")


@dataclass(frozen=True)
class DetectFakesResult:
    """Per face, the chance it is swapped; ``swapped`` when their median reaches the
    threshold."""

    input: Path
    frames: int
    scores: tuple[float, ...]
    threshold: float

    @property
    def median(self) -> float | None:
        return float(np.median(self.scores)) if self.scores else None

    @property
    def flagged(self) -> int:
        return sum(s >= self.threshold for s in self.scores)

    @property
    def swapped(self) -> bool:
        return self.median is not None and self.median >= self.threshold


def run_detect_fakes(cfg: DetectFakesConfig) -> DetectFakesResult:
    """Score every face found in up to ``cfg.frames`` frames of ``cfg.input``.

    Raises:
        FaceswapError: a missing or unreadable input or detector folder.
    """
    from faceswap.faces.align import alignment_matrix, warp_to_crop
    from faceswap.faces.detectors import create_detector
    from faceswap.faces.rotation import with_rotations
    from faceswap.io.images import as_8bit, is_image_file, read_image
    from faceswap.io.video import open_source

    path = Path(cfg.input)
    if not path.exists():
        raise FaceswapError(f"{path}: no such file or folder; check the path")
    device = resolve_device(cfg.device)
    model, crop = load_detector(cfg.model_dir, device)
    if path.is_file() and is_image_file(path):
        images: Any = iter([read_image(path)])
    else:
        images = (as_8bit(f.image) for f in open_source(path).iter_spread(cfg.frames))
    finder = with_rotations(create_detector(cfg.detector, cfg.device), cfg.rotate)  # type: ignore[arg-type]
    size = model.config.resolution
    scores: list[float] = []
    frames = 0
    for image in images:
        frames += 1
        found = finder.detect(image)
        crops = []
        for landmarks in found.landmarks:
            face = warp_to_crop(image, alignment_matrix(landmarks, crop), crop.size)
            if crop.size != size:
                face = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
            crops.append(face)
        if crops:
            scores += [float(s) for s in _scores(model, np.stack(crops), device)]
    return DetectFakesResult(path, frames, tuple(round(s, 4) for s in scores), cfg.threshold)

"""Model directories: inference weights, model card and resumable training checkpoints.

Layout of a model dir::

    model.json             schema_version, ModelConfig, CropSpec (what convert needs to rebuild)
    model.safetensors      latest inference weights (encoder + both decoders)
    model_card.json        preset, config, iteration, losses, data folders, versions
    train_config.json      the TrainConfig of the last run
    checkpoints/ckpt_<iteration:09d>/
        model.safetensors  generator weights
        disc.safetensors   discriminator weights (GAN runs only)
        state.pt           optimizers, grad scaler, RNG states: tensors and plain values only,
                           loaded with ``torch.load(weights_only=True)``
        meta.json          iteration and losses
    previews/, metrics.csv

Every file is written to a temporary name and renamed; a checkpoint folder is assembled under
a hidden temporary name and renamed into place only when complete, so a crash (even SIGKILL)
mid-save leaves the previous checkpoint as the newest loadable one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from faceswap.config import config_from_dict, config_to_dict, dump_json
from faceswap.errors import FaceswapError
from faceswap.io.files import atomic_path, ensure_writable_dir, make_temp_dir, write_text_atomic

if TYPE_CHECKING:
    from faceswap.faces.align import CropSpec
    from faceswap.nets import FaceSwapModel, ModelConfig

SCHEMA_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS = "model.safetensors"
CARD = "model_card.json"
CHECKPOINTS = "checkpoints"
_CKPT_PREFIX = "ckpt_"
_TMP_PREFIX = ".tmp-ckpt_"


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference, as convert uses it.

    Attributes:
        model: the network in eval mode on the requested device.
        config: the ModelConfig it was built from.
        card: the model card (dict parsed from ``model_card.json``; empty if absent).
        crop: crop geometry of the training faces; convert aligns with it at
            ``config`` resolution.
        weights_sha256: hex digest of ``model.safetensors`` (for provenance).
    """

    model: FaceSwapModel
    config: ModelConfig
    card: dict[str, Any]
    crop: CropSpec
    weights_sha256: str


# ----------------------------------------------------------------------------------------------
# Inference weights and model card
# ----------------------------------------------------------------------------------------------


def state_dict_for_save(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU, contiguous, unshared copies of ``module``'s tensors (safetensors rejects aliases)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def _save_safetensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=meta)
        _fsync(tmp)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def software_versions() -> dict[str, str]:
    """Versions recorded in the model card so a result can be reproduced."""
    from faceswap import __version__

    versions = {
        "faceswap": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    if torch.version.cuda:
        versions["cuda"] = str(torch.version.cuda)
    with contextlib.suppress(ImportError):
        import cv2

        versions["opencv"] = cv2.__version__
    with contextlib.suppress(ImportError):
        import albumentations

        versions["albumentations"] = albumentations.__version__
    return versions


def model_json(config: ModelConfig, crop: CropSpec) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "model_config": config_to_dict(config),
        "crop": config_to_dict(crop),
    }


def save_model(
    model_dir: Path | str, model: FaceSwapModel, *, crop: CropSpec, card: dict[str, Any]
) -> None:
    """Write inference weights, ``model.json`` and the model card, each atomically.

    Args:
        model_dir: created if needed; an unwritable folder is a FaceswapError.
        model: the (unwrapped) FaceSwapModel; its ``config`` is recorded.
        crop: crop geometry of the A faces it was trained on.
        card: model card fields (preset, iteration, losses, data, ...); ``versions``,
            ``model_config`` and ``crop`` are filled in when missing.
    """
    model_dir = ensure_writable_dir(Path(model_dir))
    info = model_json(model.config, crop)
    _save_safetensors(
        model_dir / WEIGHTS,
        state_dict_for_save(model),
        {"format": "pt", "faceswap_model_json": json.dumps(info, sort_keys=True)},
    )
    write_text_atomic(model_dir / MODEL_JSON, dump_json(info))
    full_card = dict(card)
    full_card.setdefault("model_config", info["model_config"])
    full_card.setdefault("crop", info["crop"])
    full_card.setdefault("versions", software_versions())
    full_card["weights_sha256"] = file_sha256(model_dir / WEIGHTS)
    write_text_atomic(model_dir / CARD, dump_json(full_card))


def read_model_json(model_dir: Path) -> tuple[ModelConfig, CropSpec]:
    """Parse ``model.json`` into a ModelConfig and CropSpec; problems are FaceswapErrors."""
    from faceswap.faces.align import CropSpec
    from faceswap.nets import ModelConfig

    path = Path(model_dir) / MODEL_JSON
    if not path.is_file():
        raise FaceswapError(
            f"{model_dir}: not a faceswap model folder (no {MODEL_JSON}); "
            "pass the -m folder that `faceswap train` wrote"
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise FaceswapError(
            f"{path}: unreadable model description ({exc}); retrain or restore the folder"
        ) from None
    version = info.get("schema_version") if isinstance(info, dict) else None
    if version != SCHEMA_VERSION:
        raise FaceswapError(
            f"{path}: model schema version {version!r} is not supported (this faceswap reads "
            f"{SCHEMA_VERSION}); use the faceswap version that trained it"
        )
    config = config_from_dict(ModelConfig, info["model_config"], source=str(path))
    crop = config_from_dict(CropSpec, info["crop"], source=f"{path} crop")
    return config, crop


def load_weights_into(
    module: torch.nn.Module, path: Path, what: str, *, assign: bool = False, prefix: str = ""
) -> None:
    """Load a safetensors file into ``module`` strictly; mismatches name the file and fix.

    With ``assign`` the loaded tensors become the parameters (for a module built on the
    meta device, which has shapes but no storage). With ``prefix`` only the entries whose
    names start with it are loaded (``"encoder."``), strictly among themselves.
    """
    tensors = _read_weights(path, prefix)
    detail = _mismatch(module, tensors, prefix)
    if detail:
        raise FaceswapError(
            f"{path}: {what} weights do not fit this model ({detail}); they come from another "
            "preset or resolution: use the same --preset or a new model folder"
        )
    module.load_state_dict(tensors, strict=not prefix, assign=assign)


def weights_mismatch(module: torch.nn.Module, path: Path) -> str:
    """How the weights in ``path`` fail to fit ``module`` (missing, unexpected and
    wrongly shaped names), or '' when they fit."""
    return _mismatch(module, _read_weights(path), "")


def _read_weights(path: Path, prefix: str = "") -> dict[str, torch.Tensor]:
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise FaceswapError(
            f"{path}: corrupt or unreadable weights ({exc}); restore the file or retrain"
        ) from None
    return {k: v for k, v in tensors.items() if k.startswith(prefix)}


def _mismatch(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str) -> str:
    expected = {k: v for k, v in module.state_dict().items() if k.startswith(prefix)}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(
        k
        for k in set(expected) & set(tensors)
        if tuple(expected[k].shape) != tuple(tensors[k].shape)
    )
    return ", ".join(
        f"{label}: {names[0]}{' ...' if len(names) > 1 else ''} ({len(names)})"
        for label, names in (("missing", missing), ("unexpected", unexpected), ("shape", wrong))
        if names
    )


def read_card(model_dir: Path | str) -> dict[str, Any]:
    """The model card of ``model_dir``, or {} when it is missing or unreadable (the card
    describes the model; the weights and ``model.json`` are what loading needs)."""
    path = Path(model_dir) / CARD
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return card if isinstance(card, dict) else {}


def load_for_inference(model_dir: Path | str, device: torch.device | str = "cpu") -> LoadedModel:
    """Rebuild the model of ``model_dir`` and load its latest inference weights.

    Args:
        model_dir: a folder written by :func:`save_model` (``faceswap train -m``).
        device: torch device (or its name) to put the model on.

    Returns:
        LoadedModel with the model in eval mode.
    """
    from faceswap.nets import build_model

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FaceswapError(f"{model_dir}: no such model folder; pass the folder `train -m` wrote")
    config, crop = read_model_json(model_dir)
    weights = model_dir / WEIGHTS
    if not weights.is_file():
        raise FaceswapError(
            f"{weights}: missing; the model was never saved (train for at least one "
            "checkpoint interval) or the file was deleted"
        )
    # Built without storage: initialising 80M+ random weights only to overwrite them took
    # most of the load time (0.5 s of 0.7 s for `original`).
    with torch.device("meta"):
        model = build_model(config)
    load_weights_into(model, weights, "model", assign=True)
    card = read_card(model_dir)
    model.to(torch.device(device)).eval()
    return LoadedModel(
        model=model, config=config, card=card, crop=crop, weights_sha256=file_sha256(weights)
    )


# ----------------------------------------------------------------------------------------------
# Training checkpoints
# ----------------------------------------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """Global RNG states (torch CPU/CUDA, numpy, python) as tensors and plain values."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_gauss": [int(np_state[3]), float(np_state[4])],
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    has_gauss, gauss = state["numpy_gauss"]
    np.random.set_state(("MT19937", keys, state["numpy_pos"], has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):
            torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_plain(state: tuple) -> list:
    version, internal, gauss_next = state
    return [version, list(internal), gauss_next]


def checkpoint_name(iteration: int) -> str:
    return f"{_CKPT_PREFIX}{iteration:09d}"


def list_checkpoints(model_dir: Path | str) -> list[tuple[int, Path]]:
    """Complete checkpoints of ``model_dir`` as ``(iteration, folder)``, oldest first."""
    root = Path(model_dir) / CHECKPOINTS
    found = []
    if root.is_dir():
        for entry in root.iterdir():
            name = entry.name
            if entry.is_dir() and name.startswith(_CKPT_PREFIX) and name[5:].isdigit():
                found.append((int(name[5:]), entry))
    return sorted(found)


def save_checkpoint(
    model_dir: Path | str,
    iteration: int,
    *,
    model: torch.nn.Module,
    discriminator: torch.nn.Module | None,
    state: dict[str, Any],
    meta: dict[str, Any],
    keep: int,
    snapshot_every: int = 0,
) -> Path:
    """Write ``checkpoints/ckpt_<iteration>`` atomically and keep only the newest ``keep``.

    Args:
        state: optimizer/scaler/RNG states; must hold only tensors and plain Python values.
        meta: JSON-able summary (losses, time) stored as ``meta.json``.
        keep: number of checkpoints to keep (>= 1).
        snapshot_every: checkpoints at multiples of this many iterations are kept as well,
            whatever ``keep`` says (0: none).

    Returns:
        the checkpoint folder.
    """
    root = ensure_writable_dir(Path(model_dir) / CHECKPOINTS)
    final = root / checkpoint_name(iteration)
    tmp = make_temp_dir(root, _TMP_PREFIX)
    try:
        save_file(state_dict_for_save(model), str(tmp / "model.safetensors"))
        if discriminator is not None:
            save_file(state_dict_for_save(discriminator), str(tmp / "disc.safetensors"))
        torch.save(state, tmp / "state.pt")
        (tmp / "meta.json").write_text(dump_json({"iteration": iteration, **meta}))
        for child in tmp.iterdir():
            _fsync(child)
        if final.exists():  # re-saving the same iteration (e.g. signal right after a save)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for it, old in list_checkpoints(model_dir)[: -max(1, keep)]:
        if not (snapshot_every > 0 and it % snapshot_every == 0):
            shutil.rmtree(old, ignore_errors=True)
    return final


def set_aside_newer(model_dir: Path | str, iteration: int) -> Path | None:
    """Move the checkpoints newer than ``iteration`` into ``checkpoints/abandoned_<iteration>``
    (kept, but no longer seen by ``--resume``), so a run resumed from an older one carries
    on from there. Returns that folder, or None when nothing was newer."""
    newer = [path for it, path in list_checkpoints(model_dir) if it > iteration]
    if not newer:
        return None
    root = Path(model_dir) / CHECKPOINTS
    aside = root / f"abandoned_{iteration}"
    n = 1
    while aside.exists():  # rolled back to the same checkpoint before
        n += 1
        aside = root / f"abandoned_{iteration}_{n}"
    aside.mkdir()
    for path in newer:
        os.replace(path, aside / path.name)
    _fsync_dir(root)
    return aside


def _fsync_dir(folder: Path) -> None:
    # Makes the rename durable on POSIX; directories cannot be opened this way on Windows.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale_temporaries(model_dir: Path | str) -> None:
    """Delete half-written checkpoint folders left by a crash during a save."""
    root = Path(model_dir) / CHECKPOINTS
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name.startswith(_TMP_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)


def load_checkpoint_state(folder: Path) -> dict[str, Any]:
    """Read ``state.pt`` without unpickling arbitrary objects (``weights_only=True``)."""
    path = folder / "state.pt"
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a damaged file
        raise FaceswapError(
            f"{path}: corrupt or unsafe checkpoint state ({type(exc).__name__}); delete "
            f"{folder} to resume from the previous checkpoint"
        ) from None

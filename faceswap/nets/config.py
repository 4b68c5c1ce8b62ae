"""Model configs and presets: a frozen :class:`ModelConfig` loaded from ``models/<name>.yaml``.

A preset file holds only :class:`ModelConfig` keys; an unknown key is an error naming the valid
ones. Presets are found in, in order: the folder named by ``$FACESWAP_MODELS_DIR``, then the
``models/`` folder beside the ``faceswap`` package (a source checkout). ``load_preset`` also
takes a path to a YAML file, so users can keep their own presets anywhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceswap.config import config_from_dict, config_to_dict, load_yaml
from faceswap.errors import FaceswapError
from faceswap.registry import Registry

#: Architecture families: ``df`` (shared encoder with the dense bottleneck, two decoders) and
#: ``liae`` (conv encoder, inter_AB / inter_B dense blocks, one shared decoder).
ARCHS: tuple[str, ...] = ("df", "liae")

MODELS_DIR_ENV = "FACESWAP_MODELS_DIR"

# Keys that change no tensor shape; left out of the fingerprint so a renamed preset or a new
# description still loads its weights.
_COSMETIC_KEYS = ("name", "description")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes a model's layers and tensor shapes.

    Shapes, for ``arch="df"``: input (N, in_channels, R, R) with R = ``resolution``; the
    encoder applies ``len(encoder_widths)`` stride-2 convs (kernel ``encoder_kernel``), then
    flatten → dense ``bottleneck`` → dense to (``latent_channels``, L, L) → one pixel-shuffle
    upscale to (``encoder_upscale``, 2L, 2L); that tensor is ``z``. Each decoder upscales
    ``len(decoder_widths)`` times (pixel shuffle, kernel ``decoder_kernel``, optional residual
    blocks), then a ``output_kernel`` conv gives 3 RGB channels (+1 mask when
    ``learned_mask``). L = ``latent_size`` = R / 2**(len(decoder_widths) + 1).

    For ``arch="liae"`` the encoder stops after the convs (``z`` is the conv feature map);
    the dense → reshape → upscale part is duplicated as ``inter_ab`` and ``inter_b``, and one
    decoder reads the concatenation of two inter outputs (2 * ``encoder_upscale`` channels).

    Attributes:
        name: preset name (cosmetic).
        arch: one of :data:`ARCHS`.
        resolution: face crop size in pixels (square); the model's input and output size.
        in_channels: input image channels (3 for RGB).
        encoder_widths: output channels of each stride-2 encoder conv.
        encoder_kernel: kernel size of the encoder convs (odd).
        encoder_pixel_norm: scale each face's encoder output to unit root-mean-square before
            the bottleneck (DeepFaceLab's ``-u`` archi, "more likeness"): the dense layers see
            codes of one magnitude whatever the face's contrast. No weights of its own.
        bottleneck: width of the dense bottleneck (the face code).
        latent_channels: channels of the dense layer's output, reshaped to (C, L, L).
        encoder_upscale: channels after the upscale that follows the dense layers.
        decoder_widths: output channels of each decoder upscale block.
        decoder_kernel: kernel of the decoder upscale convs (odd).
        decoder_res_blocks: residual blocks after each decoder upscale (DFL style).
        output_kernel: kernel of the final conv to RGB (+mask) (odd).
        learned_mask: add a 4th, sigmoid output channel: a face mask in [0, 1].
        subpixel_output: the decoders draw at half the resolution, four sub-pixels per pixel
            (the output conv writes 4x the channels, a pixel shuffle interleaves them;
            DeepFaceLab's ``-d`` archi): the latent grid and every decoder map halve too, so
            the decoders run on a quarter of the pixels (``dfl-d256``: 116 GFLOP forward for
            a face of each side against 422 with the same widths drawn at full size).
        negative_slope: LeakyReLU slope.
        icnr_init: initialise pixel-shuffle convs with ICNR (no checkerboard at start).
        description: one line for listings.
    """

    name: str = "custom"
    arch: str = "df"
    resolution: int = 64
    in_channels: int = 3
    encoder_widths: tuple[int, ...] = (128, 256, 512, 1024)
    encoder_kernel: int = 5
    encoder_pixel_norm: bool = False
    bottleneck: int = 1024
    latent_channels: int = 1024
    encoder_upscale: int = 512
    decoder_widths: tuple[int, ...] = (256, 128, 64)
    decoder_kernel: int = 3
    decoder_res_blocks: int = 0
    output_kernel: int = 5
    learned_mask: bool = False
    subpixel_output: bool = False
    negative_slope: float = 0.1
    icnr_init: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        # Lists from YAML or callers become tuples, so configs stay hashable.
        for key in ("encoder_widths", "decoder_widths"):
            value = getattr(self, key)
            if isinstance(value, list):
                object.__setattr__(self, key, tuple(value))
        self._validate()

    def _validate(self) -> None:
        where = f"model config '{self.name}'"
        if self.arch not in ARCHS:
            raise FaceswapError(
                f"{where}: unknown arch '{self.arch}'; choose from {', '.join(ARCHS)}"
            )
        positive = {
            "resolution": self.resolution,
            "in_channels": self.in_channels,
            "bottleneck": self.bottleneck,
            "latent_channels": self.latent_channels,
            "encoder_upscale": self.encoder_upscale,
        }
        for key, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FaceswapError(f"{where}: {key} must be a positive integer, got {value!r}")
        for key in ("encoder_widths", "decoder_widths"):
            widths = getattr(self, key)
            if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
                raise FaceswapError(
                    f"{where}: {key} must be a non-empty list of positive integers, got {widths!r}"
                )
        for key in ("encoder_kernel", "decoder_kernel", "output_kernel"):
            k = getattr(self, key)
            if not isinstance(k, int) or k < 1 or k % 2 == 0:
                raise FaceswapError(f"{where}: {key} must be an odd positive integer, got {k!r}")
        if self.decoder_res_blocks < 0:
            raise FaceswapError(f"{where}: decoder_res_blocks must be >= 0")
        for key in ("learned_mask", "subpixel_output", "encoder_pixel_norm", "icnr_init"):
            if not isinstance(getattr(self, key), bool):
                raise FaceswapError(
                    f"{where}: {key} must be true or false, got {getattr(self, key)!r}"
                )
        up = 2**self._upscales
        down = 2 ** len(self.encoder_widths)
        if self.resolution % up or self.resolution % down:
            raise FaceswapError(
                f"{where}: resolution {self.resolution} must be divisible by {max(up, down)} "
                f"({len(self.encoder_widths)} encoder convs halve it, the upscales double it "
                f"{self._upscales} times); pick e.g. "
                f"{max(up, down) * max(1, round(self.resolution / max(up, down)))}"
            )

    @property
    def _upscales(self) -> int:
        # the encoder's upscale, each decoder block's, and the sub-pixel output's
        return len(self.decoder_widths) + 1 + int(self.subpixel_output)

    @property
    def latent_size(self) -> int:
        """Side L of the dense layer's reshaped output, in pixels."""
        return self.resolution // 2**self._upscales

    @property
    def encoder_size(self) -> int:
        """Side of the encoder's last conv feature map, in pixels."""
        return self.resolution // 2 ** len(self.encoder_widths)

    @property
    def out_channels(self) -> int:
        """Channels of the decoder's last conv: RGB, plus one when the mask is learned."""
        return 3 + int(self.learned_mask)

    def to_dict(self) -> dict[str, object]:
        """A JSON/YAML-friendly dict (tuples become lists); ``from_dict`` reads it back."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object], *, source: str = "model config") -> ModelConfig:
        """Build from a dict (e.g. a model card); unknown keys are a :class:`FaceswapError`."""
        return config_from_dict(cls, dict(data), source=source)


def config_fingerprint(cfg: ModelConfig) -> str:
    """A short hex digest of every key of ``cfg`` that changes the model (its shapes or what
    it computes, e.g. ``encoder_pixel_norm``).

    Two configs with equal fingerprints build models with identical ``state_dict`` keys and
    shapes; store it beside the weights and compare before loading to tell "this model was
    trained with another preset" apart from a corrupt file.
    """
    data = {k: v for k, v in cfg.to_dict().items() if k not in _COSMETIC_KEYS}
    blob = json.dumps(data, sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def scaled(cfg: ModelConfig, width: float = 1 / 32, **overrides: object) -> ModelConfig:
    """A copy of ``cfg`` with every channel width multiplied by ``width`` (at least 4).

    For tests and CPU demos: ``scaled(load_preset("original"), 1/32, resolution=32)`` keeps the
    architecture and makes it tiny. ``overrides`` replace any other key afterwards.
    """

    def w(c: int) -> int:
        return max(4, round(c * width))

    changes: dict[str, object] = {
        "encoder_widths": tuple(w(c) for c in cfg.encoder_widths),
        "decoder_widths": tuple(w(c) for c in cfg.decoder_widths),
        "bottleneck": w(cfg.bottleneck),
        "latent_channels": w(cfg.latent_channels),
        "encoder_upscale": w(cfg.encoder_upscale),
    }
    changes.update(overrides)
    return dataclasses.replace(cfg, **changes)  # type: ignore[arg-type]


def models_dir() -> Path:
    """The folder the named presets are read from (see the module docstring)."""
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "models"


def _scan_presets() -> Registry[Path]:
    registry: Registry[Path] = Registry("model preset")
    folder = models_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("*.yaml")):
            registry.add(path.stem, path)
    return registry


#: Named presets found in :func:`models_dir` (``name in PRESETS``, ``PRESETS.names()``).
PRESETS: Registry[Path] = _scan_presets()


def _preset_data(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """The keys of the preset file ``path``; ``base: NAME`` (a preset name, or a YAML path
    relative to this file) takes that preset's keys first and overrides the ones given, so
    a variant names only what it changes."""
    data = load_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise FaceswapError(f"{path}: base must be a preset name or a YAML path, got {base!r}")
    if base.endswith((".yaml", ".yml")) or "/" in base or os.sep in base:
        base_path = (path.parent / base).resolve()
        if not base_path.is_file():
            raise FaceswapError(f"{path}: base {base}: no such preset file")
    elif base in PRESETS:
        base_path = PRESETS.get(base)
    else:
        raise FaceswapError(
            f"{path}: base {base} is not a preset; choose from {', '.join(PRESETS.names())} "
            "or give a YAML path"
        )
    if base_path.resolve() in seen or base_path.resolve() == path.resolve():
        raise FaceswapError(f"{path}: base {base} leads back to itself; break the loop")
    inherited = _preset_data(base_path, (*seen, path.resolve()))
    inherited.pop("name", None)  # a variant is named after its own file
    changed = ", ".join(sorted(k for k in data if k not in ("name", "description"))) or "nothing"
    data.setdefault("description", f"{base} with {changed} changed")
    return {**inherited, **data}


def load_preset(name: str | Path) -> ModelConfig:
    """Load a preset by name (``tiny``, ``original``, ...) or from a YAML file path.

    Raises:
        FaceswapError: unknown name (the message lists the valid ones), missing or malformed
            file, an unknown key, or values that do not fit together.
    """
    text = str(name)
    if text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise FaceswapError(f"{path}: no such preset file; give a preset name or a YAML path")
        stem = path.stem
    else:
        if not PRESETS and not models_dir().is_dir():
            raise FaceswapError(
                f"no model presets found in {models_dir()}; set ${MODELS_DIR_ENV} to the "
                "faceswap 'models' folder"
            )
        path = PRESETS.get(text)
        stem = text
    data = _preset_data(path, ())
    data.setdefault("name", stem)
    try:
        return ModelConfig.from_dict(data, source=str(path))
    except FaceswapError as exc:
        if str(path) in str(exc):
            raise
        raise FaceswapError(f"{path}: {exc}") from None

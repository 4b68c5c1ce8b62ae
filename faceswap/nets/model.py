"""The face-swap autoencoder: one shared encoder, a decoder per identity (or LIAE's shared one).

Models are plain ``nn.Module``s built from a :class:`ModelConfig`; they do no file I/O. State
dict keys are fixed by the module attribute names below (``encoder.*``, ``decoder_a.*``,
``decoder_b.*`` for ``df``; ``encoder.*``, ``inter_ab.*``, ``inter_b.*``, ``decoder.*`` for
``liae``), so weights saved by one version load in the next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from faceswap.errors import FaceswapError
from faceswap.nets.blocks import (
    DenseToMap,
    DownBlock,
    OutputConv,
    ResBlock,
    UpscaleBlock,
    icnr_,
    init_conv,
    pixel_norm,
)
from faceswap.nets.config import ModelConfig, config_fingerprint
from faceswap.registry import Registry

Side = Literal["a", "b"]
Direction = Literal["a2b", "b2a"]


@dataclass(frozen=True)
class DecoderOutput:
    """What a decoder returns.

    Attributes:
        rgb: (N, 3, R, R) float in [0, 1] (sigmoid), RGB.
        mask: (N, 1, R, R) float in [0, 1] (sigmoid) when the model learns a mask, else None.
    """

    rgb: torch.Tensor
    mask: torch.Tensor | None = None


class ConvEncoder(nn.Sequential):
    """Stride-2 conv stack: (N, C_in, R, R) → (N, widths[-1], R/2^k, R/2^k)."""

    def __init__(self, cfg: ModelConfig) -> None:
        layers = []
        c_in = cfg.in_channels
        for c_out in cfg.encoder_widths:
            layers.append(DownBlock(c_in, c_out, cfg.encoder_kernel, cfg.negative_slope))
            c_in = c_out
        super().__init__(*layers)


class Encoder(nn.Module):
    """The ``df`` encoder: conv stack + dense bottleneck + upscale.

    Shapes: (N, C_in, R, R) → z (N, encoder_upscale, 2L, 2L).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.convs = ConvEncoder(cfg)
        self.dense = _dense_to_map(cfg)
        self.pixel_norm = cfg.encoder_pixel_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.convs(x)
        return self.dense(pixel_norm(features) if self.pixel_norm else features)


def _dense_to_map(cfg: ModelConfig) -> DenseToMap:
    return DenseToMap(
        in_features=cfg.encoder_widths[-1] * cfg.encoder_size**2,
        bottleneck=cfg.bottleneck,
        channels=cfg.latent_channels,
        size=cfg.latent_size,
        c_up=cfg.encoder_upscale,
        kernel=cfg.decoder_kernel,
        negative_slope=cfg.negative_slope,
        icnr=cfg.icnr_init,
    )


class Decoder(nn.Module):
    """Upscale stack + output conv: (N, c_in, 2L, 2L) → DecoderOutput at (R, R)."""

    def __init__(self, cfg: ModelConfig, c_in: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for c_out in cfg.decoder_widths:
            blocks.append(
                UpscaleBlock(c_in, c_out, cfg.decoder_kernel, cfg.negative_slope, cfg.icnr_init)
            )
            blocks.extend(
                ResBlock(c_out, cfg.decoder_kernel, cfg.negative_slope)
                for _ in range(cfg.decoder_res_blocks)
            )
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.subpixel = cfg.subpixel_output
        self.out = OutputConv(
            c_in,
            cfg.out_channels * (4 if self.subpixel else 1),
            cfg.output_kernel,
            padding=cfg.output_kernel // 2,
        )
        init_conv(self.out, 1.0)  # linear output before the sigmoid
        if self.subpixel and cfg.icnr_init:
            icnr_(self.out.weight, 2, 1.0)  # the four sub-pixels start equal: no checkerboard
        self.learned_mask = cfg.learned_mask

    def forward(self, z: torch.Tensor) -> DecoderOutput:
        y = self.out(self.blocks(z))
        if self.subpixel:
            y = F.pixel_shuffle(y, 2)
        y = torch.sigmoid(y)
        if self.learned_mask:
            return DecoderOutput(rgb=y[:, :3], mask=y[:, 3:4])
        return DecoderOutput(rgb=y)


class FaceSwapModel(nn.Module):
    """Base class: ``encode`` / ``decode`` / ``swap`` / ``forward`` for both arch families.

    Inputs are (N, 3, R, R) float RGB in [0, 1] with R = ``config.resolution``.
    """

    config: ModelConfig

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Face code ``z`` of a batch of aligned faces (either identity)."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor, side: Side, hold_code: bool = False) -> DecoderOutput:
        """Draw face ``side`` ("a" or "b") from the code ``z`` returned by :meth:`encode`.

        ``hold_code`` detaches what the decoder reads (for LIAE, after the intermediate
        blocks), so gradients reach the decoder alone: DeepFaceLab's "no code grad" pass.
        """
        raise NotImplementedError

    def check_morph(self, amount: float) -> None:
        """Refuse a :meth:`morph` this model cannot draw: a df model, or an amount outside
        [0, 1]."""
        if self.config.arch != "liae":
            raise FaceswapError(
                f"--morph blends LIAE's intermediate codes, and model '{self.config.name}' is "
                f"{self.config.arch}: use a liae preset, or drop --morph"
            )
        if not 0.0 <= amount <= 1.0:
            raise FaceswapError(f"--morph must be in [0, 1], got {amount}")

    def morph(self, z: torch.Tensor, side: Side, amount: float) -> DecoderOutput:
        """Draw the code ``z`` part of the way toward face ``side`` (DeepFaceLab's morph
        factor): 1 is ``decode(z, side)``, 0 the other side's drawing. LIAE only."""
        self.check_morph(amount)
        raise NotImplementedError

    def swap(self, x: torch.Tensor, direction: Direction = "a2b") -> DecoderOutput:
        """Encode faces of one identity and decode them as the other.

        ``a2b`` turns faces of A into B (the usual convert direction); ``b2a`` the reverse.
        """
        if direction not in ("a2b", "b2a"):
            raise FaceswapError(f"unknown swap direction '{direction}'; choose from a2b, b2a")
        return self.decode(self.encode(x), "b" if direction == "a2b" else "a")

    def forward(
        self,
        x_a: torch.Tensor,
        x_b: torch.Tensor,
        swap: bool = False,
        swap_held: bool = False,
    ) -> tuple[DecoderOutput, ...]:
        """Reconstruct both identities (the training pass): (A→A, B→B).

        The two batches go through the shared encoder together (one larger matmul per layer,
        better hardware use); nothing in the encoder mixes samples, so this equals encoding
        them apart. Then, for DeepFaceLab's style powers, A's faces drawn as B from the same
        codes (what ``swap(x_a, "a2b")`` gives): with ``swap`` one output whose gradients
        reach everything that drew it, with ``swap_held`` one whose gradients reach only
        the decoder (``hold_code``), in that order after the two.
        """
        n_a = x_a.shape[0]
        z = self.encode(torch.cat([x_a, x_b], dim=0))
        outputs = (self.decode(z[:n_a], "a"), self.decode(z[n_a:], "b"))
        if swap:
            outputs += (self.decode(z[:n_a], "b"),)
        if swap_held:
            outputs += (self.decode(z[:n_a], "b", hold_code=True),)
        return outputs

    def fingerprint(self) -> str:
        """:func:`config_fingerprint` of this model's config."""
        return config_fingerprint(self.config)

    def _check_side(self, side: str) -> None:
        if side not in ("a", "b"):
            raise FaceswapError(f"unknown decoder side '{side}'; choose from a, b")

    def _check_input(self, x: torch.Tensor) -> None:
        r = self.config.resolution
        if x.ndim != 4 or x.shape[1] != self.config.in_channels or x.shape[-2:] != (r, r):
            raise FaceswapError(
                f"model '{self.config.name}' takes (N, {self.config.in_channels}, {r}, {r}) "
                f"faces, got {tuple(x.shape)}; resize the crops to {r} px"
            )


class DFModel(FaceSwapModel):
    """Deepfakes/DFL-DF layout: shared encoder (with the dense bottleneck), decoders A and B."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder_a = Decoder(cfg, cfg.encoder_upscale)
        self.decoder_b = Decoder(cfg, cfg.encoder_upscale)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return self.encoder(x)

    def decode(self, z: torch.Tensor, side: Side, hold_code: bool = False) -> DecoderOutput:
        self._check_side(side)
        return (self.decoder_a if side == "a" else self.decoder_b)(z.detach() if hold_code else z)


class LIAEModel(FaceSwapModel):
    """DeepFaceLab LIAE layout: conv encoder, inter_AB and inter_B dense blocks, one decoder.

    ``decode(z, "a")`` draws from concat(inter_AB(z), inter_AB(z)) and ``decode(z, "b")`` from
    concat(inter_B(z), inter_AB(z)): inter_AB carries what both identities share (pose,
    expression, light), inter_B what only B has, so a face of A decoded as "b" becomes B.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = ConvEncoder(cfg)
        self.inter_ab = _dense_to_map(cfg)
        self.inter_b = _dense_to_map(cfg)
        self.decoder = Decoder(cfg, 2 * cfg.encoder_upscale)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        z = self.encoder(x)
        return pixel_norm(z) if self.config.encoder_pixel_norm else z

    def decode(self, z: torch.Tensor, side: Side, hold_code: bool = False) -> DecoderOutput:
        self._check_side(side)
        ab = self.inter_ab(z)
        first = ab if side == "a" else self.inter_b(z)
        code = torch.cat([first, ab], dim=1)
        return self.decoder(code.detach() if hold_code else code)

    def morph(self, z: torch.Tensor, side: Side, amount: float) -> DecoderOutput:
        self._check_side(side)
        self.check_morph(amount)
        ab = self.inter_ab(z)
        b = self.inter_b(z)
        # What sets the identity is the first half of the decoder's input: inter_B's for B,
        # inter_AB's for A. torch.lerp is exact at 0 and 1.
        start, end = (ab, b) if side == "b" else (b, ab)
        return self.decoder(torch.cat([torch.lerp(start, end, amount), ab], dim=1))


#: Architecture family name → model class.
ARCH_FAMILIES: Registry[Callable[[ModelConfig], FaceSwapModel]] = Registry("model arch")
ARCH_FAMILIES.add("df", DFModel)
ARCH_FAMILIES.add("liae", LIAEModel)


def build_model(cfg: ModelConfig) -> FaceSwapModel:
    """A freshly initialised model for ``cfg`` on the CPU, in train mode.

    Use ``torch.manual_seed`` before calling it for reproducible weights.
    """
    return ARCH_FAMILIES.get(cfg.arch)(cfg)


@dataclass(frozen=True)
class ModelSummary:
    """What a config builds, for choosing a preset or checking an edited one.

    Attributes:
        name, arch, resolution: from the config.
        parts: weights of each top-level part (``encoder``, ``decoder_a``...), in order.
        params: all weights.
        gflop_per_face: forward GFLOP (matmuls and convolutions) for one face of each side
            (the training pass) per face; a training step costs about 3x that per face.
        train_bytes: weights, their gradients and Adam's two moments in float32 (what
            training holds besides activations).
        activation_bytes: what the training forward keeps for backward for one face of each
            side (float32; each tensor once, weights not counted): a step at batch ``B`` a
            side holds about ``train_bytes + B * activation_bytes`` (under bf16 autocast the
            activations were 52 % of that and a bf16 copy of the weights, half their size,
            came on top, for ``original`` and ``dfl-h128``).
    """

    name: str
    arch: str
    resolution: int
    parts: dict[str, int]
    params: int
    gflop_per_face: float
    train_bytes: int
    activation_bytes: int = 0

    def training_bytes(self, batch_size: int) -> int:
        """Weights, gradients, Adam's moments and activations at ``batch_size`` a side."""
        return self.train_bytes + batch_size * self.activation_bytes


def summarize_model(cfg: ModelConfig) -> ModelSummary:
    """:class:`ModelSummary` of ``cfg``, built on the CPU (one forward for the FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(cfg).eval()
    parts = {
        name: sum(p.numel() for p in part.parameters()) for name, part in model.named_children()
    }
    params = sum(parts.values())
    x = torch.zeros(1, cfg.in_channels, cfg.resolution, cfg.resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, x)
    return ModelSummary(
        activation_bytes=_saved_for_backward(model.train(), x),
        name=cfg.name,
        arch=cfg.arch,
        resolution=cfg.resolution,
        parts=parts,
        params=params,
        gflop_per_face=counter.get_total_flops() / 2 / 1e9,
        train_bytes=params * 4 * 4,
    )


def _saved_for_backward(model: FaceSwapModel, x: torch.Tensor) -> int:
    """Bytes of the tensors a training forward of ``model(x, x)`` and its default loss
    (masked SSIM + L1, :class:`~faceswap.nets.losses.ReconstructionLoss`) save for
    backward, each storage once and the weights left out (counted with the parameters)."""
    from faceswap.nets.losses import ReconstructionLoss

    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    loss = ReconstructionLoss()
    mask = torch.ones_like(x[:, :1])
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        # Kept until counted: a graph let go frees what it saved, and a later tensor in the
        # same memory would be counted in its place (the total then varied run to run).
        kept = [
            loss(out.rgb, x, mask=mask, priority=mask, pred_mask=out.mask) for out in model(x, x)
        ]
    total = sum(saved.values())
    del kept
    return total

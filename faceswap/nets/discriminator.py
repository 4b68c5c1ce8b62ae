"""PatchGAN discriminator and the GAN objectives (``GAN_MODES``).

The generator and discriminator losses are separate functions so the training loop runs two
explicit steps: ``discriminator_loss(mode, D(real), D(fake.detach()))`` (+ the gradient
penalty for ``wgan-gp``) on D's optimiser, then ``generator_loss(mode, D(fake))`` on G's.

Modes:
    ``off``: no adversarial term (both losses are 0, no gradient).
    ``bce``: the standard non-saturating GAN with binary cross-entropy on logits:
        D minimises BCE(D(real), 1) + BCE(D(fake), 0); G minimises BCE(D(fake), 1).
    ``hinge``: D minimises relu(1 - D(real)) + relu(1 + D(fake)); G minimises -D(fake).
    ``wgan-gp``: a Wasserstein critic: D minimises D(fake) - D(real) (+ the gradient penalty
        from :func:`gradient_penalty`, and a small drift term keeping D(real) near 0); G
        minimises -D(fake). Use it with ``norm="instance"`` or ``"none"`` (spectral norm
        already bounds the Lipschitz constant, which fights the penalty).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from faceswap.errors import FaceswapError
from faceswap.registry import Registry

NORMS: tuple[str, ...] = ("spectral", "instance", "none")


@dataclass(frozen=True)
class DiscriminatorConfig:
    """PatchGAN layout.

    Attributes:
        widths: channels of each stride-2 conv (kernel 4); len(widths) = k halves the input,
            so each logit sees a patch of about 4 * 2**k px (3 layers: 34 px receptive field
            after the final conv).
        norm: ``spectral`` (spectral norm on every conv), ``instance`` (instance norm after
            every conv but the first) or ``none``.
        negative_slope: LeakyReLU slope.
    """

    widths: tuple[int, ...] = (64, 128, 256)
    norm: str = "spectral"
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        if isinstance(self.widths, list):
            object.__setattr__(self, "widths", tuple(self.widths))
        if self.norm not in NORMS:
            raise FaceswapError(
                f"unknown discriminator norm '{self.norm}'; choose from {', '.join(NORMS)}"
            )
        if not self.widths or any(w < 1 for w in self.widths):
            raise FaceswapError(f"discriminator widths must be positive, got {self.widths}")


class PatchDiscriminator(nn.Module):
    """PatchGAN: (N, C, H, W) images in [0, 1] → (N, 1, H/2^k - 1, W/2^k - 1) patch logits.

    Each logit judges one overlapping patch as real or fake (Isola et al. 2017), which keeps
    the critic about texture and detail rather than global shape.
    """

    def __init__(self, config: DiscriminatorConfig | None = None, in_channels: int = 3) -> None:
        super().__init__()
        self.config = cfg = config or DiscriminatorConfig()
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c_out in enumerate(cfg.widths):
            normed = cfg.norm == "instance" and i > 0  # pix2pix: no norm on the first layer
            conv = nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not normed)
            layers.append(self._wrap(conv))
            if normed:
                layers.append(nn.InstanceNorm2d(c_out, affine=True))
            layers.append(nn.LeakyReLU(cfg.negative_slope, inplace=True))
            c_in = c_out
        layers.append(self._wrap(nn.Conv2d(c_in, 1, 4, stride=1, padding=1)))
        self.net = nn.Sequential(*layers)

    def _wrap(self, conv: nn.Conv2d) -> nn.Module:
        if self.config.norm == "spectral":
            return nn.utils.parametrizations.spectral_norm(conv)
        return conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Centre the inputs: [0, 1] images → [-1, 1], the range GAN critics are tuned for.
        return self.net(x * 2 - 1)


class CodeDiscriminator(nn.Module):
    """Tells the encoder's codes of A's faces from B's: DeepFaceLab's true-face critic.

    (N, C, S, S) codes → (N,) logits: 3x3 stride-2 convs (LeakyReLU 0.1) until the map is
    2x2 or smaller, the mean over it, then a linear layer. Trained to call A's codes real
    (1) and B's fake (0), while the encoder learns to make B's codes pass for A's; the
    codes of the two faces then share one distribution, so B's decoder, fed A's codes at
    convert time, gets the kind of input it was trained on and draws a face more like B.
    """

    def __init__(self, channels: int, size: int, width: int = 256) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, side, depth = channels, size, 0
        while depth == 0 or side > 2:
            c_out = width * min(2**depth, 4)
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.1)]
            c_in, side, depth = c_out, (side + 1) // 2, depth + 1
        self.net = nn.Sequential(*layers)
        self.out = nn.Linear(c_in, 1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(codes).mean(dim=(2, 3))).squeeze(1)


@dataclass(frozen=True)
class GanMode:
    """One adversarial objective: G and D losses from logits, and whether it wants a GP."""

    name: str
    generator: Callable[[torch.Tensor], torch.Tensor]
    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    uses_gradient_penalty: bool = False

    @property
    def enabled(self) -> bool:
        return self.name != "off"


#: Name → :class:`GanMode`: ``off``, ``bce``, ``hinge``, ``wgan-gp``.
GAN_MODES: Registry[GanMode] = Registry("GAN mode")


def _zero_g(d_fake: torch.Tensor) -> torch.Tensor:
    return d_fake.new_zeros(())


def _zero_d(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    return d_real.new_zeros(())


def _bce_g(d_fake: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


def _bce_d(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    real = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
    fake = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    return real + fake


def _hinge_d(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()


def _critic_g(d_fake: torch.Tensor) -> torch.Tensor:
    return -d_fake.mean()


WGAN_DRIFT = 1e-3  # Karras et al. 2018: keeps the critic's output from drifting far from 0


def _wgan_d(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    return d_fake.mean() - d_real.mean() + WGAN_DRIFT * d_real.square().mean()


GAN_MODES.add("off", GanMode("off", _zero_g, _zero_d))
GAN_MODES.add("bce", GanMode("bce", _bce_g, _bce_d))
GAN_MODES.add("hinge", GanMode("hinge", _critic_g, _hinge_d))
GAN_MODES.add("wgan-gp", GanMode("wgan-gp", _critic_g, _wgan_d, uses_gradient_penalty=True))


def generator_loss(mode: str, d_fake: torch.Tensor) -> torch.Tensor:
    """Adversarial loss for the generator given D's logits on fakes (not detached)."""
    return GAN_MODES.get(mode).generator(d_fake)


def discriminator_loss(mode: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """D's loss given logits on real images and on (detached) fakes.

    For ``wgan-gp`` add :func:`gradient_penalty` to it.
    """
    return GAN_MODES.get(mode).discriminator(d_real, d_fake)


def gradient_penalty(
    disc: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    weight: float = 10.0,
    one_sided: bool = False,
) -> torch.Tensor:
    """WGAN-GP gradient penalty (Gulrajani et al. 2017) on random interpolates.

    For each sample a uniform ``eps`` in [0, 1] picks ``x = eps * real + (1 - eps) * fake``;
    the penalty is ``weight * mean((||grad_x D(x)|| - 1)^2)`` (two-sided, the paper's), or
    ``weight * mean(relu(||grad_x D(x)|| - 1)^2)`` when ``one_sided`` (only gradients steeper
    than 1 are penalised). The norm is over all of a sample's pixels and channels, of the
    gradient of the sum of its patch logits. The graph is kept (``create_graph``) so the
    result can be back-propagated into D.

    Args:
        disc: the critic.
        real, fake: (N, C, H, W) batches; ``fake`` should be detached from the generator.
        weight: lambda, 10 by default.
        one_sided: penalise only norms above 1.
    """
    n = real.shape[0]
    eps = torch.rand(n, 1, 1, 1, device=real.device, dtype=real.dtype)
    x = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = disc(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)
    gap = norms - 1
    if one_sided:
        gap = F.relu(gap)
    return weight * gap.square().mean()

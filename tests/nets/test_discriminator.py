"""PatchGAN and the GAN objectives: finite losses and gradients, the WGAN-GP penalty."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from faceswap.errors import FaceswapError
from faceswap.nets.discriminator import (
    GAN_MODES,
    DiscriminatorConfig,
    PatchDiscriminator,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
)


@pytest.mark.parametrize("norm", ["spectral", "instance", "none"])
def test_patch_logits_shape(norm: str) -> None:
    torch.manual_seed(0)
    disc = PatchDiscriminator(DiscriminatorConfig(widths=(4, 8, 8), norm=norm))
    out = disc(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 1, 3, 3)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("mode", GAN_MODES.names())
def test_each_mode_gives_finite_losses_and_gradients(mode: str) -> None:
    torch.manual_seed(0)
    disc = PatchDiscriminator(DiscriminatorConfig(widths=(4, 8), norm="instance"))
    gen = nn.Conv2d(3, 3, 3, padding=1)
    real = torch.rand(2, 3, 32, 32)
    fake = torch.sigmoid(gen(torch.rand(2, 3, 32, 32)))

    d_loss = discriminator_loss(mode, disc(real), disc(fake.detach()))
    if GAN_MODES.get(mode).uses_gradient_penalty:
        d_loss = d_loss + gradient_penalty(disc, real, fake)
    g_loss = generator_loss(mode, disc(fake))
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    if not GAN_MODES.get(mode).enabled:
        assert float(d_loss) == 0 and float(g_loss) == 0
        return
    d_grads = torch.autograd.grad(d_loss, list(disc.parameters()), allow_unused=False)
    assert all(torch.isfinite(g).all() for g in d_grads)
    assert sum(float(g.abs().sum()) for g in d_grads) > 0
    g_grads = torch.autograd.grad(g_loss, list(gen.parameters()))
    assert all(torch.isfinite(g).all() for g in g_grads)
    assert sum(float(g.abs().sum()) for g in g_grads) > 0


def test_bce_discriminator_prefers_separated_logits() -> None:
    good = discriminator_loss("bce", torch.full((2, 1, 3, 3), 5.0), torch.full((2, 1, 3, 3), -5.0))
    bad = discriminator_loss("bce", torch.full((2, 1, 3, 3), -5.0), torch.full((2, 1, 3, 3), 5.0))
    assert float(good) < 0.1 < float(bad)
    assert float(generator_loss("bce", torch.full((1, 1, 2, 2), 5.0))) < 0.01


def gp(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, **kwargs: object) -> float:
    return float(gradient_penalty(critic, real, fake, **kwargs).detach())  # type: ignore[arg-type]


class LinearCritic(nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1)


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic() -> None:
    torch.manual_seed(0)
    w = torch.randn(3, 8, 8)
    real, fake = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    unit = LinearCritic(w / w.norm())
    assert gp(unit, real, fake) == pytest.approx(0.0, abs=1e-8)
    steep = LinearCritic(3 * w / w.norm())
    # ||grad|| = 3: two-sided penalty 10 * (3 - 1)^2 = 40.
    assert gp(steep, real, fake) == pytest.approx(40.0, rel=1e-4)
    flat = LinearCritic(0.5 * w / w.norm())
    assert gp(flat, real, fake) == pytest.approx(2.5, rel=1e-4)
    assert gp(flat, real, fake, one_sided=True) == pytest.approx(0.0)
    assert gp(steep, real, fake, weight=1.0, one_sided=True) == (pytest.approx(4.0, rel=1e-4))


def test_gradient_penalty_backpropagates_into_the_critic() -> None:
    torch.manual_seed(0)
    disc = PatchDiscriminator(DiscriminatorConfig(widths=(4, 8), norm="none"))
    penalty = gradient_penalty(disc, torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16))
    assert float(penalty.detach()) > 0
    penalty.backward()
    # Biases do not change a piecewise-linear net's input gradient; every weight does.
    weights = [p for p in disc.parameters() if p.ndim > 1]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in weights)
    assert all(float(p.grad.abs().sum()) > 0 for p in weights)


def test_unknown_mode_and_norm_are_clear_errors() -> None:
    with pytest.raises(FaceswapError, match="choose from bce, hinge, off, wgan-gp"):
        generator_loss("lsgan", torch.zeros(1))
    with pytest.raises(FaceswapError, match="choose from spectral, instance, none"):
        DiscriminatorConfig(norm="batch")

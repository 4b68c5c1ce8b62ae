"""AdaBelief against its formula; the trainer's optimiser choice and resume rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from faceswap.errors import FaceswapError
from faceswap.train.loop import run_train
from faceswap.train.optim import AdaBelief

from .test_loop import _cfg


def _reference(p: torch.Tensor, grads: list[torch.Tensor], lr: float, b1: float, b2: float,
               eps: float) -> torch.Tensor:  # fmt: skip
    """AdaBelief written out for one tensor, step by step (Zhuang et al. 2020, Alg. 2)."""
    p = p.clone().double()
    m = torch.zeros_like(p)
    s = torch.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = g.double()
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * (g - m) ** 2 + eps
        m_hat, s_hat = m / (1 - b1**t), s / (1 - b2**t)
        p = p - lr * m_hat / (s_hat.sqrt() + eps)
    return p


@pytest.mark.parametrize("channels_last", [False, True])
def test_adabelief_follows_its_formula(channels_last: bool) -> None:
    torch.manual_seed(0)
    weight = torch.randn(4, 3, 5, 5)
    if channels_last:
        weight = weight.contiguous(memory_format=torch.channels_last)
    bias = torch.randn(4)
    params = [torch.nn.Parameter(weight.clone()), torch.nn.Parameter(bias.clone())]
    opt = AdaBelief(params, lr=1e-2, betas=(0.5, 0.999), eps=1e-16)
    history: list[list[torch.Tensor]] = [[], []]
    for _ in range(5):
        for i, p in enumerate(params):
            p.grad = torch.randn_like(p)
            history[i].append(p.grad.clone())
        opt.step()
    for p, start, grads in zip(params, (weight, bias), history, strict=True):
        expected = _reference(start, grads, 1e-2, 0.5, 0.999, 1e-16)
        torch.testing.assert_close(p.detach().double(), expected, rtol=1e-5, atol=1e-6)
    assert params[0].is_contiguous(memory_format=torch.channels_last) == channels_last
    state = opt.state[params[0]]
    assert state["exp_avg_var"].stride() == params[0].stride()  # the moment keeps the layout
    assert int(state["step"]) == 5
    with pytest.raises(ValueError, match="invalid AdaBelief"):
        AdaBelief(params, lr=0)


def test_training_with_adabelief_resumes_with_it_and_refuses_a_switch(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    from faceswap.train import checkpoint as ckpt

    model = tmp_path / "m"
    run_train(_cfg(face_dirs, model, iterations=3, optimizer="adabelief"))
    assert ckpt.read_card(model)["training"]["optimizer"] == "adabelief"
    resumed = run_train(_cfg(face_dirs, model, iterations=5, resume=True))  # keeps its own
    assert resumed.iteration == 5
    assert ckpt.read_card(model)["training"]["optimizer"] == "adabelief"
    with pytest.raises(FaceswapError, match="trains with --optimizer adabelief, not adam"):
        run_train(_cfg(face_dirs, model, iterations=6, resume=True, optimizer="adam"))
    with pytest.raises(FaceswapError, match="unknown optimizer 'sgd'"):
        _cfg(face_dirs, model, optimizer="sgd")

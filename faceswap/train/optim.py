"""Optimisers beyond torch's own: AdaBelief, DeepFaceLab's default."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch


class AdaBelief(torch.optim.Optimizer):
    """AdaBelief (Zhuang et al. 2020): Adam whose second moment tracks the variance of the
    gradient around its running mean, ``(g - m)^2``, instead of ``g^2``: steps are large
    where the gradient is consistent and small where it is noisy. DeepFaceLab trains its
    SAEHD models with it by default.

    Per parameter: ``m = b1 m + (1 - b1) g``; ``s = b2 s + (1 - b2) (g - m)^2 + eps``;
    ``p -= lr * m / (1 - b1^t) / (sqrt(s / (1 - b2^t)) + eps)``. The moments keep their
    parameter's memory layout (channels-last stays channels-last), and all parameters of a
    group step in a few multi-tensor (``foreach``) kernels.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-16,
    ) -> None:
        if not lr > 0 or not 0 <= betas[0] < 1 or not 0 <= betas[1] < 1 or eps < 0:
            raise ValueError(f"invalid AdaBelief settings lr={lr}, betas={betas}, eps={eps}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            params, grads, means, beliefs, steps = [], [], [], [], []
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_var"] = torch.zeros_like(
                        param, memory_format=torch.preserve_format
                    )
                state["step"] += 1
                params.append(param)
                grads.append(param.grad)
                means.append(state["exp_avg"])
                beliefs.append(state["exp_avg_var"])
                steps.append(int(state["step"]))
            if not params:
                continue
            torch._foreach_lerp_(means, grads, 1 - b1)
            surprise = torch._foreach_sub(grads, means)
            torch._foreach_mul_(beliefs, b2)
            torch._foreach_addcmul_(beliefs, surprise, surprise, value=1 - b2)
            torch._foreach_add_(beliefs, group["eps"])
            # lr/bc1 * m / (sqrt(s/bc2) + eps) = (lr sqrt(bc2)/bc1) * m / (sqrt(s) + eps sqrt(bc2)):
            # the same step with one pass over the weights less.
            root_bc2 = [math.sqrt(1 - b2**t) for t in steps]
            denom = torch._foreach_sqrt(beliefs)
            torch._foreach_add_(denom, [group["eps"] * r for r in root_bc2])
            scales = [-group["lr"] * r / (1 - b1**t) for r, t in zip(root_bc2, steps, strict=True)]
            torch._foreach_addcdiv_(params, means, denom, scales)
        return loss

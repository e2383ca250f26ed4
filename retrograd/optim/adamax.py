"""Adamax (Adam with the infinity norm)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..tensor import Tensor
from .adam import _check
from .optimizer import _adam_options, _init_state, _lerp_, _PerParamOptimizer, _step_tensor

__all__ = ["Adamax"]


class Adamax(_PerParamOptimizer):
    """``torch.optim.Adamax``: ``u = max(beta2*u, |g| + eps)``; ``p -= lr/(1-b1^t) * m / u``.

    >>> import retrograd as rg
    >>> p = rg.nn.Parameter(rg.tensor([1.0]))
    >>> opt = rg.optim.Adamax([p], lr=0.1)
    >>> p.grad = rg.tensor([0.5]); opt.step(); round(p.item(), 4)
    0.9
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
    ) -> None:
        _check(lr, eps, betas, weight_decay)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            capturable=capturable,
        )
        super().__init__(params, defaults)

    def _options(self, group: dict) -> tuple:
        return _adam_options(group)  # Adamax has no decoupled weight decay: always False

    def _init_param_state(self, state: dict, data: np.ndarray, group: dict) -> None:
        _init_state(state, data, "exp_avg", "exp_inf")

    def _update(self, p: Tensor, state: dict, opts: tuple, s1: np.ndarray, s2: np.ndarray):
        lr, beta1, beta2, eps, wd, _, maximize = opts
        step = _step_tensor(state)
        g = self._grad_of(p, maximize, wd, s2)
        m, u = state["exp_avg"]._data, state["exp_inf"]._data
        _lerp_(m, g, 1.0 - beta1, s1)
        u *= beta2
        np.abs(g, out=s1)
        s1 += eps
        np.maximum(u, s1, out=u)
        clr = lr / (1 - beta1**step)
        np.multiply(m, -clr, out=s1)
        s1 /= u
        p._data += s1

"""Adam and AdamW (Adam with decoupled weight decay)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..tensor import Tensor
from .optimizer import _adam_moments_, _adam_options, _init_state, _PerParamOptimizer, _step_tensor

__all__ = ["Adam", "AdamW"]


def _check(lr, eps, betas, weight_decay):
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


class Adam(_PerParamOptimizer):
    """``torch.optim.Adam``: ``p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``.

    Bias correction and the placement of ``eps`` (after the square root) follow PyTorch, so
    the first step moves each weight by about ``lr``. All-zero gradients give a zero update;
    a NaN or inf gradient propagates into the weights exactly as in PyTorch (no check).

    >>> import retrograd as rg
    >>> p = rg.nn.Parameter(rg.tensor([1.0]))
    >>> opt = rg.optim.Adam([p], lr=1e-3)
    >>> p.grad = rg.tensor([0.5]); opt.step(); round(1.0 - p.item(), 6)
    0.001
    """

    _decoupled_default = False

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        _check(lr, eps, betas, weight_decay)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    def _options(self, group: dict) -> tuple:
        return (*_adam_options(group), group["amsgrad"])

    def _init_param_state(self, state: dict, data: np.ndarray, group: dict) -> None:
        amsgrad = ("max_exp_avg_sq",) if group["amsgrad"] else ()
        _init_state(state, data, "exp_avg", "exp_avg_sq", *amsgrad)

    def _update(self, p: Tensor, state: dict, opts: tuple, s1: np.ndarray, s2: np.ndarray):
        lr, beta1, beta2, eps, wd, decoupled, maximize, amsgrad = opts
        step = _step_tensor(state)
        g = self._decayed_grad(p, lr, wd, decoupled, maximize, s2)
        m = state["exp_avg"]._data
        v = state["exp_avg_sq"]._data
        _adam_moments_(m, v, g, beta1, beta2, s1)
        bias_correction1 = 1.0 - beta1**step
        bias_correction2 = 1.0 - beta2**step
        step_size = lr / bias_correction1
        bc2_sqrt = math.sqrt(bias_correction2)
        if amsgrad:
            vmax = state["max_exp_avg_sq"]._data
            np.maximum(vmax, v, out=vmax)
            np.sqrt(vmax, out=s1)
        else:
            np.sqrt(v, out=s1)
        s1 /= bc2_sqrt
        s1 += eps
        np.multiply(m, -step_size, out=s2)
        s2 /= s1
        p._data += s2


class AdamW(Adam):
    """``torch.optim.AdamW``: Adam with decoupled weight decay, ``p *= 1 - lr*wd`` before the
    Adam update (default ``weight_decay=1e-2``). With ``weight_decay=0`` it is Adam exactly.

    >>> import retrograd as rg
    >>> p = rg.nn.Parameter(rg.tensor([1.0]))
    >>> opt = rg.optim.AdamW([p], lr=0.1, weight_decay=0.5)
    >>> p.grad = rg.tensor([0.0]); opt.step(); p.item()
    0.949999988079071
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )

    def __setstate__(self, state):
        self.__dict__.update(state)
        for g in self.param_groups:
            g["decoupled_weight_decay"] = True

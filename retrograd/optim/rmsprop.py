"""RMSprop (optionally centered, with momentum)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..tensor import Tensor
from .optimizer import _ema_sq_, _init_state, _lerp_, _PerParamOptimizer, _step_tensor

__all__ = ["RMSprop"]


class RMSprop(_PerParamOptimizer):
    """``torch.optim.RMSprop``: ``v = alpha*v + (1-alpha)*g^2``; ``p -= lr * g / (sqrt(v) + eps)``
    (``centered`` subtracts the squared running mean of ``g`` inside the root; ``momentum``
    keeps a buffer of the scaled steps).

    >>> import retrograd as rg
    >>> p = rg.nn.Parameter(rg.tensor([1.0]))
    >>> opt = rg.optim.RMSprop([p], lr=0.01)
    >>> p.grad = rg.tensor([2.0]); opt.step(); round(p.item(), 4)
    0.9
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            alpha=alpha,
            eps=eps,
            centered=centered,
            weight_decay=weight_decay,
            capturable=capturable,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)

    def _options(self, group: dict) -> tuple:
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        wd, momentum = float(group["weight_decay"]), float(group["momentum"])
        return lr, alpha, eps, wd, momentum, group["centered"], group["maximize"]

    def _init_param_state(self, state: dict, data: np.ndarray, group: dict) -> None:
        momentum = ("momentum_buffer",) if float(group["momentum"]) > 0 else ()
        centered = ("grad_avg",) if group["centered"] else ()
        _init_state(state, data, "square_avg", *momentum, *centered)

    def _update(self, p: Tensor, state: dict, opts: tuple, s1: np.ndarray, s2: np.ndarray):
        lr, alpha, eps, wd, momentum, centered, maximize = opts
        data = p._data
        _step_tensor(state)
        g = self._grad_of(p, maximize, wd, s2)
        sq = state["square_avg"]._data
        _ema_sq_(sq, g, alpha, s1)
        if centered:
            ga = state["grad_avg"]._data
            _lerp_(ga, g, 1.0 - alpha, s1)
            np.multiply(ga, -1.0, out=s1)
            s1 *= ga
            s1 += sq
            np.sqrt(s1, out=s1)
        else:
            np.sqrt(sq, out=s1)
        s1 += eps
        if momentum > 0:
            buf = state["momentum_buffer"]._data
            buf *= momentum
            np.divide(g, s1, out=s1)
            buf += s1
            np.multiply(buf, -lr, out=s1)
            data += s1
        else:
            np.multiply(g, -lr, out=s2)
            s2 /= s1
            data += s2

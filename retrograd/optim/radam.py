"""RAdam (rectified Adam)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..tensor import Tensor
from .adam import _check
from .optimizer import _adam_moments_, _adam_options, _init_state, _PerParamOptimizer, _step_tensor

__all__ = ["RAdam"]


class RAdam(_PerParamOptimizer):
    """``torch.optim.RAdam`` (Liu et al. 2019): an SGD-with-momentum step while the variance
    estimate is unreliable (``rho_t <= 5``), then Adam steps scaled by the rectification term.
    ``decoupled_weight_decay`` gives RAdamW.

    >>> import retrograd as rg
    >>> p = rg.nn.Parameter(rg.tensor([1.0]))
    >>> opt = rg.optim.RAdam([p], lr=0.1)
    >>> p.grad = rg.tensor([0.5]); opt.step(); round(p.item(), 4)
    0.95
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        _check(lr, eps, betas, weight_decay)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            decoupled_weight_decay=decoupled_weight_decay,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)

    def _options(self, group: dict) -> tuple:
        return _adam_options(group)

    def _init_param_state(self, state: dict, data: np.ndarray, group: dict) -> None:
        _init_state(state, data, "exp_avg", "exp_avg_sq")

    def _update(self, p: Tensor, state: dict, opts: tuple, s1: np.ndarray, s2: np.ndarray):
        lr, beta1, beta2, eps, wd, decoupled, maximize = opts
        step = _step_tensor(state)
        g = self._decayed_grad(p, lr, wd, decoupled, maximize, s2)
        m, v = state["exp_avg"]._data, state["exp_avg_sq"]._data
        _adam_moments_(m, v, g, beta1, beta2, s1)
        bc1 = 1 - beta1**step
        bc2 = 1 - beta2**step
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * beta2**step / bc2
        np.divide(m, bc1, out=s1)
        s1 *= lr
        if rho_t > 5.0:
            rect = (
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            ) ** 0.5
            np.sqrt(v, out=s2)
            s2 += eps
            np.divide(bc2**0.5, s2, out=s2)
            s1 *= s2
            s1 *= rect
        p._data -= s1

"""NAdam (Adam with Nesterov momentum and momentum decay)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..tensor import Tensor
from .adam import _check
from .optimizer import _adam_moments_, _adam_options, _init_state, _PerParamOptimizer, _step_tensor

__all__ = ["NAdam"]


class NAdam(_PerParamOptimizer):
    """``torch.optim.NAdam`` (Dozat 2016) with PyTorch's momentum schedule
    ``mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))``; ``decoupled_weight_decay``
    gives NAdamW. ``mu_product`` is kept as a float32 tensor, as in PyTorch.

    >>> import retrograd as rg
    >>> p = rg.nn.Parameter(rg.tensor([1.0]))
    >>> opt = rg.optim.NAdam([p], lr=0.1)
    >>> p.grad = rg.tensor([0.5]); opt.step(); p.item() < 1.0
    True
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        _check(lr, eps, betas, weight_decay)
        if not 0.0 <= momentum_decay:
            raise ValueError(f"Invalid momentum_decay value: {momentum_decay}")
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)

    def _options(self, group: dict) -> tuple:
        return (*_adam_options(group), float(group["momentum_decay"]))

    def _init_param_state(self, state: dict, data: np.ndarray, group: dict) -> None:
        mu_product = Tensor._make(np.ones((), dtype=np.float32))
        _init_state(state, data, "exp_avg", "exp_avg_sq", mu_product=mu_product)

    def _update(self, p: Tensor, state: dict, opts: tuple, s1: np.ndarray, s2: np.ndarray):
        lr, beta1, beta2, eps, wd, decoupled, maximize, mdecay = opts
        data = p._data
        step = _step_tensor(state)
        bias_correction2 = 1 - beta2**step
        g = self._decayed_grad(p, lr, wd, decoupled, maximize, s2)
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * mdecay))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * mdecay))
        mp = state["mu_product"]._data
        mp *= mu  # float32 rounding, like PyTorch's state tensor
        m, v = state["exp_avg"]._data, state["exp_avg_sq"]._data
        _adam_moments_(m, v, g, beta1, beta2, s1)
        np.divide(v, bias_correction2, out=s1)
        np.sqrt(s1, out=s1)
        s1 += eps
        mu_product = float(mp)
        mu_product_next = mu_product * mu_next
        np.multiply(g, -lr * (1.0 - mu) / (1.0 - mu_product), out=s2)
        s2 /= s1
        data += s2
        np.multiply(m, -lr * mu_next / (1.0 - mu_product_next), out=s2)
        s2 /= s1
        data += s2

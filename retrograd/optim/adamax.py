"""Adamax (Adam with the infinity norm)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from ..autograd.grad_mode import no_grad
from ..tensor import Tensor
from .adam import _check
from .optimizer import Optimizer, _lerp_, _new_step, _run_closure, _step_tensor

__all__ = ["Adamax"]


class Adamax(Optimizer):
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

    def step(self, closure: Callable | None = None):
        """One Adamax update of every parameter that has a gradient."""
        loss = _run_closure(closure)
        with no_grad(), np.errstate(all="ignore"):
            for group in self.param_groups:
                lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
                beta1, beta2 = (float(b) for b in group["betas"])
                maximize = group["maximize"]
                for p in group["params"]:
                    if p._grad is None:
                        continue
                    data = p._data
                    state = self.state[p]
                    if len(state) == 0:
                        state["step"] = _new_step()
                        state["exp_avg"] = Tensor._make(np.zeros_like(data))
                        state["exp_inf"] = Tensor._make(np.zeros_like(data))
                    s1, s2 = self._buffers(data)
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
                    data += s1
                    p._bump()
        return loss

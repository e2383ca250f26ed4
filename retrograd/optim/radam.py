"""RAdam (rectified Adam)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from ..autograd.grad_mode import no_grad
from ..tensor import Tensor
from .adam import _check
from .optimizer import Optimizer, _lerp_, _new_step, _run_closure, _step_tensor

__all__ = ["RAdam"]


class RAdam(Optimizer):
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

    def step(self, closure: Callable | None = None):
        """One RAdam update of every parameter that has a gradient."""
        loss = _run_closure(closure)
        with no_grad(), np.errstate(all="ignore"):
            for group in self.param_groups:
                lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
                beta1, beta2 = (float(b) for b in group["betas"])
                decoupled, maximize = group["decoupled_weight_decay"], group["maximize"]
                for p in group["params"]:
                    if p._grad is None:
                        continue
                    data = p._data
                    state = self.state[p]
                    if len(state) == 0:
                        state["step"] = _new_step()
                        state["exp_avg"] = Tensor._make(np.zeros_like(data))
                        state["exp_avg_sq"] = Tensor._make(np.zeros_like(data))
                    s1, s2 = self._buffers(data)
                    step = _step_tensor(state)
                    if wd != 0 and decoupled:
                        data *= 1 - lr * wd
                        g = self._grad_of(p, maximize, 0.0, s2)
                    else:
                        g = self._grad_of(p, maximize, wd, s2)
                    m, v = state["exp_avg"]._data, state["exp_avg_sq"]._data
                    _lerp_(m, g, 1.0 - beta1, s1)
                    v *= beta2
                    np.multiply(g, 1.0 - beta2, out=s1)
                    s1 *= g
                    v += s1
                    bc1 = 1 - beta1**step
                    bc2 = 1 - beta2**step
                    rho_inf = 2 / (1 - beta2) - 1
                    rho_t = rho_inf - 2 * step * beta2**step / bc2
                    np.divide(m, bc1, out=s1)
                    s1 *= lr
                    if rho_t > 5.0:
                        rect = (
                            (rho_t - 4)
                            * (rho_t - 2)
                            * rho_inf
                            / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
                        ) ** 0.5
                        np.sqrt(v, out=s2)
                        s2 += eps
                        np.divide(bc2**0.5, s2, out=s2)
                        s1 *= s2
                        s1 *= rect
                    data -= s1
                    p._bump()
        return loss

"""Adam and AdamW (Adam with decoupled weight decay)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

from ..autograd.grad_mode import no_grad
from ..tensor import Tensor
from .optimizer import Optimizer, _lerp_, _new_step, _run_closure, _step_tensor

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


class Adam(Optimizer):
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

    def step(self, closure: Callable | None = None):
        """One Adam update of every parameter that has a gradient."""
        loss = _run_closure(closure)
        with no_grad(), np.errstate(all="ignore"):
            for group in self.param_groups:
                lr = float(group["lr"])
                beta1, beta2 = (float(b) for b in group["betas"])
                eps = float(group["eps"])
                wd = float(group["weight_decay"])
                amsgrad = group["amsgrad"]
                maximize = group["maximize"]
                decoupled = group.get("decoupled_weight_decay", False)
                for p in group["params"]:
                    if p._grad is None:
                        continue
                    data = p._data
                    state = self.state[p]
                    if len(state) == 0:
                        state["step"] = _new_step()
                        state["exp_avg"] = Tensor._make(np.zeros_like(data))
                        state["exp_avg_sq"] = Tensor._make(np.zeros_like(data))
                        if amsgrad:
                            state["max_exp_avg_sq"] = Tensor._make(np.zeros_like(data))
                    s1, s2 = self._buffers(data)
                    step = _step_tensor(state)
                    if wd != 0 and decoupled:
                        data *= 1.0 - lr * wd
                        g = self._grad_of(p, maximize, 0.0, s2)
                    else:
                        g = self._grad_of(p, maximize, wd, s2)
                    m = state["exp_avg"]._data
                    v = state["exp_avg_sq"]._data
                    _lerp_(m, g, 1.0 - beta1, s1)
                    v *= beta2
                    np.multiply(g, 1.0 - beta2, out=s1)
                    s1 *= g
                    v += s1
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
                    data += s2
                    p._bump()
        return loss


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

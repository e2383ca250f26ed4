"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from ..autograd.grad_mode import no_grad
from ..tensor import Tensor
from .optimizer import Optimizer, _run_closure, required

__all__ = ["SGD"]


class SGD(Optimizer):
    """``torch.optim.SGD``. The momentum buffer starts as the first gradient (PyTorch's
    convention), then ``buf = momentum * buf + (1 - dampening) * g``; Nesterov uses
    ``g + momentum * buf``. Params whose ``.grad`` is ``None`` are skipped entirely.

    >>> import retrograd as rg
    >>> p = rg.nn.Parameter(rg.tensor([1.0]))
    >>> opt = rg.optim.SGD([p], lr=0.1, momentum=0.9)
    >>> p.grad = rg.tensor([0.5]); opt.step(); round(p.item(), 6)
    0.95
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        if lr is not required and lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            foreach=foreach,
            differentiable=differentiable,
            fused=fused,
        )
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

    def step(self, closure: Callable | None = None):
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = _run_closure(closure)
        with no_grad(), np.errstate(all="ignore"):
            for group in self.param_groups:
                lr = float(group["lr"])
                momentum = float(group["momentum"])
                dampening = float(group["dampening"])
                wd = float(group["weight_decay"])
                nesterov = group["nesterov"]
                maximize = group["maximize"]
                plain = momentum == 0 and wd == 0 and not maximize
                for p in group["params"]:
                    if p._grad is None:
                        continue
                    data = p._data
                    if plain:
                        g = p._grad._data
                        if g.dtype == data.dtype and data.size <= 65536:
                            # NOTE: fast path (small params): one temporary instead of the
                            # scratch views; bit-identical to p += g * (-lr)
                            data -= g * lr
                            p._bump()
                            continue
                    s1, s2 = self._buffers(data)
                    g = self._grad_of(p, maximize, wd, s2)
                    buf = None
                    if momentum != 0:
                        state = self.state[p]
                        buf_t = state.get("momentum_buffer")
                        if buf_t is None:
                            state["momentum_buffer"] = Tensor._make(np.array(g, copy=True))
                            buf = state["momentum_buffer"]._data
                        else:
                            buf = buf_t._data
                            momentum_update(buf, g, momentum, dampening, s1)
                    descend(data, g, buf, lr, momentum, nesterov, s1, s2)
                    p._bump()
        return loss


def momentum_update(buf: np.ndarray, g: np.ndarray, momentum: float, dampening: float, s1):
    """``buf = momentum * buf + (1 - dampening) * g`` in place (``s1``: scratch like ``g``)."""
    buf *= momentum
    np.multiply(g, 1.0 - dampening, out=s1)
    buf += s1


def descend(data, g, buf, lr: float, momentum: float, nesterov: bool, s1, s2) -> None:
    """``data -= lr * d`` in place, ``d`` the momentum buffer ``buf`` (already updated; with
    Nesterov's look-ahead ``g + momentum * buf``), or ``g`` itself when ``buf`` is None."""
    if buf is not None:
        if nesterov:
            np.multiply(buf, momentum, out=s1)
            np.add(g, s1, out=s2)
            g = s2
        else:
            g = buf
    np.multiply(g, -lr, out=s1)
    data += s1

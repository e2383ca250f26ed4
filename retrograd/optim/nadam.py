"""NAdam (Adam with Nesterov momentum and momentum decay)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from ..autograd.grad_mode import no_grad
from ..tensor import Tensor
from .adam import _check
from .optimizer import Optimizer, _lerp_, _new_step, _run_closure, _step_tensor

__all__ = ["NAdam"]


class NAdam(Optimizer):
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

    def step(self, closure: Callable | None = None):
        """One NAdam update of every parameter that has a gradient."""
        loss = _run_closure(closure)
        with no_grad(), np.errstate(all="ignore"):
            for group in self.param_groups:
                lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
                beta1, beta2 = (float(b) for b in group["betas"])
                mdecay = float(group["momentum_decay"])
                decoupled, maximize = group["decoupled_weight_decay"], group["maximize"]
                for p in group["params"]:
                    if p._grad is None:
                        continue
                    data = p._data
                    state = self.state[p]
                    if len(state) == 0:
                        state["step"] = _new_step()
                        state["mu_product"] = Tensor._make(np.ones((), dtype=np.float32))
                        state["exp_avg"] = Tensor._make(np.zeros_like(data))
                        state["exp_avg_sq"] = Tensor._make(np.zeros_like(data))
                    s1, s2 = self._buffers(data)
                    step = _step_tensor(state)
                    bias_correction2 = 1 - beta2**step
                    if wd != 0 and decoupled:
                        data *= 1 - lr * wd
                        g = self._grad_of(p, maximize, 0.0, s2)
                    else:
                        g = self._grad_of(p, maximize, wd, s2)
                    mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * mdecay))
                    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * mdecay))
                    mp = state["mu_product"]._data
                    mp *= mu  # float32 rounding, like PyTorch's state tensor
                    m, v = state["exp_avg"]._data, state["exp_avg_sq"]._data
                    _lerp_(m, g, 1.0 - beta1, s1)
                    v *= beta2
                    np.multiply(g, 1.0 - beta2, out=s1)
                    s1 *= g
                    v += s1
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
                    p._bump()
        return loss

"""Adagrad."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..tensor import Tensor
from .optimizer import _new_step, _PerParamOptimizer, _step_tensor

__all__ = ["Adagrad"]


class Adagrad(_PerParamOptimizer):
    """``torch.optim.Adagrad``: ``sum += g^2``; ``p -= clr * g / (sqrt(sum) + eps)`` with
    ``clr = lr / (1 + (t - 1) * lr_decay)``. State is created at construction, as in PyTorch.

    >>> import retrograd as rg
    >>> p = rg.nn.Parameter(rg.tensor([1.0]))
    >>> opt = rg.optim.Adagrad([p], lr=0.1)
    >>> p.grad = rg.tensor([3.0]); opt.step(); round(p.item(), 4)
    0.9
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(
                f"Invalid initial_accumulator_value value: {initial_accumulator_value}"
            )
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            eps=eps,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            fused=fused,
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p: Tensor, group: dict) -> None:
        state = self.state[p]
        if len(state) == 0:
            self._init_param_state(state, p._data, group)

    def _init_param_state(self, state: dict, data: np.ndarray, group: dict) -> None:
        state["step"] = _new_step()
        state["sum"] = Tensor._make(np.full_like(data, float(group["initial_accumulator_value"])))

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        if (
            hasattr(self, "state")
            and self.param_groups
            and "initial_accumulator_value" in self.param_groups[-1]
        ):
            for p in self.param_groups[-1]["params"]:
                self._init_state(p, self.param_groups[-1])

    def _options(self, group: dict) -> tuple:
        lr, lr_decay = float(group["lr"]), float(group["lr_decay"])
        return lr, lr_decay, float(group["eps"]), float(group["weight_decay"]), group["maximize"]

    def _update(self, p: Tensor, state: dict, opts: tuple, s1: np.ndarray, s2: np.ndarray):
        lr, lr_decay, eps, wd, maximize = opts
        step = _step_tensor(state)
        g = self._grad_of(p, maximize, wd, s2)
        clr = lr / (1 + (step - 1) * lr_decay)
        acc = state["sum"]._data
        np.multiply(g, g, out=s1)
        acc += s1
        np.sqrt(acc, out=s1)
        s1 += eps
        np.multiply(g, -clr, out=s2)
        s2 /= s1
        p._data += s2

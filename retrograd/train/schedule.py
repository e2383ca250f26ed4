"""Learning-rate schedules as a multiplier of the base lr at each step, run by ``LambdaLR``."""

from __future__ import annotations

import math
from collections.abc import Callable


def lr_lambda(sched: dict, base_lr: float, total_steps: int) -> Callable[[int], float]:
    """The factor ``lr(step) / base_lr`` for a ``sched`` config section.

    - ``constant``: 1 (after an optional linear ``warmup``).
    - ``cosine``: linear warmup, then a half cosine from 1 down to ``min_lr / base_lr`` at the end.
    - ``warmup_cosine``: nanoGPT's rule: warmup ``(step+1)/(warmup+1)``, cosine to ``min_lr`` at
      ``decay_steps`` (default: the run's length), then ``min_lr``.
    - ``onecycle``: cosine up from ``1/div_factor`` to 1 over ``pct_start`` of the run, then
      cosine down to ``1/(div_factor*final_div_factor)`` (Smith's one-cycle policy).

    >>> f = lr_lambda({"name": "warmup_cosine", "warmup": 10, "min_lr": 0.1}, 1.0, 100)
    >>> round(f(0), 4), f(10), round(f(100), 4)
    (0.0909, 1.0, 0.1)
    """
    name = sched.get("name", "constant")
    warmup = int(sched.get("warmup", 0) or 0)
    floor = float(sched.get("min_lr", 0.0) or 0.0) / base_lr if base_lr else 0.0
    total = max(1, int(total_steps))

    if name == "constant":
        return lambda s: min(1.0, (s + 1) / (warmup + 1)) if warmup else 1.0

    if name in ("cosine", "warmup_cosine"):
        decay = int(sched.get("decay_steps") or total)

        def cosine(s: int) -> float:
            if s < warmup:
                return (s + 1) / (warmup + 1)
            if s >= decay:
                return floor
            ratio = (s - warmup) / max(1, decay - warmup)
            return floor + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (1.0 - floor)

        return cosine

    if name == "onecycle":
        pct = float(sched.get("pct_start", 0.3))
        div = float(sched.get("div_factor", 25.0))
        final_div = float(sched.get("final_div_factor", 1e4))
        up = max(1.0, pct * total - 1)
        lo, end = 1.0 / div, 1.0 / (div * final_div)

        def anneal(a: float, b: float, t: float) -> float:
            return b + (a - b) / 2.0 * (math.cos(math.pi * t) + 1)

        def onecycle(s: int) -> float:
            if s <= up:
                return anneal(lo, 1.0, s / up)
            return anneal(1.0, end, min(1.0, (s - up) / max(1.0, total - 1 - up)))

        return onecycle

    raise ValueError(f"unknown schedule {name!r}")


class _LambdaLR:
    """Fallback with ``torch.optim.lr_scheduler.LambdaLR`` semantics (used if rg's is missing)."""

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1) -> None:
        self.optimizer = optimizer
        self.lr_lambda = lr_lambda
        self.base_lrs = [g.setdefault("initial_lr", g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def step(self) -> None:
        self.last_epoch += 1
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = base * self.lr_lambda(self.last_epoch)
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return self._last_lr

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "base_lrs": self.base_lrs, "_last_lr": self._last_lr}

    def load_state_dict(self, state: dict) -> None:
        self.last_epoch = state["last_epoch"]
        self.base_lrs = list(state["base_lrs"])
        self._last_lr = list(state["_last_lr"])


def make_scheduler(optimizer, fn: Callable[[int], float]):
    """``rg.optim.lr_scheduler.LambdaLR(optimizer, fn)``, or a private equivalent if missing."""
    try:
        from ..optim.lr_scheduler import LambdaLR
    except ImportError:
        LambdaLR = None
    if LambdaLR is None:
        return _LambdaLR(optimizer, fn)
    return LambdaLR(optimizer, fn)

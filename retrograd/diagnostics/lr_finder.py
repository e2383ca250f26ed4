"""The learning-rate range test (Smith 2017; popularised by fastai): grow the LR exponentially
over ``num_iter`` mini-batches, track the smoothed loss, stop when it diverges, and suggest
the LR where the loss falls fastest (steepest negative slope of the smoothed loss against
log LR) - not the LR of the minimum loss, which is already close to divergence.

The model's parameters, buffers, gradients and train/eval mode and the optimizer's state
(including its learning rates) are restored exactly afterwards.

>>> import retrograd as rg
>>> _ = rg.manual_seed(0)
>>> model = rg.nn.Linear(4, 1)
>>> X, Y = rg.randn(64, 4), rg.randn(64, 1)
>>> opt = rg.optim.SGD(model.parameters(), lr=0.1)
>>> w0 = model.weight.detach().clone()
>>> res = rg.diagnostics.lr_find(model, rg.nn.MSELoss(), [(X, Y)], opt, num_iter=30)
>>> bool((model.weight == w0).all()), 1e-7 <= res.suggestion <= 10
(True, True)
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ..tensor import Tensor

__all__ = ["lr_find", "LRFinderResult"]


@dataclass
class LRFinderResult:
    """``lrs``, smoothed ``losses``, ``raw_losses``, the ``suggestion`` (steepest descent of
    the smoothed loss vs log LR), ``min_loss_lr``, and ``diverged`` (stopped early)."""

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion: float | None
    suggestion_index: int | None
    min_loss_lr: float | None
    diverged: bool
    settings: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        s = f"LR range test: {len(self.lrs)} iterations, lr {self.lrs[0]:.2e} -> {self.lrs[-1]:.2e}"
        s += " (stopped: loss diverged)" if self.diverged else ""
        if self.suggestion is not None:
            s += (
                f"\nsuggested lr (steepest descent of the smoothed loss): {self.suggestion:.3g}"
                f"\nlr at the minimum smoothed loss: {self.min_loss_lr:.3g} (too high to train at)"
            )
        else:
            s += "\nno suggestion: too few points before divergence; lower start_lr"
        return s

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict:
        return {
            "lrs": self.lrs,
            "losses": self.losses,
            "raw_losses": self.raw_losses,
            "suggestion": self.suggestion,
            "min_loss_lr": self.min_loss_lr,
            "diverged": self.diverged,
            "settings": self.settings,
        }

    def plot(self, path: str | os.PathLike, ax=None) -> str:
        """PNG of smoothed loss vs LR (log x), with the suggestion marked."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        own = ax is None
        if own:
            fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.semilogx(self.lrs, self.raw_losses, color="0.75", lw=0.8, label="loss")
        ax.semilogx(self.lrs, self.losses, color="C0", label="smoothed")
        if self.suggestion is not None:
            i = self.suggestion_index
            ax.plot(
                [self.lrs[i]],
                [self.losses[i]],
                "o",
                color="red",
                label=f"suggestion {self.suggestion:.2g}",
            )
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        fin = [v for v in self.losses if math.isfinite(v)]
        if fin:
            lo, hi = min(fin), fin[0]
            ax.set_ylim(lo - 0.1 * abs(hi - lo) - 1e-12, max(hi, lo) + 0.5 * abs(hi - lo) + 1e-12)
        ax.legend(fontsize=8)
        if own:
            fig.tight_layout()
            fig.savefig(path, dpi=80)
            plt.close(fig)
        return str(path)


def _cycle(loader):
    while True:
        n = 0
        for b in loader:
            n += 1
            yield b
        if n == 0:
            raise ValueError("lr_find(): the loader yielded no batch")


def _default_step(model, loss_fn, batch):
    if isinstance(batch, dict):
        raise TypeError("lr_find(): dict batches need a custom step_fn(model, loss_fn, batch)")
    x, y = batch[0], batch[1]
    return loss_fn(model(x), y)


def suggest(lrs, losses, skip_start: int = 10, skip_end: int = 5) -> int | None:
    """Index of the steepest negative slope of ``losses`` vs ``log10(lrs)``."""
    n = len(lrs)
    if n - skip_start - skip_end < 3:
        skip_start, skip_end = min(skip_start, max(0, n // 5)), min(skip_end, max(0, n // 10))
    lo, hi = skip_start, n - skip_end
    if hi - lo < 3:
        return None
    x = np.log10(np.asarray(lrs[lo:hi], dtype=np.float64))
    y = np.asarray(losses[lo:hi], dtype=np.float64)
    if not np.all(np.isfinite(y)):
        return None
    slope = np.gradient(y, x)
    return lo + int(np.argmin(slope))


def lr_find(
    model,
    loss_fn: Callable,
    loader: Iterable,
    optimizer,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    smooth: float = 0.05,
    diverge_th: float = 5.0,
    step_mode: str = "exp",
    skip_start: int = 10,
    skip_end: int = 5,
    step_fn: Callable | None = None,
) -> LRFinderResult:
    """Run the LR range test and restore ``model`` and ``optimizer`` exactly afterwards.

    ``loader`` is any iterable of ``(inputs, targets)`` batches (cycled when exhausted);
    ``step_fn(model, loss_fn, batch) -> loss`` overrides the forward pass. ``smooth`` is the
    weight of the newest loss in the bias-corrected exponential moving average (0.05 = a
    0.95-beta EMA); the test stops when the smoothed loss exceeds ``diverge_th`` times its
    best value, or on a non-finite loss. See the module docstring for an example.
    """
    if not (0 < start_lr < end_lr):
        raise ValueError(f"lr_find(): need 0 < start_lr < end_lr, got {start_lr}, {end_lr}")
    if num_iter < 2:
        raise ValueError(f"lr_find(): num_iter must be >= 2, got {num_iter}")
    if not 0 < smooth <= 1:
        raise ValueError(f"lr_find(): smooth must be in (0, 1], got {smooth}")
    if step_mode not in ("exp", "linear"):
        raise ValueError(f"lr_find(): step_mode must be 'exp' or 'linear', got {step_mode!r}")
    step_fn = step_fn or _default_step

    # --- snapshot everything the run changes --------------------------------------------
    params = list(model.named_parameters())
    saved_p = [
        (p, p._data.copy(), None if p._grad is None else p._grad._data.copy()) for _, p in params
    ]
    saved_b = [(b, b._data.copy()) for _, b in model.named_buffers()]
    saved_mode = [(m, m.training) for m in model.modules()]
    saved_opt = copy.deepcopy(optimizer.state_dict())
    saved_lrs = [g["lr"] for g in optimizer.param_groups]

    lrs: list[float] = []
    raw: list[float] = []
    sm: list[float] = []
    avg = 0.0
    best = math.inf
    diverged = False
    batches = _cycle(loader)
    try:
        model.train()
        for i in range(num_iter):
            t = i / (num_iter - 1)
            lr = (
                start_lr * (end_lr / start_lr) ** t
                if step_mode == "exp"
                else start_lr + t * (end_lr - start_lr)
            )
            for g in optimizer.param_groups:
                g["lr"] = lr
            optimizer.zero_grad()
            with np.errstate(all="ignore"):
                loss = step_fn(model, loss_fn, next(batches))
                v = float(loss._data.reshape(-1)[0]) if isinstance(loss, Tensor) else float(loss)
                lrs.append(lr)
                raw.append(v)
                if not math.isfinite(v):
                    sm.append(v)
                    diverged = True
                    break
                loss.backward()
                optimizer.step()
            avg = (1 - smooth) * avg + smooth * v
            s = avg / (1 - (1 - smooth) ** (i + 1))
            sm.append(s)
            best = min(best, s)
            if i > 0 and s > diverge_th * best:
                diverged = True
                break
    finally:
        # --- restore ------------------------------------------------------------------
        for p, data, grad in saved_p:
            if p._data.shape == data.shape and p._data.dtype == data.dtype:
                np.copyto(p._data, data)  # keep the array (views, optimizer buffers may alias it)
            else:
                p._data = data
            p._bump()
            p._grad = None if grad is None else Tensor._make(grad)
        for b, data in saved_b:
            np.copyto(b._data, data) if b._data.shape == data.shape else setattr(b, "_data", data)
            b._bump()
        for m, mode in saved_mode:
            m.training = mode
        optimizer.load_state_dict(saved_opt)
        for g, lr0 in zip(optimizer.param_groups, saved_lrs):
            g["lr"] = lr0

    fin = [j for j, v in enumerate(sm) if math.isfinite(v)]
    # Points after the divergence test tripped are excluded from the suggestion.
    n_ok = len(fin)
    idx = suggest(lrs[:n_ok], sm[:n_ok], skip_start, skip_end)
    min_i = int(np.argmin([sm[j] for j in fin])) if fin else None
    return LRFinderResult(
        lrs=lrs,
        losses=sm,
        raw_losses=raw,
        suggestion=None if idx is None else lrs[idx],
        suggestion_index=idx,
        min_loss_lr=None if min_i is None else lrs[fin[min_i]],
        diverged=diverged,
        settings={
            "start_lr": start_lr,
            "end_lr": end_lr,
            "num_iter": num_iter,
            "smooth": smooth,
            "diverge_th": diverge_th,
            "step_mode": step_mode,
        },
    )

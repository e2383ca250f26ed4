"""The learning-rate range test (Smith 2017; popularised by fastai): grow the LR exponentially
over ``num_iter`` mini-batches, record the loss, stop when it diverges, and suggest an LR
inside the *valley* of the loss-vs-LR curve: the descending stretch that runs from where the
loss starts to fall to where it reaches its floor.

The suggestion is half the LR at which the valley reaches its floor, kept inside the valley:
the floor is the largest LR that still made progress during the test, and a constant LR a
factor of two below it trains fast without sitting at the edge of divergence. It is found on a
lag-free curve: log(loss) smoothed with a centred Gaussian kernel ``width`` decades wide, so
single-batch spikes and the lag of an exponential moving average do not move it. The classic
picks are reported too (``result.suggestions``): ``"steep"``, the steepest descent of the
EMA-smoothed loss against log LR (pytorch-lr-finder, fastai ``steep``), and ``"minimum"``, a
tenth of the LR at the minimum EMA loss (fastai ``minimum``). See docs/diagnostics.md for the
comparison with a grid search that motivated the rule.

The model's parameters, buffers, gradients and train/eval mode and the optimizer's state
(including its learning rates) are restored exactly afterwards.

>>> import retrograd as rg
>>> _ = rg.manual_seed(0)
>>> model = rg.nn.Linear(4, 1)
>>> X, Y = rg.randn(64, 4), rg.randn(64, 1)
>>> opt = rg.optim.SGD(model.parameters(), lr=0.1)
>>> w0 = model.weight.detach().clone()
>>> res = rg.diagnostics.lr_find(model, rg.nn.MSELoss(), [(X, Y)], opt, num_iter=60)
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

# The floor of the valley is where the smoothed curve first comes within this fraction of the
# valley's depth of its minimum (5 %: past the descent, before a flat noisy bottom).
FLOOR_TOL = 0.05
# The suggestion is this factor below the floor (Bengio 2012, quoted by Smith 2017: the best
# constant LR is usually within a factor of two of the largest one that still converges).
BACKOFF = 2.0


@dataclass
class LRFinderResult:
    """The curve of an LR range test and the suggested LR.

    ``lrs``; ``raw_losses`` (one per step); ``losses``, their bias-corrected exponential moving
    average (the curve the divergence test watches); ``curve``, the lag-free smoothed loss the
    suggestion is read from; ``suggestion`` (index ``suggestion_index``); ``valley``, the LRs
    where the descending stretch starts and reaches its floor; ``suggestions``, the valley pick
    next to the classic ``steep`` and ``minimum`` rules; ``min_loss_lr``, the LR of the lowest
    point of ``curve``; ``diverged`` (stopped early)."""

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion: float | None
    suggestion_index: int | None
    min_loss_lr: float | None
    diverged: bool
    settings: dict = field(default_factory=dict)
    curve: list[float] = field(default_factory=list)
    valley: tuple[float, float] | None = None
    suggestions: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        s = f"LR range test: {len(self.lrs)} iterations, lr {self.lrs[0]:.2e} -> {self.lrs[-1]:.2e}"
        s += " (stopped: loss diverged)" if self.diverged else ""
        if self.suggestion is not None:
            lo, floor = self.valley
            s += (
                f"\nsuggested lr: {self.suggestion:.3g} (half the lr where the loss valley "
                f"{lo:.2g} -> {floor:.2g} reaches its floor)"
                f"\nother rules: steepest descent {_fmt(self.suggestions.get('steep'))}, "
                f"minimum/10 {_fmt(self.suggestions.get('minimum'))}"
                f"\nlr at the minimum smoothed loss: {self.min_loss_lr:.3g} (too high to train at)"
            )
        else:
            s += "\nno suggestion: no descending stretch before divergence; lower start_lr"
        return s

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict:
        return {
            "lrs": self.lrs,
            "losses": self.losses,
            "raw_losses": self.raw_losses,
            "curve": self.curve,
            "suggestion": self.suggestion,
            "suggestions": self.suggestions,
            "valley": self.valley,
            "min_loss_lr": self.min_loss_lr,
            "diverged": self.diverged,
            "settings": self.settings,
        }

    def plot(self, path: str | os.PathLike, ax=None) -> str:
        """PNG of the loss vs LR (log x): raw, smoothed, the valley shaded, the suggestion."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        own = ax is None
        if own:
            fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.semilogx(self.lrs, self.raw_losses, color="0.75", lw=0.8, label="loss")
        curve = self.curve or self.losses
        ax.semilogx(self.lrs[: len(curve)], curve, color="C0", label="smoothed")
        if self.valley is not None:
            ax.axvspan(*self.valley, color="C2", alpha=0.12, label="valley")
        if self.suggestion is not None:
            i = self.suggestion_index
            lab = f"suggestion {self.suggestion:.2g}"
            ax.plot([self.lrs[i]], [curve[i]], "o", color="red", label=lab)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        fin = [v for v in curve if math.isfinite(v)]
        if fin:
            lo, hi = min(fin), fin[0]
            ax.set_ylim(lo - 0.1 * abs(hi - lo) - 1e-12, max(hi, lo) + 0.5 * abs(hi - lo) + 1e-12)
        ax.legend(fontsize=8)
        if own:
            fig.tight_layout()
            fig.savefig(path, dpi=80)
            plt.close(fig)
        return str(path)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3g}"


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


def smooth_curve(lrs, losses, width: float = 0.1) -> tuple[np.ndarray, bool]:
    """Lag-free smoothing: a centred Gaussian kernel ``width`` decades wide in log10(lr).

    Smooths log(loss) when every loss is positive (a geometric mean: one bad batch moves it
    little), else the loss itself. Returns ``(curve in the smoothed scale, used_log)``.
    ``width=0`` returns the (transformed) curve unchanged.
    """
    y = np.asarray(losses, dtype=np.float64)
    use_log = bool(len(y) and np.all(y > 0))
    v = np.log(y) if use_log else y.copy()
    if width <= 0 or len(v) < 2:
        return v, use_log
    lx = np.log10(np.asarray(lrs, dtype=np.float64))
    out = np.empty_like(v)
    # the kernel is cut at 4 widths; lx is sorted (the LR grows), so each window is a slice
    los = np.searchsorted(lx, lx - 4 * width, "left")
    his = np.searchsorted(lx, lx + 4 * width, "right")
    for i in range(len(v)):
        w = np.exp(-0.5 * ((lx[los[i] : his[i]] - lx[i]) / width) ** 2)
        out[i] = (w * v[los[i] : his[i]]).sum() / w.sum()
    return out, use_log


def find_valley(lrs, curve, skip_start: int = 10, skip_end: int = 0):
    """``(start, floor)`` indices of the valley of an already smoothed ``curve``, or None.

    The valley is the descending stretch that ends at the curve's minimum (after
    ``skip_start`` points, before the last ``skip_end``). With depth = highest point before
    the minimum - minimum, it starts at the last point within ``FLOOR_TOL`` x depth of that
    highest point, and its floor is the first point within ``FLOOR_TOL`` x depth of the
    minimum.
    """
    n = len(curve)
    if n - skip_start - skip_end < 3:
        skip_start, skip_end = min(skip_start, max(0, n // 5)), min(skip_end, max(0, n // 10))
    lo, hi = skip_start, n - skip_end
    y = np.asarray(curve, dtype=np.float64)
    if hi - lo < 3 or not np.all(np.isfinite(y[lo:hi])):
        return None
    e = lo + int(np.argmin(y[lo:hi]))
    a = lo + int(np.argmax(y[lo : e + 1]))
    depth = y[a] - y[e]
    if e - a < 2 or not depth > 0:
        return None
    # the stretch starts where the loss last sits within FLOOR_TOL of the depth below the top
    # (a flat plateau before the descent is not part of it) and ends at the floor
    a = a + int(np.flatnonzero(y[a : e + 1] >= y[a] - FLOOR_TOL * depth)[-1])
    b = a + int(np.flatnonzero(y[a : e + 1] <= y[e] + FLOOR_TOL * depth)[0])
    return a, b


def suggest(
    lrs,
    losses,
    skip_start: int = 10,
    skip_end: int = 0,
    width: float = 0.1,
    backoff: float = BACKOFF,
) -> int | None:
    """Index of the suggested LR for the raw ``losses`` of a range test (None: no valley).

    Smooths with :func:`smooth_curve`, finds the valley with :func:`find_valley`, and picks
    the point closest to ``floor_lr / backoff`` inside the valley (never below its start).
    """
    if len(lrs) != len(losses):
        raise ValueError(f"suggest(): {len(lrs)} lrs but {len(losses)} losses")
    curve, _ = smooth_curve(lrs, losses, width)
    v = find_valley(lrs, curve, skip_start, skip_end)
    if v is None:
        return None
    a, b = v
    lx = np.log10(np.asarray(lrs[a : b + 1], dtype=np.float64))
    return a + int(np.argmin(np.abs(lx - (lx[-1] - math.log10(backoff)))))


def suggest_steep(lrs, losses, skip_start: int = 10, skip_end: int = 5) -> int | None:
    """Index of the steepest negative slope of ``losses`` vs ``log10(lrs)`` (the classic
    rule of pytorch-lr-finder and fastai ``steep``; noisy on flat or spiky curves)."""
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
    num_iter: int = 200,
    smooth: float = 0.05,
    diverge_th: float = 5.0,
    step_mode: str = "exp",
    skip_start: int = 10,
    skip_end: int = 0,
    step_fn: Callable | None = None,
    width: float = 0.1,
) -> LRFinderResult:
    """Run the LR range test and restore ``model`` and ``optimizer`` exactly afterwards.

    ``loader`` is any iterable of ``(inputs, targets)`` batches (cycled when exhausted);
    ``step_fn(model, loss_fn, batch) -> loss`` overrides the forward pass. ``smooth`` is the
    weight of the newest loss in the bias-corrected exponential moving average (0.05 = a
    0.95-beta EMA); the test stops when that average exceeds ``diverge_th`` times its best
    value, or on a non-finite loss. The suggestion is read from the loss smoothed with a
    centred kernel ``width`` decades wide (see the module docstring), ignoring the first
    ``skip_start`` and last ``skip_end`` points. ``num_iter=200`` (25 points a decade over the
    default range) rather than fastai's 100: fewer points leave the curve too noisy to place
    its floor, and on small datasets too few steps at useful LRs for later learning phases to
    show. See the module docstring for an example.
    """
    if not (0 < start_lr < end_lr):
        raise ValueError(f"lr_find(): need 0 < start_lr < end_lr, got {start_lr}, {end_lr}")
    if num_iter < 2:
        raise ValueError(f"lr_find(): num_iter must be >= 2, got {num_iter}")
    if not 0 < smooth <= 1:
        raise ValueError(f"lr_find(): smooth must be in (0, 1], got {smooth}")
    if step_mode not in ("exp", "linear"):
        raise ValueError(f"lr_find(): step_mode must be 'exp' or 'linear', got {step_mode!r}")
    if width < 0:
        raise ValueError(f"lr_find(): width must be >= 0 decades, got {width}")
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

    # Only finite points take part (a non-finite loss ends the run).
    n_ok = sum(1 for v in raw if math.isfinite(v))
    curve_s, used_log = smooth_curve(lrs[:n_ok], raw[:n_ok], width)
    curve = np.exp(curve_s) if used_log else curve_s
    valley = find_valley(lrs[:n_ok], curve_s, skip_start, skip_end)
    idx = suggest(lrs[:n_ok], raw[:n_ok], skip_start, skip_end, width) if valley else None
    steep = suggest_steep(lrs[:n_ok], sm[:n_ok])
    ema_min = int(np.argmin(sm[:n_ok])) if n_ok else None
    min_i = int(np.argmin(curve_s)) if n_ok else None
    return LRFinderResult(
        lrs=lrs,
        losses=sm,
        raw_losses=raw,
        suggestion=None if idx is None else lrs[idx],
        suggestion_index=idx,
        min_loss_lr=None if min_i is None else lrs[min_i],
        diverged=diverged,
        settings={
            "start_lr": start_lr,
            "end_lr": end_lr,
            "num_iter": num_iter,
            "smooth": smooth,
            "diverge_th": diverge_th,
            "step_mode": step_mode,
            "skip_start": skip_start,
            "skip_end": skip_end,
            "width": width,
        },
        curve=[float(c) for c in curve],
        valley=None if valley is None else (lrs[valley[0]], lrs[valley[1]]),
        suggestions={
            "valley": None if idx is None else lrs[idx],
            "steep": None if steep is None else lrs[steep],
            "minimum": None if ema_min is None else lrs[ema_min] / 10,
        },
    )

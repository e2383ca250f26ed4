"""L-BFGS with an optional strong-Wolfe line search (``torch.optim.LBFGS``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..autograd.grad_mode import enable_grad, no_grad
from ..tensor import Tensor
from .optimizer import Optimizer

__all__ = ["LBFGS"]

# Scalars that PyTorch keeps as 0-d float32 tensors (dot products, ``ys``, ``H_diag``, ...)
# are NumPy float32 scalars here, so that they round the same way.


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to ``bounds``."""
    if bounds is not None:
        lo, hi = bounds
    else:
        lo, hi = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = np.sqrt(d2_square)
        if x1 <= x2:
            pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(pos, lo), hi)
    return (lo + hi) / 2.0


def _strong_wolfe(obj, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """Find a step ``t`` along ``d`` satisfying the strong Wolfe conditions: bracket, then zoom
    with cubic interpolation (Nocedal & Wright, algorithms 3.5 and 3.6)."""
    d_norm = np.abs(d).max()
    g = g.copy()
    f_new, g_new = obj(x, t, d)
    evals = 1
    gtd_new = g_new.dot(d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    it = 0
    while it < max_ls:
        if f_new > f + c1 * t * gtd or (it > 1 and f_new >= f_prev):
            br, br_f, br_g, br_gtd = (
                [t_prev, t],
                [f_prev, f_new],
                [g_prev, g_new.copy()],
                [gtd_prev, gtd_new],
            )
            break
        if abs(gtd_new) <= -c2 * gtd:
            br, br_f, br_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            br, br_f, br_g, br_gtd = (
                [t_prev, t],
                [f_prev, f_new],
                [g_prev, g_new.copy()],
                [gtd_prev, gtd_new],
            )
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(
            t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step)
        )
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new.copy(), gtd_new
        f_new, g_new = obj(x, t, d)
        evals += 1
        gtd_new = g_new.dot(d)
        it += 1
    if it == max_ls:
        br, br_f, br_g = [0, t], [f, f_new], [g, g_new]
    insuf = False
    low, high = (0, 1) if br_f[0] <= br_f[-1] else (1, 0)
    while not done and it < max_ls:
        if abs(br[1] - br[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(br[0], br_f[0], br_gtd[0], br[1], br_f[1], br_gtd[1])
        # keep t away from the bracket ends unless that has already failed to make progress
        eps = 0.1 * (max(br) - min(br))
        if min(max(br) - t, t - min(br)) < eps:
            if insuf or t >= max(br) or t <= min(br):
                t = max(br) - eps if abs(t - max(br)) < abs(t - min(br)) else min(br) + eps
                insuf = False
            else:
                insuf = True
        else:
            insuf = False
        f_new, g_new = obj(x, t, d)
        evals += 1
        gtd_new = g_new.dot(d)
        it += 1
        if f_new > f + c1 * t * gtd or f_new >= br_f[low]:
            br[high], br_f[high], br_g[high], br_gtd[high] = t, f_new, g_new.copy(), gtd_new
            low, high = (0, 1) if br_f[0] <= br_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (br[high] - br[low]) >= 0:
                br[high], br_f[high], br_g[high], br_gtd[high] = (
                    br[low],
                    br_f[low],
                    br_g[low],
                    br_gtd[low],
                )
            br[low], br_f[low], br_g[low], br_gtd[low] = t, f_new, g_new.copy(), gtd_new
    return br_f[low], br_g[low], br[low], evals


def _t(a: Any) -> Any:
    """Wrap NumPy values for the state dict (tensors, as PyTorch stores them)."""
    if isinstance(a, np.ndarray):
        return Tensor._make(a)
    if isinstance(a, np.floating):
        return Tensor._make(np.asarray(a))
    if isinstance(a, list):
        return [_t(v) for v in a]
    return a


def _a(v: Any) -> Any:
    """Unwrap state-dict values back to NumPy."""
    if isinstance(v, Tensor):
        return v._data if v._data.ndim else v._data[()]
    if isinstance(v, list):
        return [_a(x) for x in v]
    return v


class LBFGS(Optimizer):
    """``torch.optim.LBFGS``: limited-memory BFGS on all parameters as one flat vector.

    ``step(closure)`` needs a closure that re-evaluates the model, calls ``backward`` and
    returns the loss; it runs up to ``max_iter`` iterations per call. ``line_search_fn`` is
    ``None`` (fixed step ``lr``) or ``"strong_wolfe"``. Only one parameter group.

    >>> import retrograd as rg
    >>> x = rg.nn.Parameter(rg.tensor([3.0, -2.0]))
    >>> opt = rg.optim.LBFGS([x], line_search_fn="strong_wolfe")
    >>> def closure():
    ...     opt.zero_grad(); loss = ((x - 1.0) ** 2).sum(); loss.backward(); return loss
    >>> _ = opt.step(closure); [round(v, 4) for v in x.tolist()]
    [1.0, 1.0]
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(
            lr=lr,
            max_iter=max_iter,
            max_eval=max_eval,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            history_size=history_size,
            line_search_fn=line_search_fn,
        )
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    def add_param_group(self, param_group: dict) -> None:
        if getattr(self, "param_groups", None):
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(param_group)

    def _flat_grad(self) -> np.ndarray:
        parts = [
            np.zeros(p._data.size, p._data.dtype) if p._grad is None else p._grad._data.reshape(-1)
            for p in self._params
        ]
        return np.concatenate(parts)

    def _add_grad(self, step_size: Any, update: np.ndarray) -> None:
        offset = 0
        for p in self._params:
            n = p._data.size
            p._data += update[offset : offset + n].reshape(p._data.shape) * step_size
            p._bump()
            offset += n

    def _clone_param(self) -> list[np.ndarray]:
        return [p._data.copy() for p in self._params]

    def _set_param(self, data: list[np.ndarray]) -> None:
        for p, a in zip(self._params, data):
            p._data[...] = a
            p._bump()

    def _evaluate(self, closure: Callable, x: list[np.ndarray], t: Any, d: np.ndarray):
        self._add_grad(t, d)
        with enable_grad():
            loss = float(closure())
        g = self._flat_grad()
        self._set_param(x)
        return loss, g

    def step(self, closure: Callable):  # type: ignore[override]
        """Run up to ``max_iter`` L-BFGS iterations; returns the first loss of the call."""
        if closure is None:
            raise RuntimeError("LBFGS.step() requires a closure that reevaluates the model")
        group = self.param_groups[0]
        lr = float(group["lr"])
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        with enable_grad():
            orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        with no_grad(), np.errstate(all="ignore"):
            flat_grad = self._flat_grad()
            if np.abs(flat_grad).max() <= tol_grad:
                return orig_loss
            d = _a(state.get("d"))
            t = _a(state.get("t"))
            old_dirs = _a(state.get("old_dirs"))
            old_stps = _a(state.get("old_stps"))
            ro = _a(state.get("ro"))
            h_diag = _a(state.get("H_diag"))
            prev_flat_grad = _a(state.get("prev_flat_grad"))
            prev_loss = state.get("prev_loss")
            n_iter = 0
            while n_iter < max_iter:
                n_iter += 1
                state["n_iter"] += 1
                if state["n_iter"] == 1:
                    d = -flat_grad
                    old_dirs, old_stps, ro = [], [], []
                    h_diag = 1
                else:
                    y = flat_grad - prev_flat_grad
                    s = d * t
                    ys = y.dot(s)
                    if ys > 1e-10:  # curvature condition: keep the pair
                        if len(old_dirs) == history_size:
                            old_dirs.pop(0)
                            old_stps.pop(0)
                            ro.pop(0)
                        old_dirs.append(y)
                        old_stps.append(s)
                        ro.append(np.float32(1.0) / ys)
                        h_diag = ys / y.dot(y)
                    num_old = len(old_dirs)
                    if "al" not in state:
                        state["al"] = [None] * history_size
                    al = state["al"]
                    # two-loop recursion: d = -H g
                    q = -flat_grad
                    for i in range(num_old - 1, -1, -1):
                        al[i] = old_stps[i].dot(q) * ro[i]
                        q += old_dirs[i] * (-al[i])
                    d = r = q * h_diag
                    for i in range(num_old):
                        be_i = old_dirs[i].dot(r) * ro[i]
                        r += old_stps[i] * (al[i] - be_i)
                if prev_flat_grad is None:
                    prev_flat_grad = flat_grad.copy()
                else:
                    prev_flat_grad[...] = flat_grad
                prev_loss = loss
                if state["n_iter"] == 1:
                    t = min(1.0, np.float32(1.0) / np.abs(flat_grad).sum()) * lr
                else:
                    t = lr
                gtd = flat_grad.dot(d)
                if gtd > -tol_change:
                    break
                ls_evals = 0
                if line_search_fn is not None:
                    if line_search_fn != "strong_wolfe":
                        raise RuntimeError("only 'strong_wolfe' is supported")
                    x_init = self._clone_param()

                    def obj(x, step, direction):
                        return self._evaluate(closure, x, step, direction)

                    loss, flat_grad, t, ls_evals = _strong_wolfe(
                        obj, x_init, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals
                    )
                    self._add_grad(t, d)
                    opt_cond = np.abs(flat_grad).max() <= tol_grad
                else:
                    self._add_grad(t, d)
                    opt_cond = False
                    if n_iter != max_iter:
                        with enable_grad():
                            loss = float(closure())
                        flat_grad = self._flat_grad()
                        opt_cond = np.abs(flat_grad).max() <= tol_grad
                        ls_evals = 1
                current_evals += ls_evals
                state["func_evals"] += ls_evals
                if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                    break
                if np.abs(d * t).max() <= tol_change:
                    break
                if abs(loss - prev_loss) < tol_change:
                    break
            state["d"] = _t(d)
            state["t"] = _t(t)
            state["old_dirs"] = _t(old_dirs)
            state["old_stps"] = _t(old_stps)
            state["ro"] = _t(ro)
            state["H_diag"] = _t(h_diag)
            state["prev_flat_grad"] = _t(prev_flat_grad)
            state["prev_loss"] = prev_loss
            if "al" in state:
                state["al"] = [v for v in state["al"]]
        return orig_loss

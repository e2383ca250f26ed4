"""Fused neural-network primitives: linear, layer_norm, cross_entropy (class indices), embedding.

NOTE: each is one graph node with a hand-written vjp because it sits on the hot path of
every model (one GEMM instead of matmul + transpose + add nodes; one pass for layer norm
statistics) or because it needs numerical stability (cross entropy through a max-subtracted
log-softmax, never ``log(softmax)``). Every vjp has two paths: a NumPy fast path when the
engine runs without ``create_graph``, and the same formula in retrograd Tensor ops when a
graph of the backward is wanted (so double backward works).
"""

from __future__ import annotations

import numpy as np

from ..autograd import recycle as _recycle
from ..autograd.grad_mode import STATE
from ..autograd.node import Node, apply
from ..tensor import Tensor
from ._util import errstate, gemm_ready

_T = Tensor._make


# --- linear ---------------------------------------------------------------------------------


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for 2-D operands, a large result written into a reused buffer
    (autograd/recycle.py: no page faults on the activations of every step)."""
    if a.dtype == b.dtype and a.dtype.kind == "f" and a.ndim == 2 and b.ndim == 2:
        return np.matmul(a, b, out=_recycle.empty((a.shape[0], b.shape[1]), a.dtype))
    return a @ b


class Linear(Node):
    """``y = x @ W.T + b`` for x of shape (..., in); b may be absent (two inputs)."""

    __slots__ = ()
    save_inputs = (0, 1)

    def forward(self, x, w, b=None):
        x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        y = _matmul(x2, w.T)
        if x.ndim != 2:
            y = y.reshape(*x.shape[:-1], w.shape[0])
        if b is not None:
            y += b
        return y

    def backward(self, g):
        x, w = self.saved_tensors()
        nxt = self.next
        has_b = len(nxt) == 3
        if STATE.enabled:  # create_graph: differentiable formula
            g2 = g.reshape(-1, g.shape[-1])
            x2 = x.reshape(-1, x.shape[-1])
            gx = (g @ w) if nxt[0] is not None else None
            gw = (g2.mT @ x2) if nxt[1] is not None else None
            gb = g2.sum(0) if has_b and nxt[2] is not None else None
        else:
            ga = gemm_ready(g._data)
            g2 = ga.reshape(-1, ga.shape[-1])
            gx = gw = gb = None
            if nxt[0] is not None:
                gx = _T(_matmul(g2, w._data).reshape(x._data.shape))
            if nxt[1] is not None:
                gw = _T(g2.T @ x._data.reshape(-1, x._data.shape[-1]))
            if has_b and nxt[2] is not None:
                gb = _T(g2.sum(0))
        return (gx, gw, gb) if has_b else (gx, gw)

    @classmethod
    def op_name(cls):
        return "Addmm"


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Fused ``input @ weight.T + bias`` (one node)."""
    x = input
    if x._data.ndim == 0:
        raise RuntimeError("linear(): input must have at least 1 dimension, got a 0-d tensor")
    if weight._data.ndim != 2:
        from .linalg import matmul

        out = matmul(x, weight.t() if weight._data.ndim == 2 else weight)
        return out + bias if bias is not None else out
    if x._data.shape[-1] != weight._data.shape[1]:
        sa = (
            "x".join(map(str, x._data.reshape(-1, x._data.shape[-1]).shape))
            if x._data.size
            else f"0x{x._data.shape[-1]}"
        )
        from ._util import ShapeError

        raise ShapeError(
            f"mat1 and mat2 shapes cannot be multiplied ({sa} and "
            f"{weight._data.shape[1]}x{weight._data.shape[0]})"
        )
    if x._data.dtype != weight._data.dtype or (
        bias is not None and bias._data.dtype != weight._data.dtype
    ):
        dts = [x.dtype.name, weight.dtype.name] + ([bias.dtype.name] if bias is not None else [])
        raise RuntimeError(f"linear(): expected all tensors to have the same dtype, got {dts}")
    if x._data.ndim == 1:
        return apply(
            Linear, (x.unsqueeze(0), weight) + ((bias,) if bias is not None else ())
        ).squeeze(0)
    return apply(Linear, (x, weight, bias) if bias is not None else (x, weight))


# --- layer norm -------------------------------------------------------------------------------


def _mean(a: np.ndarray, axes: tuple) -> np.ndarray:
    """``a.mean(axes, keepdims=True)`` without ``np.mean``'s Python wrapper (same result:
    NumPy's mean is this add.reduce followed by a division by the count)."""
    s = np.add.reduce(a, axis=axes, keepdims=True)
    n = 1
    for ax in axes:
        n *= a.shape[ax]
    s /= n
    return s


class LayerNorm(Node):
    """Normalise over the last ``k`` dims, then scale/shift. Inputs: x, [weight, [bias]]."""

    __slots__ = ("k", "eps", "xhat", "rstd", "n_aff")
    save_inputs = (0,)

    def forward(self, x, *affine, k, eps):
        self.k, self.eps, self.n_aff = k, eps, len(affine)
        axes = tuple(range(x.ndim - k, x.ndim))
        mu = _mean(x, axes)
        xc = x - mu
        var = _mean(xc * xc, axes)
        rstd = 1.0 / np.sqrt(var + x.dtype.type(eps))
        # in place: one MB-sized temporary fewer (each costs page faults), same arithmetic
        xhat = np.multiply(xc, rstd, out=xc) if type(xc) is np.ndarray else xc * rstd
        self.xhat, self.rstd = xhat, rstd
        if not affine:
            return xhat
        out = xhat * affine[0]
        if len(affine) > 1:
            out += affine[1]
        return out

    def backward(self, g):
        k = self.k
        nxt = self.next
        if STATE.enabled:
            x = self.saved_tensors()[0]
            axes = tuple(range(x.ndim - k, x.ndim))
            mu = x.mean(axes, keepdim=True)
            xc = x - mu
            rstd = ((xc * xc).mean(axes, keepdim=True) + self.eps).rsqrt()
            xhat = xc * rstd
            w = self._affine(0)
            gxh = g * w if w is not None else g
            gx = rstd * (
                gxh - gxh.mean(axes, keepdim=True) - xhat * (gxh * xhat).mean(axes, keepdim=True)
            )
            lead = tuple(range(x.ndim - k))
            gw = (g * xhat).sum(lead) if self.n_aff >= 1 and nxt[1] is not None else None
            gb = g.sum(lead) if self.n_aff >= 2 and nxt[2] is not None else None
        else:
            self.saved_tensors()  # version check of x and the affine params
            xhat = self.xhat
            ga = g._data
            axes = tuple(range(xhat.ndim - k, xhat.ndim))
            lead = tuple(range(xhat.ndim - k))
            w = self._affine(0)
            gxh = ga * w._data if w is not None else ga
            gx = None
            if nxt[0] is not None:
                a = _mean(gxh, axes)
                b = _mean(gxh * xhat, axes)
                gx = _T((gxh - a - xhat * b) * self.rstd)
            gw = _T((ga * xhat).sum(axis=lead)) if self.n_aff >= 1 and nxt[1] is not None else None
            gb = _T(ga.sum(axis=lead)) if self.n_aff >= 2 and nxt[2] is not None else None
        return (gx, gw, gb)[: 1 + self.n_aff]

    def _affine(self, i):
        return self.saved[1 + i] if self.n_aff > i else None

    def release(self):
        super().release()
        self.xhat = self.rstd = None


class _LayerNormAff(LayerNorm):
    __slots__ = ()
    save_inputs = (0, 1)


class _LayerNormAffBias(LayerNorm):
    __slots__ = ()
    save_inputs = (0, 1, 2)


def layer_norm(
    input: Tensor, normalized_shape, weight=None, bias=None, eps: float = 1e-5
) -> Tensor:
    """Fused layer normalisation over the trailing ``normalized_shape`` dims."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    xs = tuple(input._data.shape)
    if k == 0 or xs[len(xs) - k :] != shape or len(xs) < k:
        raise RuntimeError(
            f"Given normalized_shape={list(shape)}, expected input with shape [*, "
            f"{', '.join(map(str, shape))}], but got input of size{list(xs)}"
        )
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p._data.shape) != shape:
            raise RuntimeError(
                f"layer_norm(): expected {name} of shape {list(shape)}, got {list(p._data.shape)}"
            )
    if input._data.dtype.kind != "f":
        raise RuntimeError(f"layer_norm(): expected a floating point input, got {input.dtype.name}")
    if weight is None and bias is not None:
        weight = Tensor._make(np.ones(shape, input._data.dtype))
    if weight is None:
        return apply(LayerNorm, (input,), {"k": k, "eps": eps})
    if bias is None:
        return apply(_LayerNormAff, (input, weight), {"k": k, "eps": eps})
    return apply(_LayerNormAffBias, (input, weight, bias), {"k": k, "eps": eps})


# --- cross entropy with class indices ---------------------------------------------------------


class CrossEntropy(Node):
    """Log-softmax + NLL over rows of a 2-D logit matrix with integer targets.

    Per row i with target t (non-ignored, ``m_i``): ``(1-e) w_t (-logp_it) + (e/C) sum_c w_c
    (-logp_ic)``; 'mean' divides the total by ``sum_i m_i w_t`` (PyTorch). The vjp is
    ``p * ((1-e) w_t + (e/C) W) - (1-e) w_t onehot - (e/C) w``, scaled by the upstream
    gradient and the mean's denominator."""

    __slots__ = ("target", "weight", "ls", "reduction", "mask", "logp", "denom", "wt")
    save_inputs = (0,)

    def forward(self, z, target, weight, ignore_index, ls, reduction):
        n, c = z.shape
        self.target, self.weight, self.ls, self.reduction = target, weight, ls, reduction
        zz = z.astype(np.float32) if z.dtype == np.float16 else z
        m = np.max(zz, axis=1, keepdims=True) if c else np.zeros((n, 1), zz.dtype)
        m = np.where(np.isfinite(m), m, 0).astype(zz.dtype, copy=False)
        with errstate():
            logp = zz - m
            logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
        self.logp = logp
        mask = target != ignore_index
        self.mask = mask
        safe_t = np.where(mask, target, 0)
        dt = zz.dtype
        wt = (weight[safe_t] if weight is not None else np.ones(n, dt)) * mask
        wt = wt.astype(dt, copy=False)
        self.wt = wt
        with errstate():
            picked = (
                np.take_along_axis(logp, safe_t[:, None], axis=1)[:, 0] if n else np.zeros(0, dt)
            )
            per = -(picked * wt)
            if ls:
                lw = logp * weight if weight is not None else logp
                smooth = -lw.sum(axis=1) * mask
                per = (1.0 - ls) * per + (ls / c) * smooth
        per = np.where(mask, per, 0).astype(dt, copy=False)
        if reduction == "none":
            self.denom = None
            return per.astype(z.dtype, copy=False)
        total = per.sum(dtype=dt)
        if reduction == "sum":
            self.denom = None
            return np.asarray(total, dtype=z.dtype)
        denom = wt.sum(dtype=dt)
        self.denom = denom
        with errstate():
            return np.asarray(total / denom, dtype=z.dtype)

    def _coefs(self, c, dt):
        """Per-row scale of p and the constant (target/smoothing) term, as arrays."""
        ls = self.ls
        wt = self.wt
        if ls:
            wsum = self.weight.sum() if self.weight is not None else c
            pc = (1.0 - ls) * wt + (ls / c) * wsum * self.mask
        else:
            pc = wt
        n = wt.shape[0]
        const = np.zeros((n, c), dt)
        if n:
            safe_t = np.where(self.mask, self.target, 0)
            const[np.arange(n), safe_t] = (1.0 - ls) * wt
        if ls:
            wrow = self.weight if self.weight is not None else np.ones(c, dt)
            const += (ls / c) * wrow[None, :] * self.mask[:, None]
        return pc.astype(dt, copy=False), const

    def backward(self, g):
        self._check_alive()
        logp = self.logp
        n, c = logp.shape
        dt = logp.dtype
        pc, const = self._coefs(c, dt)
        if self.reduction == "mean":
            # all targets ignored: the loss is nan (0/0) but the gradient is 0 (PyTorch)
            scale = (np.ones((), dt) / self.denom).astype(dt) if self.denom else np.zeros((), dt)
        else:
            scale = np.ones((), dt)
        if STATE.enabled:
            (z,) = self.saved_tensors()
            p = z.softmax(1)
            gr = g.reshape(-1, 1) if self.reduction == "none" else g
            res = (p * _T(pc[:, None]) - _T(const)) * (gr * _T(scale))
            return (res.to(z.dtype),)
        ga = g._data
        gr = ga.reshape(-1, 1) if self.reduction == "none" else ga
        p = np.exp(logp)
        p *= pc[:, None]
        p -= const
        p *= gr * scale
        return (_T(p.astype(self.in_meta[0][1], copy=False)),)

    def release(self):
        super().release()
        self.logp = None

    @classmethod
    def op_name(cls):
        return "NllLoss"


def cross_entropy_indices(
    z2d: Tensor,
    target: np.ndarray,
    weight,
    ignore_index: int,
    label_smoothing: float,
    reduction: str,
) -> Tensor:
    """Fused CE on (N, C) logits with int64 targets (N,), validated by the caller."""
    w = None if weight is None else weight._data.astype(z2d._data.dtype, copy=False)
    return apply(
        CrossEntropy,
        (z2d,),
        {
            "target": target,
            "weight": w,
            "ignore_index": ignore_index,
            "ls": float(label_smoothing),
            "reduction": reduction,
        },
    )


# --- embedding --------------------------------------------------------------------------------


class Embedding(Node):
    """Row lookup ``weight[idx]``; the vjp scatter-adds rows (repeated ids accumulate)."""

    __slots__ = ("idx", "padding_idx")

    def forward(self, w, idx, padding_idx):
        self.idx, self.padding_idx = idx, padding_idx
        return w[idx]

    def backward(self, g):
        idx = self.idx.reshape(-1)
        nrows, dim = self.in_meta[0][0][0], self.in_meta[0][0][1:]
        if STATE.enabled:
            from .indexing import index_add

            g2 = g.reshape(-1, *dim)
            if self.padding_idx is not None:
                keep = (idx != self.padding_idx).reshape(-1, *([1] * len(dim)))
                g2 = g2 * _T(keep.astype(g2._data.dtype))
            zero = _T(np.zeros((nrows, *dim), g._data.dtype))
            return (index_add(zero, 0, _T(idx), g2),)
        g2 = g._data.reshape(-1, *dim)
        if self.padding_idx is not None:
            sel = idx != self.padding_idx
            idx, g2 = idx[sel], g2[sel]
        return (_T(_scatter_rows(idx, g2, nrows)),)


def _scatter_rows(idx: np.ndarray, rows: np.ndarray, nrows: int) -> np.ndarray:
    """``out[idx[i]] += rows[i]`` with repeated ids summed. NOTE: sort + ``add.reduceat`` is
    2-3x faster than ``np.add.at`` for row scatters."""
    out = np.zeros((nrows, *rows.shape[1:]), rows.dtype)
    if idx.size == 0:
        return out
    order = np.argsort(idx, kind="stable")
    sidx = idx[order]
    uniq, starts = np.unique(sidx, return_index=True)
    out[uniq] = np.add.reduceat(rows[order], starts, axis=0)
    return out


def embedding_lookup(weight: Tensor, idx: np.ndarray, padding_idx) -> Tensor:
    return apply(Embedding, (weight,), {"idx": idx, "padding_idx": padding_idx})


# --- binary cross entropy ---------------------------------------------------------------------


class BinaryCrossEntropy(Node):
    """``-(y log p + (1-y) log(1-p))`` with each log clamped at -100 (PyTorch). NOTE: a
    primitive because the composite's gradient is 0 * inf = NaN at p in {0, 1}; this vjp is
    ``(p - y) / max(p (1-p), 1e-12)`` like PyTorch's."""

    __slots__ = ()
    save_inputs = (0, 1)

    def forward(self, p, y):
        with errstate():
            lp = np.maximum(np.log(p), -100)
            l1p = np.maximum(np.log1p(-p), -100)
        return (-(y * lp + (1 - y) * l1p)).astype(p.dtype, copy=False)

    def backward(self, g):
        from .elementwise import clamp, log, log1p

        p, y = self.saved_tensors()
        gp = gy = None
        if self.next[0] is not None:
            gp = g * (p - y) / clamp(p * (1.0 - p), min=1e-12)
        if self.next[1] is not None:
            gy = g * (clamp(log1p(-p), min=-100) - clamp(log(p), min=-100))
        return gp, gy


class BCEWithLogits(Node):
    """``lw * softplus(x) - pw * y * x`` with ``lw = (pw - 1) y + 1`` (equal to PyTorch's
    ``(1-y) x + lw softplus(-x)``). NOTE: a primitive so that x = -inf with y = 0 gives loss 0
    and gradient 0 instead of inf - inf; vjp ``lw sigmoid(x) - pw y``."""

    __slots__ = ("pw",)
    save_inputs = (0, 1)

    def forward(self, x, y, pw):
        self.pw = pw
        with errstate():
            sp = np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))
            lw = 1 + (pw - 1) * y if pw is not None else 1
            xy = np.where(y == 0, 0, (y if pw is None else pw * y) * x)
            return (lw * sp - xy).astype(x.dtype, copy=False)

    def backward(self, g):
        from .elementwise import sigmoid, softplus

        x, y = self.saved_tensors()
        pw = None if self.pw is None else _T(np.asarray(self.pw, x._data.dtype))
        gx = gy = None
        if self.next[0] is not None:
            if pw is None:
                gx = g * (sigmoid(x) - y)
            else:
                gx = g * ((1.0 + (pw - 1.0) * y) * sigmoid(x) - pw * y)
        if self.next[1] is not None:
            gy = -g * x if pw is None else g * ((pw - 1.0) * softplus(x) - pw * x)
        return gx, gy

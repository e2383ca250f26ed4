"""Fused scaled-dot-product attention: ``softmax(q k^T * scale + mask) v``.

NOTE: a fused primitive rather than a composite for speed and memory: it records one node
instead of six, and keeps only q, k, v and the probabilities (the scores are not kept).
Rows whose every key is masked give zeros (and zero gradients), as PyTorch does. The vjp
is written with Tensor ops; under ``create_graph`` it recomputes the probabilities from q
and k with differentiable ops, so gradients of any order are exact.
"""

from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import STATE
from ..autograd.node import Node, apply
from ..tensor import Tensor
from ._util import errstate, sum_to


def _probs(s: np.ndarray) -> np.ndarray:
    """Row softmax of scores in place; all-``-inf`` rows become zeros."""
    m = s.max(axis=-1, keepdims=True)
    dead = ~np.isfinite(m) & (m < 0)
    if dead.any():
        m = np.where(dead, 0, m)
    with errstate(over="ignore", invalid="ignore"):
        s -= m
        np.exp(s, out=s)
        tot = s.sum(axis=-1, keepdims=True)
        if dead.any():
            tot = np.where(dead, 1, tot)
        s /= tot
    return s


class ScaledDotProductAttention(Node):
    """Inputs ``q (..., L, E)``, ``k (..., S, E)``, ``v (..., S, Ev)`` (equal batch shapes)
    and optionally a float mask that needs a gradient; ``mask`` (a constant additive array
    or None) and the dropout ``keep`` mask (scaled, or None) are parameters."""

    __slots__ = ("scale", "mask", "keep", "probs", "has_mask_input")
    save_inputs = (0, 1, 2)

    def forward(self, q, k, v, m=None, *, scale, mask, keep):
        self.scale, self.keep = scale, keep
        self.has_mask_input = m is not None
        self.mask = mask
        s = np.matmul(q, np.swapaxes(k, -1, -2))
        s *= s.dtype.type(scale)
        if mask is not None:
            s += mask
        if m is not None:
            s += m
        p = _probs(s)
        self.probs = p
        pd = p * keep if keep is not None else p
        return np.matmul(pd, v)

    def _recompute(self, q, k, m):
        """Differentiable probabilities (for double backward)."""
        from .elementwise import where
        from .reduce import softmax

        s = (q @ k.mT) * self.scale
        if self.mask is not None:
            lo = np.finfo(s._data.dtype).min / 4  # finite stand-in for -inf: no NaN in vjps
            s = s + Tensor._make(np.maximum(self.mask, lo).astype(s._data.dtype, copy=False))
        if m is not None:
            s = s + m
        p = softmax(s, -1)
        dead = ~(self.probs.sum(-1, keepdims=True) > 0)
        if dead.any():
            p = where(Tensor._make(dead), Tensor._make(np.zeros((), p._data.dtype)), p)
        return p

    def backward(self, g):
        saved = self.saved_tensors()
        q, k, v = saved[:3]
        m = saved[3] if self.has_mask_input else None
        if not STATE.enabled:
            return self._backward_numpy(g._data, q._data, k._data, v._data)
        p = self._recompute(q, k, m)
        # create_graph: the same formula in Tensor ops on differentiable probabilities
        keep = Tensor._make(self.keep) if self.keep is not None else None
        pd = p * keep if keep is not None else p
        need_q, need_k, need_v = (self.next[i] is not None for i in range(3))
        need_m = self.has_mask_input and self.next[3] is not None
        gv = pd.mT @ g if need_v else None
        gq = gk = gm = None
        if need_q or need_k or need_m:
            gp = g @ v.mT
            if keep is not None:
                gp = gp * keep
            gs = p * (gp - (gp * p).sum(-1, keepdim=True))
            if need_m:
                gm = sum_to(gs, self.in_meta[3][0])
            gs = gs * self.scale
            gq = gs @ k if need_q else None
            gk = gs.mT @ q if need_k else None
        if self.has_mask_input:
            return gq, gk, gv, gm
        return gq, gk, gv

    def _backward_numpy(self, g, q, k, v):
        """The same vjp on arrays (plain backward: no graph of it is wanted)."""
        g = np.ascontiguousarray(g)  # an expanded (stride-0) gradient would defeat BLAS
        p, keep = self.probs, self.keep
        pd = p * keep if keep is not None else p
        need_q, need_k, need_v = (self.next[i] is not None for i in range(3))
        need_m = self.has_mask_input and self.next[3] is not None
        gq = gk = gv = gm = None
        if need_v:
            gv = Tensor._make(np.matmul(np.swapaxes(pd, -1, -2), g))
        if need_q or need_k or need_m:
            gp = np.matmul(g, np.swapaxes(v, -1, -2))
            if keep is not None:
                gp *= keep
            gs = p * (gp - (gp * p).sum(-1, keepdims=True))
            if need_m:
                gm = sum_to(Tensor._make(gs), self.in_meta[3][0])
            gs = gs * gs.dtype.type(self.scale)  # not in place: gm may share gs
            if need_q:
                gq = Tensor._make(np.matmul(gs, k))
            if need_k:
                gk = Tensor._make(np.matmul(np.swapaxes(gs, -1, -2), q))
        if self.has_mask_input:
            return gq, gk, gv, gm
        return gq, gk, gv

    @classmethod
    def op_name(cls):
        return "ScaledDotProductAttention"


class _SDPAWithMask(ScaledDotProductAttention):
    """Variant that keeps the learnable float mask for the double-backward recompute."""

    __slots__ = ()
    save_inputs = (0, 1, 2, 3)


def sdpa_raw(q: Tensor, k: Tensor, v: Tensor, mask_t: Tensor | None, mask: np.ndarray | None,
             keep: np.ndarray | None, scale: float) -> Tensor:
    """Record the fused attention (arguments already checked and broadcast)."""
    params = {"scale": scale, "mask": mask, "keep": keep}
    if mask_t is not None:
        return apply(_SDPAWithMask, (q, k, v, mask_t), params)
    return apply(ScaledDotProductAttention, (q, k, v), params)

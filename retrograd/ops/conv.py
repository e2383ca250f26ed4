"""Fused 2-D convolution primitives: im2col + one GEMM.

Three ops close the convolution family under differentiation. With the bilinear form
``B(x, y, w) = <y, conv2d(x, w)>``:

* ``Conv2d(x, w[, b])``       = conv2d(x, w) (+ b),
* ``ConvInputGrad(y, w)``     = dB/dx, the transposed convolution,
* ``ConvWeightGrad(x, y)``    = dB/dw, the weight gradient.

The vjp of each is made of the other two, so gradients of any order work. ``Unfold``
(im2col) and ``Fold`` (col2im) are each other's vjp. Every geometry is described by one
``Geo`` tuple: kernel, stride, dilation, (asymmetric) padding, groups and the input's
spatial size, so a transposed convolution knows the exact size it must produce.

NOTE: these are fused primitives, not composites, for speed: a composite over shifted
slices would record ``kh*kw`` nodes and copy the input ``kh*kw`` times per op.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..autograd.node import Node, apply
from ..tensor import Tensor


class Geo(NamedTuple):
    """Geometry of a 2-D sliding window over an (unpadded) ``H x W`` input."""

    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int  # padding top, bottom, left, right
    pb: int
    pl: int
    pr: int
    groups: int
    H: int
    W: int

    @property
    def out_hw(self) -> tuple[int, int]:
        oh = (self.H + self.pt + self.pb - self.dh * (self.kh - 1) - 1) // self.sh + 1
        ow = (self.W + self.pl + self.pr - self.dw * (self.kw - 1) - 1) // self.sw + 1
        return oh, ow

    @property
    def padded(self) -> bool:
        return self.pt > 0 or self.pb > 0 or self.pl > 0 or self.pr > 0

    @property
    def padded_hw(self) -> tuple[int, int]:
        """Size of the padded input buffer. A negative bottom/right pad (a transposed conv
        with output_padding >= stride) only means the windows stop short of the edge."""
        return self.H + self.pt + max(self.pb, 0), self.W + self.pl + max(self.pr, 0)


def _pad(x: np.ndarray, g: Geo, fill=0) -> np.ndarray:
    if not g.padded:
        return x
    n, c, h, w = x.shape
    xp = np.full((n, c) + g.padded_hw, fill, x.dtype)
    xp[:, :, g.pt : g.pt + h, g.pl : g.pl + w] = x
    return xp


def im2col(x: np.ndarray, g: Geo, conv_order: bool = True) -> np.ndarray:
    """``(N, C, H, W)`` -> contiguous ``(rows, N*OH*OW)`` column matrix (one copy).

    Rows are ordered ``(group, kh, kw, C/G)`` for the convolutions (``conv_order``): each
    kernel offset is then one contiguous slab, which copies faster; ``F.unfold`` needs
    PyTorch's ``(C, kh, kw)`` order."""
    n, c, h, w = x.shape
    oh, ow = g.out_hw
    xp = _pad(x, g)
    s_n, s_c, s_h, s_w = xp.strides
    if conv_order:
        cg = c // g.groups
        shape = (g.groups, g.kh, g.kw, cg, n, oh, ow)
        strides = (s_c * cg, s_h * g.dh, s_w * g.dw, s_c, s_n, s_h * g.sh, s_w * g.sw)
    else:
        shape = (c, g.kh, g.kw, n, oh, ow)
        strides = (s_c, s_h * g.dh, s_w * g.dw, s_n, s_h * g.sh, s_w * g.sw)
    view = as_strided(xp, shape, strides, writeable=False)
    return view.reshape(c * g.kh * g.kw, n * oh * ow)


def col2im(col: np.ndarray, g: Geo, n: int, c: int, conv_order: bool = True) -> np.ndarray:
    """Adjoint of :func:`im2col`: sum each column entry back to its pixel, ``(N, C, H, W)``.

    Loops over the ``kh*kw`` kernel offsets only; each iteration is one strided add."""
    oh, ow = g.out_hw
    hp, wp = g.padded_hw
    if conv_order:
        cg = c // g.groups
        blocks = col.reshape(g.groups, g.kh, g.kw, cg, n, oh, ow)
        xp = np.zeros((g.groups, cg, n, hp, wp), col.dtype)
    else:
        blocks = col.reshape(c, g.kh, g.kw, n, oh, ow)
        xp = np.zeros((c, n, hp, wp), col.dtype)
    he, we = g.sh * (oh - 1) + 1, g.sw * (ow - 1) + 1
    for i in range(g.kh):
        for j in range(g.kw):
            r, s = i * g.dh, j * g.dw
            xp[..., r : r + he : g.sh, s : s + we : g.sw] += blocks[:, i, j]
    xp = xp.reshape(c, n, hp, wp)
    out = xp[:, :, g.pt : g.pt + g.H, g.pl : g.pl + g.W].transpose(1, 0, 2, 3)
    return np.ascontiguousarray(out)


def _grouped(w: np.ndarray, groups: int) -> np.ndarray:
    """Weight ``(O, C/G, kh, kw)`` as ``(G, O/G, kh*kw*C/G)`` (the im2col row order)."""
    o, cg, kh, kw = w.shape
    wg = w.reshape(groups, o // groups, cg, kh, kw).transpose(0, 1, 3, 4, 2)
    return np.ascontiguousarray(wg).reshape(groups, o // groups, kh * kw * cg)


def _ungrouped(wg: np.ndarray, wshape: tuple) -> np.ndarray:
    """Inverse of :func:`_grouped`."""
    o, cg, kh, kw = wshape
    g = wg.shape[0]
    w = wg.reshape(g, o // g, kh, kw, cg).transpose(0, 1, 4, 2, 3)
    return np.ascontiguousarray(w).reshape(wshape)


def _grad_rows(y: np.ndarray, groups: int) -> np.ndarray:
    """Output-shaped ``(N, O, OH, OW)`` as ``(G, O/G, N*OH*OW)`` (one copy)."""
    n, o = y.shape[:2]
    return np.ascontiguousarray(y.transpose(1, 0, 2, 3)).reshape(groups, o // groups, -1)


def _gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched over groups; a single 2-D GEMM (multithreaded BLAS) when there is one."""
    if a.shape[0] == 1:
        return np.dot(a[0], b[0])[None]
    return np.matmul(a, b)


class Conv2d(Node):
    """``conv2d(x, w) + b`` for ``x (N, C, H, W)``, ``w (O, C/G, kh, kw)``, ``b (O,)``."""

    __slots__ = ("geo", "col")
    save_inputs = (0, 1)

    def forward(self, x, w, b=None, *, geo):
        self.geo = geo
        n = x.shape[0]
        o = w.shape[0]
        oh, ow = geo.out_hw
        col = im2col(x, geo)
        self.col = col  # reused by the weight gradient, dropped after use
        res = _gemm(_grouped(w, geo.groups), col.reshape(geo.groups, -1, col.shape[1]))
        y = res.reshape(o, n, oh, ow).transpose(1, 0, 2, 3)
        out = np.empty((n, o, oh, ow), x.dtype)
        if b is not None:
            np.add(y, b.reshape(o, 1, 1), out=out)
        else:
            np.copyto(out, y)
        return out

    def backward(self, g):
        x, w = self.saved_tensors()
        col, self.col = self.col, None
        gx = gw = gb = None
        # weight gradient first, so the saved column matrix is freed before the input
        # gradient allocates its own (lower peak memory)
        if self.next[1] is not None:
            params = {"geo": self.geo, "wshape": w._data.shape, "col": col}
            col = None
            gw = apply(ConvWeightGrad, (x, g), params)
            del params
        col = None
        if self.next[0] is not None:
            gx = apply(ConvInputGrad, (g, w), {"geo": self.geo})
        if len(self.next) > 2:
            gb = g.sum((0, 2, 3)) if self.next[2] is not None else None
            return gx, gw, gb
        return gx, gw

    @classmethod
    def op_name(cls):
        return "Convolution"


class ConvInputGrad(Node):
    """Transposed convolution of ``y (N, O, OH, OW)`` by ``w (O, C/G, kh, kw)`` into the
    ``(N, C, H, W)`` input space of ``geo`` (``conv_transpose2d`` without bias)."""

    __slots__ = ("geo",)
    save_inputs = (0, 1)

    def forward(self, y, w, *, geo):
        self.geo = geo
        n = y.shape[0]
        c = w.shape[1] * geo.groups
        wg = _grouped(w, geo.groups).transpose(0, 2, 1)
        col = _gemm(wg, _grad_rows(y, geo.groups))
        return col2im(col.reshape(-1, col.shape[-1]), geo, n, c)

    def backward(self, gx):
        y, w = self.saved_tensors()
        gy = gw = None
        if self.next[0] is not None:
            gy = apply(Conv2d, (gx, w), {"geo": self.geo})
        if self.next[1] is not None:
            params = {"geo": self.geo, "wshape": w._data.shape, "col": None}
            gw = apply(ConvWeightGrad, (gx, y), params)
        return gy, gw

    @classmethod
    def op_name(cls):
        return "ConvolutionBackwardInput"


class ConvWeightGrad(Node):
    """``dB/dw`` for input ``x (N, C, H, W)`` and output-shaped ``y (N, O, OH, OW)``."""

    __slots__ = ("geo",)
    save_inputs = (0, 1)

    def forward(self, x, y, *, geo, wshape, col):
        self.geo = geo
        if col is None:
            col = im2col(x, geo)
        gcol = col.reshape(geo.groups, -1, col.shape[1])
        res = _gemm(_grad_rows(y, geo.groups), gcol.transpose(0, 2, 1))
        return _ungrouped(res, wshape)

    def backward(self, gw):
        x, y = self.saved_tensors()
        gx = gy = None
        if self.next[0] is not None:
            gx = apply(ConvInputGrad, (y, gw), {"geo": self.geo})
        if self.next[1] is not None:
            gy = apply(Conv2d, (x, gw), {"geo": self.geo})
        return gx, gy

    @classmethod
    def op_name(cls):
        return "ConvolutionBackwardWeight"


class Unfold(Node):
    """im2col: ``(N, C, H, W)`` -> ``(N, C*kh*kw, L)`` (``F.unfold``)."""

    __slots__ = ("geo", "c")

    def forward(self, x, *, geo):
        self.geo = geo
        n, c = x.shape[:2]
        self.c = c
        col = im2col(x, geo, conv_order=False)
        return np.ascontiguousarray(col.reshape(col.shape[0], n, -1).transpose(1, 0, 2))

    def backward(self, g):
        return (apply(Fold, (g,), {"geo": self.geo, "c": self.c}),)

    @classmethod
    def op_name(cls):
        return "Im2Col"


class Fold(Node):
    """col2im: ``(N, C*kh*kw, L)`` -> ``(N, C, H, W)``, summing overlaps (``F.fold``)."""

    __slots__ = ("geo",)

    def forward(self, col, *, geo, c):
        self.geo = geo
        n = col.shape[0]
        flat = np.ascontiguousarray(col.transpose(1, 0, 2)).reshape(col.shape[1], -1)
        return col2im(flat, geo, n, c, conv_order=False)

    def backward(self, g):
        return (apply(Unfold, (g,), {"geo": self.geo}),)

    @classmethod
    def op_name(cls):
        return "Col2Im"


def conv2d_raw(x: Tensor, w: Tensor, b: Tensor | None, geo: Geo) -> Tensor:
    """Record the fused convolution (arguments already checked)."""
    ts = (x, w) if b is None else (x, w, b)
    return apply(Conv2d, ts, {"geo": geo})


def conv_input_grad_raw(y: Tensor, w: Tensor, geo: Geo) -> Tensor:
    return apply(ConvInputGrad, (y, w), {"geo": geo})


def unfold_raw(x: Tensor, geo: Geo) -> Tensor:
    return apply(Unfold, (x,), {"geo": geo})


def fold_raw(col: Tensor, geo: Geo, c: int) -> Tensor:
    return apply(Fold, (col,), {"geo": geo, "c": c})

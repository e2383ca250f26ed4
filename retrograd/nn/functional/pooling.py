"""Pooling: max, average and adaptive (1-D and 2-D).

Max pooling is a fused primitive (``_PickMax``): the forward finds each window's first
maximum (PyTorch's tie rule; NaN wins) with a handful of vectorised passes over the
kernel offsets, and the vjp scatters the gradient to those positions. Non-overlapping windows
(kernel == stride, no padding: the common 2x2 pool) take a faster path (``_PickMaxTiled``)
that keeps a one-byte winner code per window instead of flat indices. Average pooling is a
ones-kernel convolution of each channel (the fused conv primitive) divided by PyTorch's
divisor, so all its derivatives come for free.
"""

from __future__ import annotations

import math

import numpy as np

from ...autograd import recycle as _recycle
from ...autograd.grad_mode import STATE
from ...autograd.node import Node, apply
from ...ops.conv import Geo, batch_block, channels_last, conv2d_raw, run_blocks
from ...ops.indexing import getitem
from ...ops.movement import squeeze, unsqueeze
from ...tensor import Tensor

__all__ = [
    "max_pool1d",
    "max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "max_pool1d_with_indices",
    "max_pool2d_with_indices",
]


class _PickMax(Node):
    """``out = x.flat[idx]`` per (N, C) plane for precomputed argmax indices."""

    __slots__ = ("flat", "in_shape", "unique", "keep")

    def forward(self, x, *, flat, out, unique, keep=None):
        self.flat, self.in_shape, self.unique, self.keep = flat, x.shape, unique, keep
        return out

    def backward(self, g):
        params = {
            "flat": self.flat,
            "shape": self.in_shape,
            "unique": self.unique,
            "keep": self.keep,
        }
        return (apply(_ScatterMax, (g,), params),)

    @classmethod
    def op_name(cls):
        return "MaxPool2DWithIndices"


class _ScatterMax(Node):
    """The vjp of ``_PickMax``: add each gradient into its argmax position. Windows that lie
    wholly in the padding (``keep`` False) have no input to send their gradient to."""

    __slots__ = ("flat", "keep")

    def forward(self, g, *, flat, shape, unique, keep):
        self.flat, self.keep = flat, keep
        size = math.prod(shape)
        if keep is not None:
            g = g * keep
        if unique:  # windows cannot share a winner: a plain write
            out = np.zeros(size, g.dtype)
            out[flat.ravel()] = g.ravel()
        else:
            out = np.bincount(flat.ravel(), weights=g.ravel(), minlength=size).astype(g.dtype)
        return out.reshape(shape)

    def backward(self, gg):
        out = getitem(gg.reshape(-1), (self.flat,))
        if self.keep is not None:
            out = out * Tensor._make(self.keep.astype(out._data.dtype))
        return (out,)

    @classmethod
    def op_name(cls):
        return "MaxPool2DWithIndicesBackward"


class _PickMaxTiled(Node):
    """Max pooling over non-overlapping windows (kernel == stride, no padding, dilation 1):
    the winners are kept as a small per-window code (kernel offset), not flat indices."""

    __slots__ = ("code", "k", "in_shape")

    def forward(self, x, *, out, code, k):
        self.code, self.k, self.in_shape = code, k, x.shape
        return out

    def backward(self, g):
        if not STATE.enabled:  # NumPy fast path: no graph of the backward is wanted
            return (Tensor._make(_scatter_tiled(g._data, self.code, self.k, self.in_shape)),)
        flat = _tiled_flat(self.code, self.k, self.in_shape)
        params = {"flat": flat, "shape": self.in_shape, "unique": True, "keep": None}
        return (apply(_ScatterMax, (g,), params),)

    @classmethod
    def op_name(cls):
        return "MaxPool2DWithIndices"


def _tiled_views(x: np.ndarray, k: tuple, oh: int, ow: int):
    kh, kw = k
    return [
        x[:, :, i : i + oh * kh : kh, j : j + ow * kw : kw] for i in range(kh) for j in range(kw)
    ]


def _max_tiled(x: np.ndarray, k: tuple):
    """Max and winning offset code of each ``k``-tile, or None when a window holds a NaN
    (then the general path applies PyTorch's NaN rule). Ties go to the first offset in scan
    order (a strict ``>``), as in PyTorch. Runs over blocks of samples (on as many threads as
    BLAS may use, see ``ops.conv``)."""
    n = x.shape[0]
    oh, ow = x.shape[2] // k[0], x.shape[3] // k[1]
    views = _tiled_views(x, k, oh, ow)
    best = np.empty_like(views[0], order="K")  # channels-last in, channels-last out
    code = np.empty_like(views[0], np.uint8, order="K")
    nb = batch_block(n, x[:1].size * x.itemsize)

    def work(_w, starts):
        for n0 in starts:
            sl = slice(n0, n0 + nb)
            b, cd = best[sl], code[sl]
            np.copyto(b, views[0][sl])
            cd.fill(0)
            gt = np.empty(b.shape, np.bool_)
            tmp = np.empty(b.shape, np.uint8)
            for c, v in enumerate(views[1:], 1):
                # NOTE: the code only grows, so max(code, c * (v > best)) records the last
                # offset that beat the running max; plain ufunc passes (np.where and masked
                # writes are slower)
                v = v[sl]
                np.greater(v, b, out=gt)
                np.multiply(gt, np.uint8(c), out=tmp)
                np.maximum(cd, tmp, out=cd)
                np.maximum(b, v, out=b)
            if np.isnan(b).any():
                return False
            # np.maximum may keep either zero on a +0/-0 tie: take the winner itself there
            z = np.nonzero(b == 0)
            if z[0].size:
                ki, kj = np.divmod(cd[z].astype(np.intp), k[1])
                b[z] = x[z[0] + n0, z[1], z[2] * k[0] + ki, z[3] * k[1] + kj]
        return True

    if not all(run_blocks(list(range(0, n, nb)), work)):
        return None
    return best, code


def _tiled_flat(code: np.ndarray, k: tuple, in_shape: tuple) -> np.ndarray:
    """Flat (whole-array) indices of the winners, from their codes."""
    n, c, h, w = in_shape
    oh, ow = code.shape[2:]
    ki, kj = np.divmod(code.astype(np.int64), k[1])
    rows = np.arange(oh, dtype=np.int64)[:, None] * k[0] + ki
    cols = np.arange(ow, dtype=np.int64) * k[1] + kj
    base = (np.arange(n * c, dtype=np.int64) * (h * w)).reshape(n, c, 1, 1)
    return base + rows * w + cols


def _scatter_tiled(g: np.ndarray, code: np.ndarray, k: tuple, in_shape: tuple) -> np.ndarray:
    """Each window's gradient into its winner's cell (every other cell gets 0)."""
    n, _, h, w = in_shape
    oh, ow = code.shape[2:]
    gx = _recycle.empty(in_shape, g.dtype)
    if oh * k[0] < h:  # cells no window covers (the floor-mode remainder)
        gx[:, :, oh * k[0] :] = 0
    if ow * k[1] < w:
        gx[:, :, :, ow * k[1] :] = 0
    views = _tiled_views(gx, k, oh, ow)
    nb = batch_block(n, gx[:1].size * gx.itemsize)

    def work(_w, starts):
        for n0 in starts:
            sl = slice(n0, n0 + nb)
            cd, gb = code[sl], g[sl]
            mask = np.empty(cd.shape, np.bool_)
            for c, view in enumerate(views):
                np.equal(cd, c, out=mask)
                np.multiply(gb, mask, out=view[sl])

    run_blocks(list(range(0, n, nb)), work)
    return gx


def _tup(v, n, name, op):
    if isinstance(v, int):
        return (v,) * n
    v = tuple(int(i) for i in v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise RuntimeError(f"{op}: {name} must either be a single int, or a tuple of {n} ints")
    return v


def _stride(stride, k, nsp, op):
    """``stride`` defaults (None or empty) to the kernel size."""
    if stride is None or (not isinstance(stride, int) and len(stride) == 0):
        return k
    return _tup(stride, nsp, "stride", op)


def _pool_out(size, k, s, p, d, ceil_mode):
    """PyTorch's pooling output length (a ceil-mode window must start inside the input)."""
    num = size + 2 * p - d * (k - 1) - 1
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _pool_geo(shape, k, s, p, d, ceil_mode, op) -> Geo:
    """Geometry with extra bottom/right padding for ceil_mode windows."""
    h, w = shape[-2:]
    for i in range(2):
        if k[i] <= 0:
            raise RuntimeError(f"{op}: kernel_size must be greater than zero, but got {k}")
        if s[i] <= 0:
            raise RuntimeError(f"{op}: stride must be greater than zero, but got {s}")
        if d[i] <= 0:
            raise RuntimeError(f"{op}: dilation must be greater than zero, but got {d}")
        if p[i] < 0 or p[i] > k[i] // 2:
            raise RuntimeError(
                f"{op}: pad should be at most half of effective kernel size, but got pad={p[i]}, "
                f"kernel_size={k[i]}"
            )
    oh = _pool_out(h, k[0], s[0], p[0], d[0], ceil_mode)
    ow = _pool_out(w, k[1], s[1], p[1], d[1], ceil_mode)
    if oh <= 0 or ow <= 0:
        raise RuntimeError(
            f"{op}: Given input size: ({shape[-3]}x{h}x{w}). Calculated output size: "
            f"({shape[-3]}x{oh}x{ow}). Output size is too small"
        )
    pb = max((oh - 1) * s[0] + d[0] * (k[0] - 1) + 1 - h - p[0], 0)
    pr = max((ow - 1) * s[1] + d[1] * (k[1] - 1) + 1 - w - p[1], 0)
    return Geo(k[0], k[1], s[0], s[1], d[0], d[1], p[0], pb, p[1], pr, 1, h, w)


def _check_input(input, nsp, op):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}(): argument 'input' must be Tensor, not {type(input).__name__}")
    nd = input._data.ndim
    if nd not in (nsp + 1, nsp + 2) or any(s == 0 for s in input._data.shape[1:]):
        raise RuntimeError(
            f"{op}: Expected {nsp + 1}D or {nsp + 2}D (batch mode) tensor with optional 0 dim "
            f"batch size for input, but got: {list(input._data.shape)}"
        )


def _empty_windows(g: Geo):
    """Windows with no input cell (dilated windows over padding only): a ``(OH, OW)`` keep
    mask (None when every window is fine) and the index PyTorch reports for them (its
    first dilated cell at or after 0, which may lie past the input)."""
    oh, ow = g.out_hw
    axes = []
    for n_out, s, p, d, k, size in (
        (oh, g.sh, g.pt, g.dh, g.kh, g.H),
        (ow, g.sw, g.pl, g.dw, g.kw, g.W),
    ):
        start = np.arange(n_out) * s - p
        cells = start[:, None] + np.arange(k) * d
        ok = ((cells >= 0) & (cells < size)).any(1)
        first = np.where(start < 0, start + ((d - 1 - start) // d) * d, start)
        axes.append((ok, first))
    keep = axes[0][0][:, None] & axes[1][0][None, :]
    if keep.all():
        return None, None
    return keep, axes[0][1][:, None] * g.W + axes[1][1][None, :]


def _argmax_windows(x: np.ndarray, g: Geo):
    """Per window: the max and the flat index of its first maximum within each plane."""
    n, c, h, w = x.shape
    oh, ow = g.out_hw
    if g.padded:
        xp = np.full((n, c, h + g.pt + g.pb, w + g.pl + g.pr), -np.inf, x.dtype)
        xp[:, :, g.pt : g.pt + h, g.pl : g.pl + w] = x
    else:
        xp = x
    he, we = g.sh * (oh - 1) + 1, g.sw * (ow - 1) + 1
    best = None
    # winning kernel offset per window, as a small code. NOTE: no masked writes (copyto with
    # where= is ~40x slower than a plain ufunc pass): arg -= (arg - k) * win, and the running
    # max by np.maximum (same comparisons; only the sign of a zero max may differ: fixed below)
    arg = np.zeros((n, c, oh, ow), np.int16 if g.kh * g.kw < 2**15 else np.int64)
    tmp = np.empty_like(arg)
    win = np.empty((n, c, oh, ow), np.bool_)
    for i in range(g.kh):
        for j in range(g.kw):
            r, s = i * g.dh, j * g.dw
            v = xp[:, :, r : r + he : g.sh, s : s + we : g.sw]
            if best is None:
                best = v.copy()
                continue
            np.greater(v, best, out=win)
            if x.dtype.kind == "f":
                win |= np.isnan(v)  # NaN wins, as in PyTorch
            np.subtract(arg, i * g.kw + j, out=tmp)
            tmp *= win
            arg -= tmp
            np.maximum(best, v, out=best)
    # flat index = window origin + offset of the winning kernel cell
    ki, kj = np.divmod(np.arange(g.kh * g.kw), g.kw)
    offset = ki * g.dh * w + kj * g.dw
    origin = (np.arange(oh) * g.sh - g.pt)[:, None] * w + (np.arange(ow) * g.sw - g.pl)
    idx = origin + offset[arg]
    if x.dtype.kind == "f":
        z = np.flatnonzero(best == 0)  # +0.0 vs -0.0: take the winning element itself
        if z.size:
            src = (z // (oh * ow)) * (h * w) + idx.reshape(-1)[z]
            best.reshape(-1)[z] = x.reshape(-1)[src]
    return best, idx


def _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, nsp, op):
    _check_input(input, nsp, op)
    k = _tup(kernel_size, nsp, "kernel_size", op)
    s = _stride(stride, k, nsp, op)
    p = _tup(padding, nsp, "padding", op)
    d = _tup(dilation, nsp, "dilation", op)
    batched = input._data.ndim == nsp + 2
    x = input if batched else unsqueeze(input, 0)
    if nsp == 1:
        x = unsqueeze(x, 2)
        k, s, p, d = (1,) + k, (1,) + s, (0,) + p, (1,) + d
    geo = _pool_geo(x._data.shape, k, s, p, d, ceil_mode, op)
    n, c, h, w = x._data.shape
    if (
        s == k
        and p == (0, 0)
        and d == (1, 1)
        and (geo.pb, geo.pr) == (0, 0)
        and k[0] * k[1] < 256
        and x._data.dtype.kind == "f"
        and x._data.size
    ):
        res = _max_tiled(x._data, k)
        if res is not None:
            best, code = res
            out = apply(_PickMaxTiled, (x,), {"out": best, "code": code, "k": k})
            if nsp == 1:
                out = squeeze(out, 2)
            if not batched:
                out = squeeze(out, 0)
            if not return_indices:
                return out
            idx = _tiled_flat(code, k, (1, 1, h, w))
            idx = idx[:, :, 0] if nsp == 1 else idx
            return out, Tensor._make(idx if batched else idx[0])
    best, idx = _argmax_windows(x._data, geo)
    if channels_last(x._data):  # channels-last in, channels-last out (as PyTorch)
        best = np.ascontiguousarray(best.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    base = (np.arange(n * c, dtype=np.int64) * (h * w)).reshape(n, c, 1, 1)
    # windows that cannot overlap cannot share a winner
    unique = all(st >= dd * (kk - 1) + 1 for st, dd, kk in zip(s, d, k))
    keep, torch_idx = _empty_windows(geo)
    flat = idx
    if keep is not None:
        # -inf output and PyTorch's index; like PyTorch, the gradient goes to that index
        # when it lies inside the plane, and nowhere otherwise
        idx = np.where(keep, idx, torch_idx)
        keep = keep | (torch_idx < h * w)
        flat, unique = np.where(keep, idx, 0), False
        keep = None if keep.all() else keep
    params = {"flat": flat + base, "out": best, "unique": unique, "keep": keep}
    out = apply(_PickMax, (x,), params)
    ind = Tensor._make(idx)
    if nsp == 1:
        out, ind = squeeze(out, 2), Tensor._make(idx[:, :, 0])
    if not batched:
        out, ind = squeeze(out, 0), Tensor._make(ind._data[0])
    return (out, ind) if return_indices else out


def max_pool2d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """2-D max pooling; ``stride`` defaults to ``kernel_size``. The gradient goes to the
    first maximum of each window. With ``return_indices`` also returns flat ``H*W`` indices.

    >>> import retrograd as rg
    >>> rg.nn.functional.max_pool2d(rg.arange(16.).reshape(1, 1, 4, 4), 2).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """
    return _max_pool(
        input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2, "max_pool2d"
    )


def max_pool1d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """1-D max pooling over ``(N, C, L)``.

    >>> import retrograd as rg
    >>> rg.nn.functional.max_pool1d(rg.tensor([[[1., 3., 2., 0.]]]), 2).tolist()
    [[[3.0, 2.0]]]
    """
    return _max_pool(
        input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 1, "max_pool1d"
    )


def max_pool2d_with_indices(
    input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """``max_pool2d`` returning ``(output, indices)``; ``return_indices`` is ignored, as in
    PyTorch."""
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool1d_with_indices(
    input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """``max_pool1d`` returning ``(output, indices)``; ``return_indices`` is ignored, as in
    PyTorch."""
    return max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def _avg_divisor(h, k, s, p, n_out, include_pad):
    """Per output position: the number of cells PyTorch divides by along one axis."""
    start = np.arange(n_out) * s - p
    end = np.minimum(start + k, h + p)
    size = end - start
    if not include_pad:
        size = np.minimum(end, h) - np.maximum(start, 0)
    return size


def _avg_pool(
    input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, nsp, op
):
    _check_input(input, nsp, op)
    k = _tup(kernel_size, nsp, "kernel_size", op)
    s = _stride(stride, k, nsp, op)
    p = _tup(padding, nsp, "padding", op)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError(f"{op}: divisor must be not zero")
    batched = input._data.ndim == nsp + 2
    x = input if batched else unsqueeze(input, 0)
    if nsp == 1:
        x = unsqueeze(x, 2)
        k, s, p = (1,) + k, (1,) + s, (0,) + p
    geo = _pool_geo(x._data.shape, k, s, p, (1, 1), ceil_mode, op)
    n, c, h, w = x._data.shape
    dt = x._data.dtype
    ones = Tensor._make(np.ones((1, 1) + k, dt))
    summed = conv2d_raw(x.reshape(n * c, 1, h, w), ones, None, geo)
    oh, ow = geo.out_hw
    if divisor_override is not None:
        div = np.full((oh, ow), divisor_override, dt)
    else:
        dh = _avg_divisor(h, k[0], s[0], p[0], oh, count_include_pad)
        dw = _avg_divisor(w, k[1], s[1], p[1], ow, count_include_pad)
        div = np.outer(dh, dw).astype(dt)
    out = (summed / Tensor._make(div)).reshape(n, c, oh, ow)
    if nsp == 1:
        out = squeeze(out, 2)
    return out if batched else squeeze(out, 0)


def avg_pool2d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override=None,
) -> Tensor:
    """2-D average pooling with PyTorch's divisor rules.

    >>> import retrograd as rg
    >>> rg.nn.functional.avg_pool2d(rg.arange(16.).reshape(1, 1, 4, 4), 2).tolist()
    [[[[2.5, 4.5], [10.5, 12.5]]]]
    """
    return _avg_pool(
        input,
        kernel_size,
        stride,
        padding,
        ceil_mode,
        count_include_pad,
        divisor_override,
        2,
        "avg_pool2d",
    )


def avg_pool1d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """1-D average pooling.

    >>> import retrograd as rg
    >>> rg.nn.functional.avg_pool1d(rg.tensor([[[1., 3., 2., 0.]]]), 2).tolist()
    [[[2.0, 1.0]]]
    """
    return _avg_pool(
        input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1, "avg_pool1d"
    )


def _adaptive_bounds(size, out):
    start = (np.arange(out) * size) // out
    end = -((-(np.arange(out) + 1) * size) // out)
    return start, end


def _avg_matrix(size, out, dt):
    """``(out, size)`` matrix whose rows average PyTorch's adaptive windows."""
    start, end = _adaptive_bounds(size, out)
    cols = np.arange(size)
    m = (cols >= start[:, None]) & (cols < end[:, None])
    return (m / (end - start)[:, None]).astype(dt)


def _out_size(output_size, shape, nsp, op):
    osz = tuple(output_size) if not isinstance(output_size, int) else (output_size,) * nsp
    if len(osz) == 1:
        osz = osz * nsp
    if len(osz) != nsp:
        raise ValueError(f"{op}: output_size must be 1 or {nsp} elements, got {len(osz)}")
    osz = tuple(shape[len(shape) - nsp + i] if v is None else int(v) for i, v in enumerate(osz))
    if any(v < 0 for v in osz):
        raise RuntimeError(
            f"{op}: elements of output_size must be greater than or equal to 0 "
            f"but received {list(osz)}"
        )
    return osz


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average over ``output_size`` windows that tile the input (PyTorch's bounds).

    >>> import retrograd as rg
    >>> rg.nn.functional.adaptive_avg_pool2d(rg.ones(1, 2, 5, 7), (2, 3)).shape
    retrograd.Size([1, 2, 2, 3])
    """
    _check_input(input, 2, "adaptive_avg_pool2d")
    oh, ow = _out_size(output_size, input._data.shape, 2, "adaptive_avg_pool2d")
    h, w = input._data.shape[-2:]
    dt = input._data.dtype
    if (oh, ow) == (1, 1):
        return input.mean((-2, -1), keepdim=True)
    mh = Tensor._make(_avg_matrix(h, oh, dt))
    mwt = Tensor._make(np.ascontiguousarray(_avg_matrix(w, ow, dt).T))
    return mh @ input @ mwt


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """1-D adaptive average pooling over ``(N, C, L)``.

    >>> import retrograd as rg
    >>> rg.nn.functional.adaptive_avg_pool1d(rg.tensor([[[1., 3., 2.]]]), 2).tolist()
    [[[2.0, 2.5]]]
    """
    _check_input(input, 1, "adaptive_avg_pool1d")
    (o,) = _out_size(output_size, input._data.shape, 1, "adaptive_avg_pool1d")
    m = _avg_matrix(input._data.shape[-1], o, input._data.dtype)
    return input @ Tensor._make(np.ascontiguousarray(m.T))


def _adaptive_max(input, output_size, return_indices, nsp, op):
    _check_input(input, nsp, op)
    osz = _out_size(output_size, input._data.shape, nsp, op)
    batched = input._data.ndim == nsp + 2
    x = input if batched else unsqueeze(input, 0)
    if nsp == 1:
        x = unsqueeze(x, 2)
        osz = (1,) + osz
    a = x._data
    n, c, h, w = a.shape
    oh, ow = osz
    hs, he = _adaptive_bounds(h, oh)
    ws, we = _adaptive_bounds(w, ow)
    idx = np.empty((n, c, oh, ow), np.int64)
    best = np.empty((n, c, oh, ow), a.dtype)
    for i in range(oh):  # loops over output cells only; each cell is one vectorised argmax
        for j in range(ow):
            win = a[:, :, hs[i] : he[i], ws[j] : we[j]].reshape(n, c, -1)
            nan = np.isnan(win)
            am = np.where(nan.any(-1), nan.argmax(-1), win.argmax(-1))
            best[:, :, i, j] = np.take_along_axis(win, am[..., None], -1)[..., 0]
            wl = we[j] - ws[j]
            idx[:, :, i, j] = (hs[i] + am // wl) * w + ws[j] + am % wl
    base = (np.arange(n * c, dtype=np.int64) * (h * w)).reshape(n, c, 1, 1)
    out = apply(_PickMax, (x,), {"flat": idx + base, "out": best, "unique": False})
    if nsp == 1:
        out, idx = squeeze(out, 2), idx[:, :, 0]
    if not batched:
        out, idx = squeeze(out, 0), idx[0]
    return (out, Tensor._make(idx)) if return_indices else out


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """Max over ``output_size`` windows that tile the input.

    >>> import retrograd as rg
    >>> rg.nn.functional.adaptive_max_pool2d(rg.arange(16.).reshape(1, 1, 4, 4), 1).tolist()
    [[[[15.0]]]]
    """
    return _adaptive_max(input, output_size, return_indices, 2, "adaptive_max_pool2d")


def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False):
    """1-D adaptive max pooling.

    >>> import retrograd as rg
    >>> rg.nn.functional.adaptive_max_pool1d(rg.tensor([[[1., 3., 2.]]]), 1).tolist()
    [[[3.0]]]
    """
    return _adaptive_max(input, output_size, return_indices, 1, "adaptive_max_pool1d")

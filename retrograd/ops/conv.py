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

Ungrouped convolutions (``groups == 1``) work channels-last inside: the column matrix is
``(N*OH*OW, kh*kw*C)`` gathered from an ``(N, H, W, C)`` view of the input (contiguous runs
of channels), and all three GEMMs (``col @ W.T``, ``dY.T @ col``, ``dY @ W``) take the
orientation OpenBLAS runs fastest. Outputs keep PyTorch's memory format: NCHW-contiguous,
or channels-last when the input is channels-last (then no transposing copy at all).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..autograd import recycle as _recycle
from ..autograd.grad_mode import STATE
from ..autograd.node import Node, apply
from ..tensor import Tensor

_T = Tensor._make


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


# --- channels-last fast path (groups == 1) --------------------------------------------------
#
# NOTE: the work is cache-blocked over the batch: a few samples at a time are gathered into a
# column block of ~2 MiB that the GEMM reads while it is still in cache (the gather then costs
# almost nothing, and no batch-sized column matrix is allocated or kept: the weight gradient
# gathers its blocks again). The output transposes and the input gradient's per-offset adds
# run on the same cache-sized blocks.

_BLOCK_BYTES = 2 << 20
# NOTE: where BLAS is multithreaded but the blocks run on one Python thread (the default, see
# run_blocks), small blocks lose: each small GEMM pays the BLAS threads' hand-off, and between
# GEMMs the idle BLAS threads spin on the cores the gathers and adds need. Batch-sized blocks
# measured faster there (cnn, 2 threads: 51 vs 55 ms/step), 2 MiB ones at 1 thread (49 vs 57).
_BLOCK_BYTES_MT = 64 << 20


def channels_last(a: np.ndarray) -> bool:
    """Whether a 4-D array is laid out ``(N, H, W, C)`` but not NCHW-contiguous (PyTorch's
    ``channels_last`` memory format; with one channel both layouts coincide: NCHW wins)."""
    if a.shape[1] == 1 or a.flags.c_contiguous:
        return False
    return a.transpose(0, 2, 3, 1).flags.c_contiguous


def batch_block(n: int, per_sample: int) -> int:
    """Samples per block so that a block's largest temporary is about ``_BLOCK_BYTES`` (or
    ``_BLOCK_BYTES_MT`` where one thread runs multithreaded GEMMs, see ``run_blocks``),
    spread evenly over the blocks."""
    nt, threaded = _mode()
    limit = _BLOCK_BYTES if nt == 1 or threaded else max(_BLOCK_BYTES, _BLOCK_BYTES_MT)
    blocks = -(-n * max(per_sample, 1) // limit)
    return max(1, -(-n // max(blocks, 1)))


# NOTE: scratch blocks come from the array pool (autograd/recycle.py): a freshly allocated
# block of a few MB costs a page fault per 4 KiB (glibc hands large freed blocks back to the
# OS), as much as the work done in it; a block is reused once nothing refers to it any more.
_scratch = _recycle.empty


def _nhwc_padded(x: np.ndarray, g: Geo) -> np.ndarray:
    """``(N, C, H, W)`` -> padded ``(N, Hp, Wp, C)`` with unit-stride channels (a view when
    no padding is needed and the input already is channels-last, or has one channel)."""
    n, c, h, w = x.shape
    xt = x.transpose(0, 2, 3, 1)
    if not g.padded:
        if c == 1 or xt.strides[3] == x.itemsize:
            return xt
        xp = _scratch((n, h, w, c), x.dtype)
        np.copyto(xp, xt)
    else:
        hp, wp = g.padded_hw
        xp = _scratch((n, hp, wp, c), x.dtype)
        xp.fill(0)
        xp[:, g.pt : g.pt + h, g.pl : g.pl + w] = xt
    return xp


def _gather(x: np.ndarray, g: Geo, buf: np.ndarray) -> np.ndarray:
    """im2col of ``x (m, C, H, W)`` into ``buf (m*OH*OW, kh*kw*C)``: rows ``(n, oh, ow)``,
    columns ``(kh, kw, C)`` (runs of contiguous channels)."""
    n, c = x.shape[:2]
    oh, ow = g.out_hw
    xp = _nhwc_padded(x, g)
    s_n, s_h, s_w, s_c = xp.strides
    shape = (n, oh, ow, g.kh, g.kw, c)
    strides = (s_n, s_h * g.sh, s_w * g.sw, s_h * g.dh, s_w * g.dw, s_c)
    np.copyto(buf.reshape(shape), as_strided(xp, shape, strides, writeable=False))
    return buf


# NOTE: with more than one BLAS thread allowed, the batch blocks can be shared out among that
# many Python threads (each running its GEMMs on one BLAS thread, the count restored after):
# the gathers, transposes and adds around the GEMMs then use every core too, where a
# multithreaded GEMM alone leaves them on one. NumPy and BLAS release the GIL for this work.
# Each worker owns fixed blocks and sums its own partial weight gradient, and the partials are
# added in worker order, so results do not depend on timing.
# OpenBLAS's idle pool threads spin for ~0.1 s after every multithreaded BLAS call (a Linear
# layer's, say), on the very cores the workers need: the workers then run slower than one
# thread with multithreaded GEMMs. So a parallel region first stops that pool with OpenBLAS's
# own blas_thread_shutdown_ (what it runs before a fork; its next multithreaded call starts
# the pool again), only while no other Python thread exists that could be inside BLAS; or the
# pool threads already sleep at once (OPENBLAS_THREAD_TIMEOUT <= 10 when NumPy loaded it).
# Measured on the cnn benchmark at 2 threads: 48-50 ms/step serial with multithreaded GEMMs,
# 54 with workers beside spinning pool threads, 34-37 with workers and the pool stopped.
_BLAS = None  # NumPy's BLAS as a threadpoolctl controller, or False where unknown
_THREADED = None  # whether blocks may go to Python threads (see the note above)
_POOL: list = [None, 0, 0]  # executor, its worker count, the process it belongs to
_PAR_LOCK = threading.Lock()


def _idle_blas_threads_sleep() -> bool:
    for var in ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT"):
        v = os.environ.get(var, "")
        if v.strip().isdigit():
            return int(v) <= 10
    return False


def _blas():
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController

            libs = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
            ok = len(libs) == 1 and libs[0].internal_api == "openblas"
            _BLAS = libs[0] if ok else False
        except Exception:  # pragma: no cover - no threadpoolctl or an unknown BLAS: serial
            _BLAS = False
    return _BLAS


def _park_fn():
    """OpenBLAS's function that stops its pool threads, or None."""
    return getattr(getattr(_blas(), "dynlib", None), "blas_thread_shutdown_", None)


def _can_park() -> bool:
    """Whether the BLAS pool may be stopped now: no Python thread but this one and the idle
    workers exists (none can be inside a BLAS call). ``RETROGRAD_BLAS_PARK=0`` turns this
    off (convolutions then use their threads only where OpenBLAS's idle threads sleep)."""
    if os.environ.get("RETROGRAD_BLAS_PARK", "1") == "0" or _park_fn() is None:
        return False
    others = [t for t in threading.enumerate() if not t.name.startswith("retrograd-conv")]
    return len(others) <= 1


def _mode() -> tuple:
    """``(BLAS threads, whether blocks go to that many Python threads now)``."""
    global _THREADED
    if _THREADED is None:
        _THREADED = _idle_blas_threads_sleep()
    lib = _blas()
    nt = lib.get_num_threads() if lib else 1
    return nt, nt > 1 and (_THREADED or _can_park())


def run_blocks(starts: list, work) -> list:
    """``work(worker_id, block_starts)`` over the blocks, on as many threads as BLAS may use
    (when that pays, see the note above); returns each worker's result, in worker order."""
    nt, threaded = _mode()
    nw = max(1, min(nt, len(starts))) if threaded else 1
    # one parallel region at a time (it changes the process-wide BLAS thread count); a
    # caller on another thread meanwhile runs its blocks serially
    if nw == 1 or not _PAR_LOCK.acquire(blocking=False):
        return [work(0, starts)]
    lib = _blas()
    try:
        if _POOL[1] < nw - 1 or _POOL[2] != os.getpid():  # a forked child has no threads
            pool = ThreadPoolExecutor(nw - 1, thread_name_prefix="retrograd-conv")
            _POOL[:] = [pool, nw - 1, os.getpid()]
        pool = _POOL[0]
        lib.set_num_threads(1)
        if not _THREADED and _can_park():
            _park_fn()()  # only this thread and the idle workers exist: no BLAS in flight
        try:
            futs = [pool.submit(work, k, starts[k::nw]) for k in range(1, nw)]
            res = [work(0, starts[0::nw])]
            res += [f.result() for f in futs]
        finally:
            lib.set_num_threads(nt)
    finally:
        _PAR_LOCK.release()
    return res


def _conv_nhwc(x: np.ndarray, w: np.ndarray, b, g: Geo, keep_cl: bool) -> np.ndarray:
    """Forward convolution, NCHW-contiguous (or channels-last when ``keep_cl``) output."""
    n, c = x.shape[:2]
    o = w.shape[0]
    oh, ow = g.out_hw
    L, K = oh * ow, g.kh * g.kw * c
    dt = x.dtype
    wt = np.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(K, o)  # (kh*kw*C, O)
    nb = batch_block(n, L * max(K, o) * x.itemsize)
    if keep_cl:
        y2 = _recycle.empty((n * L, o), dt)
        out = y2.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
    else:
        out = _recycle.empty((n, o, oh, ow), dt)
        b3 = None if b is None else b.reshape(o, 1, 1)

    def work(_k, starts):
        col = _scratch((nb * L, K), dt)
        yb = None if keep_cl else _scratch((nb * L, o), dt)
        for n0 in starts:
            m = min(nb, n - n0)
            cb = _gather(x[n0 : n0 + m], g, col[: m * L])
            if keep_cl:
                yc = np.matmul(cb, wt, out=y2[n0 * L : (n0 + m) * L])
                if b is not None:
                    yc += b
                continue
            yc = np.matmul(cb, wt, out=yb[: m * L]).reshape(m, oh, ow, o).transpose(0, 3, 1, 2)
            if b3 is not None:
                np.add(yc, b3, out=out[n0 : n0 + m])
            else:
                np.copyto(out[n0 : n0 + m], yc)

    run_blocks(list(range(0, n, nb)), work)
    return out


def _conv_grads_nhwc(x, w, gy, g: Geo, need_x: bool, need_w: bool, need_b: bool, keep_cl):
    """``(dB/dx, dB/dw, dB/db)`` for output gradient ``gy (N, O, OH, OW)`` (None where not
    needed). ``x`` may be None when ``need_w`` is False; only its shape is needed then.

    The input gradient is a transposed convolution: per kernel offset one GEMM
    ``gy @ w[:, :, i, j]`` whose ``(m, OH, OW, C)`` block is added into a padded
    channels-last buffer (long contiguous runs), instead of one big column matrix and a
    col2im with ``C``-long runs."""
    n, o, oh, ow = gy.shape
    c, kh, kw = w.shape[1:]
    L, K = oh * ow, kh * kw * c
    dt = gy.dtype
    nb = batch_block(n, L * max(K, o) * gy.itemsize)
    gy_cl = channels_last(gy)
    gx = None
    if need_x:
        H, W = g.H, g.W
        if keep_cl:
            gx = _recycle.empty((n, H, W, c), dt).transpose(0, 3, 1, 2)
        else:
            gx = _recycle.empty((n, c, H, W), dt)
        hp, wp = g.padded_hw
        he, we = g.sh * (oh - 1) + 1, g.sw * (ow - 1) + 1
        # NOTE: contiguous (O, C) blocks: a strided weight slice makes the GEMM ~2x slower
        per_offset = c >= 8
        if per_offset:
            wt = np.ascontiguousarray(w.transpose(2, 3, 0, 1))  # (kh, kw, O, C)
        else:  # few channels: one GEMM per block, the strided adds are cheap
            wt = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(o, K)

    def work(_k, starts):
        gyb = None if gy_cl else _scratch((nb * L, o), dt)
        col = _scratch((nb * L, K), dt) if need_w else None
        xpb = _scratch((nb, hp, wp, c), dt) if need_x else None
        gw = np.zeros((o, K), dt) if need_w else None
        gb = np.zeros(o, dt) if need_b else None
        for n0 in starts:
            m = min(nb, n - n0)
            gt = gy[n0 : n0 + m].transpose(0, 2, 3, 1)
            if gy_cl:
                gc = gt.reshape(m * L, o)
            else:
                gc = gyb[: m * L]
                np.copyto(gc.reshape(m, oh, ow, o), gt)
            if need_w:
                cb = _gather(x[n0 : n0 + m], g, col[: m * L])
                gw += gc.T @ cb
            if need_b:
                gb += gc.sum(0)
            if not need_x:
                continue
            xp = xpb[:m]
            xp.fill(0)
            if per_offset:
                for i in range(kh):
                    for j in range(kw):
                        r, s = i * g.dh, j * g.dw
                        t = (gc @ wt[i, j]).reshape(m, oh, ow, c)
                        xp[:, r : r + he : g.sh, s : s + we : g.sw] += t
            else:
                dcol = (gc @ wt).reshape(m, oh, ow, kh, kw, c)
                for i in range(kh):
                    for j in range(kw):
                        r, s = i * g.dh, j * g.dw
                        xp[:, r : r + he : g.sh, s : s + we : g.sw] += dcol[:, :, :, i, j]
            crop = xp[:, g.pt : g.pt + H, g.pl : g.pl + W].transpose(0, 3, 1, 2)
            np.copyto(gx[n0 : n0 + m], crop)
        return gw, gb

    parts = run_blocks(list(range(0, n, nb)), work)
    gw, gb = parts[0]
    for pw, pb in parts[1:]:
        if need_w:
            gw += pw
        if need_b:
            gb += pb
    if need_w:
        gw = np.ascontiguousarray(gw.reshape(o, kh, kw, c).transpose(0, 3, 1, 2))
    return gx, gw, gb


class Conv2d(Node):
    """``conv2d(x, w) + b`` for ``x (N, C, H, W)``, ``w (O, C/G, kh, kw)``, ``b (O,)``."""

    __slots__ = ("geo", "col", "cl")
    save_inputs = (0, 1)

    def forward(self, x, w, b=None, *, geo):
        self.geo = geo
        n = x.shape[0]
        o = w.shape[0]
        oh, ow = geo.out_hw
        if geo.groups == 1:
            self.cl = channels_last(x)
            self.col = None
            return _conv_nhwc(x, w, b, geo, self.cl)
        self.cl = channels_last(x)
        col = im2col(x, geo)
        self.col = col
        res = _gemm(_grouped(w, geo.groups), col.reshape(geo.groups, -1, col.shape[1]))
        return _cn_out(res, n, o, oh, ow, b, self.cl)

    def backward(self, g):
        x, w = self.saved_tensors()
        col, self.col = self.col, None
        nxt = self.next
        has_b = len(nxt) > 2
        geo = self.geo
        if geo.groups == 1 and not STATE.enabled:
            # NumPy fast path (no graph of the backward is wanted): one blocked pass makes
            # all three gradients from the same transposed output-gradient blocks
            gx, gw, gb = _conv_grads_nhwc(
                x._data,
                w._data,
                g._data,
                geo,
                nxt[0] is not None,
                nxt[1] is not None,
                has_b and nxt[2] is not None,
                self.cl,
            )
            gx, gw, gb = (None if a is None else _T(a) for a in (gx, gw, gb))
            return (gx, gw, gb) if has_b else (gx, gw)
        gx = gw = gb = None
        # weight gradient first, so the saved column matrix is freed before the input
        # gradient allocates its own (lower peak memory)
        if nxt[1] is not None:
            params = {"geo": geo, "wshape": w._data.shape, "col": col}
            col = None
            gw = apply(ConvWeightGrad, (x, g), params)
            del params
        col = None
        if nxt[0] is not None:
            gx = apply(ConvInputGrad, (g, w), {"geo": geo})
        if has_b:
            gb = g.sum((0, 2, 3)) if nxt[2] is not None else None
            return gx, gw, gb
        return gx, gw

    @classmethod
    def op_name(cls):
        return "Convolution"


def _cn_out(res, n, o, oh, ow, b, keep_cl=False):
    """Grouped GEMM result ``(G, O/G, N*OH*OW)`` as NCHW-contiguous (or channels-last)
    output plus bias."""
    y = res.reshape(o, n, oh, ow).transpose(1, 0, 2, 3)
    if keep_cl:
        out = _recycle.empty((n, oh, ow, o), res.dtype).transpose(0, 3, 1, 2)
    else:
        out = _recycle.empty((n, o, oh, ow), res.dtype)
    if b is not None:
        np.add(y, b.reshape(o, 1, 1), out=out)
    else:
        np.copyto(out, y)
    return out


class ConvInputGrad(Node):
    """Transposed convolution of ``y (N, O, OH, OW)`` by ``w (O, C/G, kh, kw)`` into the
    ``(N, C, H, W)`` input space of ``geo`` (``conv_transpose2d`` without bias)."""

    __slots__ = ("geo",)
    save_inputs = (0, 1)

    def forward(self, y, w, *, geo):
        self.geo = geo
        n = y.shape[0]
        if geo.groups == 1:
            return _conv_grads_nhwc(None, w, y, geo, True, False, False, channels_last(y))[0]
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
        if geo.groups == 1:
            return _conv_grads_nhwc(
                x, np.empty(wshape, y.dtype), y, geo, False, True, False, False
            )[1]
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

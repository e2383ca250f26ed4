"""Helpers shared by the op families: operand preparation, broadcasting, errors."""

from __future__ import annotations

import math

import numpy as np

from .. import _dtype
from ..autograd.grad_mode import STATE
from ..autograd.node import _EXTOBJ, _SILENT, apply
from ..tensor import Tensor, _wrap_dim


class ShapeError(RuntimeError, ValueError):
    """A shape mismatch. A RuntimeError like PyTorch's, and a ValueError for NumPy-style code."""


def as_operand(x, like: Tensor | None = None) -> Tensor:
    """A Tensor for an op argument (Python scalars and arrays become constants)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return Tensor._make(x)
    if isinstance(x, int | float | bool | np.generic):
        dt = (
            _dtype.result_np_dtype([like._data, x])
            if like is not None
            else _dtype.result_np_dtype([x])
        )
        return Tensor._make(np.asarray(x, dtype=dt))
    from ..creation import _as_array

    return Tensor._make(_as_array(x))


def broadcast_shape(a: tuple, b: tuple, op: str) -> tuple:
    """The broadcast of two shapes, or PyTorch's error naming the clashing dimension."""
    n = max(len(a), len(b))
    pa = (1,) * (n - len(a)) + tuple(a)
    pb = (1,) * (n - len(b)) + tuple(b)
    out = []
    for i, (x, y) in enumerate(zip(pa, pb)):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise ShapeError(
                f"{op}: the size of tensor a ({x}) must match the size of tensor b ({y}) at "
                f"non-singleton dimension {i} (shapes {tuple(a)} and {tuple(b)})"
            )
    return tuple(out)


def cast(t: Tensor, np_dtype) -> Tensor:
    """``t`` converted to ``np_dtype``; differentiable when both are floating."""
    if t._data.dtype == np_dtype:
        return t
    if t._requires_grad and STATE.enabled and np.dtype(np_dtype).kind == "f":
        from .elementwise import Cast

        return apply(Cast, (t,), {"dtype": np.dtype(np_dtype)})
    return Tensor._make(t._data.astype(np_dtype))


_PY_NUM = (float, int)


def _fast2(a, b, float_only: bool):
    """``prepare`` for the common binary cases (same dtype and shape, or a float tensor with a
    Python number, or a 0-d operand that needs no grad); None when the general path is needed."""
    if isinstance(a, Tensor):
        ad = a._data
        dt = ad.dtype
        if isinstance(b, Tensor):
            bd = b._data
            if bd.dtype is not dt and bd.dtype != dt:
                return None
            if float_only and dt.kind != "f":
                return None
            if ad.shape == bd.shape:
                return [a, b]
            if (not ad.ndim and not (a._requires_grad and STATE.enabled)) or (
                not bd.ndim and not (b._requires_grad and STATE.enabled)
            ):
                return [a, b]  # a 0-d constant broadcasts against anything, no vjp to reduce
            return None
        if type(b) in _PY_NUM and dt.kind == "f":
            return [a, scalar_constant(b, dt)]
        return None
    if isinstance(b, Tensor) and type(a) in _PY_NUM and b._data.dtype.kind == "f":
        return [scalar_constant(a, b._data.dtype), b]
    return None


_CONSTANTS: dict = {}  # dtype -> {Python number: read-only 0-d Tensor}


def scalar_constant(x: float | int, dt: np.dtype) -> Tensor:
    """A 0-d constant Tensor of ``x`` in ``dt``, shared between ops (``x * 0.5`` in a loop makes
    no new array). Read-only, so no op can change it for the others."""
    cache = _CONSTANTS.get(dt)
    if cache is None:
        cache = _CONSTANTS[dt] = {}
    key = x
    if not x and type(x) is float and math.copysign(1.0, x) < 0:
        key = "-0.0"  # -0.0 == 0.0 as a dict key, but x + -0.0 and x + 0.0 differ at -0.0
    t = cache.get(key)
    if t is None:
        arr = np.asarray(x, dt)
        t = Tensor._make(arr)
        if x != x or len(cache) >= 256:  # nan != nan: it would never be found again
            return t
        arr.flags.writeable = False
        cache[key] = t
    return t


def prepare(op: str, operands: list, float_only: bool = False) -> list:
    """Promote operands to one dtype (PyTorch rules) and, for those that need grad,
    broadcast explicitly so that the op's vjp sees equal shapes (its gradient is a sum_to)."""
    if len(operands) == 2:
        fast = _fast2(operands[0], operands[1], float_only)
        if fast is not None:
            return fast
    first = next((x for x in operands if isinstance(x, Tensor)), None)  # where(c, 1, 0)
    raw = [x._data if isinstance(x, Tensor) else x for x in operands]
    dt = _dtype.result_np_dtype(raw)
    if float_only and dt.kind != "f":
        dt = _dtype.get_default_dtype().np
    ts = [
        cast(as_operand(x, first), dt) if isinstance(x, Tensor) else Tensor._make(np.asarray(x, dt))
        for x in operands
    ]
    shapes = [t._data.shape for t in ts]
    s0 = shapes[0]
    if any(s != s0 for s in shapes):
        out = s0
        for s in shapes[1:]:
            out = broadcast_shape(out, s, op)
        if STATE.enabled:
            ts = [expand_to(t, out) if t._requires_grad and t._data.shape != out else t for t in ts]
    return ts


def promote(tensors: list) -> list:
    """Cast tensors to their common dtype (no broadcasting)."""
    if len({t._data.dtype for t in tensors}) == 1:
        return tensors
    dt = _dtype.result_np_dtype([t._data for t in tensors])
    return [cast(t, dt) for t in tensors]


def expand_to(t: Tensor, shape: tuple) -> Tensor:
    from .movement import BroadcastTo

    return apply(BroadcastTo, (t,), {"shape": tuple(shape)})


def sum_to(g: Tensor, shape: tuple) -> Tensor:
    """Sum ``g`` down to ``shape`` (the vjp of broadcasting)."""
    if g._data.shape == tuple(shape):
        return g
    from .movement import SumTo

    return apply(SumTo, (g,), {"shape": tuple(shape)})


def dims(dim, ndim: int, op: str):
    """Normalise ``dim`` (None, int, or tuple/list of ints) into a sorted tuple of axes."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int | np.integer):
        d = _wrap_dim(dim, ndim, op)
        return (d,) if ndim else ()  # a 0-d tensor accepts dim 0 / -1 and reduces nothing
    if isinstance(dim, Tensor):
        return dims(dim.tolist(), ndim, op)
    axes = tuple(sorted({_wrap_dim(d, ndim, op) for d in dim}))
    if len(axes) != len(tuple(dim)):
        raise RuntimeError(f"{op}(): dim {tuple(dim)} appears multiple times in the list of dims")
    return axes if ndim else ()


def to_tensor_result(x) -> np.ndarray:
    return x if type(x) is np.ndarray else np.asarray(x)


def check_float(t: Tensor, op: str):
    if t._data.dtype.kind != "f":
        raise RuntimeError(f"{op}(): expected a floating point tensor, got {t.dtype.name}")


def gemm_ready(a: np.ndarray) -> np.ndarray:
    """``a`` in a layout BLAS accepts. NOTE: NumPy cannot hand stride-0 (expanded) operands
    to BLAS and falls back to a loop ~1000x slower; such operands are common as gradients of
    sum/mean."""
    return np.ascontiguousarray(a) if 0 in a.strides else a


class _Silent:
    __slots__ = ("token",)

    def __enter__(self):
        self.token = _EXTOBJ.set(_SILENT)

    def __exit__(self, *exc):
        _EXTOBJ.reset(self.token)


def errstate(**_kinds):
    """NumPy's float warnings off inside ops: inf and nan propagate silently, as in PyTorch
    (``detect_anomaly`` finds where they appear). Every kind is silenced, whatever is named.
    (A Node class says the same for its whole forward with ``quiet = True``.)"""
    return _Silent()

"""Tensor factories: ``tensor``, ``zeros``, ``arange``, ``randn`` and the rest."""

from __future__ import annotations

import builtins
import math

import numpy as np

from . import _dtype
from .random import _rng
from .tensor import Tensor


def _np_dtype(dtype):
    return None if dtype is None else _dtype.as_dtype(dtype).np


def _infer_dtype(data) -> np.dtype:
    """PyTorch's inference for Python data: Python bools, ints (int64) and floats (the
    default float), and NumPy scalars, arrays or tensors with their own dtype, promoted."""
    found = set()
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, list | tuple):
            stack.extend(x)
        elif isinstance(x, Tensor):
            found.add(x._data.dtype)
        elif isinstance(x, np.ndarray | np.generic):
            found.add(x.dtype)
        elif isinstance(x, builtins.bool):
            found.add(np.dtype(np.bool_))
        elif isinstance(x, builtins.int):
            found.add(np.dtype(np.int64))
        elif isinstance(x, builtins.float):
            found.add(_dtype.get_default_dtype().np)
        elif isinstance(x, complex):
            raise TypeError("complex tensors are not supported")
        else:
            raise TypeError(f"Could not infer dtype of {type(x).__name__}")
    if not found:
        return _dtype.get_default_dtype().np
    out = None
    for d in found:
        out = d if out is None else _dtype._promote_np(out, d)
    return out


def _as_array(data, dtype=None, default_float=False, copy=True) -> np.ndarray:
    want = _np_dtype(dtype)
    if isinstance(data, Tensor):
        arr = data._data
        return arr.astype(want or arr.dtype, copy=copy)
    if isinstance(data, np.ndarray | np.generic):
        arr = np.asarray(data)
        if want is None:
            if (
                arr.dtype.kind not in "biuf"
                or arr.dtype == np.uint16
                or arr.dtype.kind == "u"
                and arr.dtype != np.uint8
            ):
                _dtype.from_numpy_dtype(arr.dtype)  # raises the PyTorch-style TypeError
            want = arr.dtype
        return np.array(arr, dtype=want, copy=copy) if copy else arr.astype(want, copy=False)
    if isinstance(data, list | tuple) and any(isinstance(x, Tensor) for x in data):
        data = [x._data if isinstance(x, Tensor) else x for x in data]
    inferred = _infer_dtype(data)
    try:
        arr = np.array(data, dtype=want or inferred)
    except ValueError as e:
        raise ValueError(f"tensor(): could not build a tensor from the data: {e}") from None
    if arr.dtype == object:
        raise ValueError("tensor(): nested sequences must have the same length at each level")
    return arr


def _finish(arr, requires_grad):
    t = Tensor._make(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(
    data, *, dtype=None, device=None, requires_grad: bool = False, pin_memory=False
) -> Tensor:
    """A new tensor holding a copy of ``data`` (lists, scalars, arrays, tensors).

    >>> import retrograd as rg
    >>> rg.tensor([[1, 2], [3, 4]]).dtype
    retrograd.int64
    >>> rg.tensor([1.5]).dtype
    retrograd.float32
    """
    return _finish(_as_array(data, dtype), requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like ``tensor`` but shares memory with an array or tensor when the dtype already fits."""
    if isinstance(data, Tensor) and (dtype is None or _np_dtype(dtype) == data._data.dtype):
        return data
    return _finish(_as_array(data, dtype, copy=False), False)


def from_numpy(arr: np.ndarray) -> Tensor:
    """A tensor that shares memory with ``arr`` (zero-copy).

    >>> import numpy as np, retrograd as rg
    >>> a = np.zeros(2, dtype=np.float32); t = rg.from_numpy(a); a[0] = 5
    >>> t
    tensor([5., 0.])
    """
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(arr).__name__})")
    _dtype.from_numpy_dtype(arr.dtype)
    return Tensor._make(arr)


def _size(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], list | tuple):
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, Tensor):
            s = int(s.item())
        if not isinstance(s, builtins.int | np.integer):
            raise TypeError(
                f"size must be a tuple of ints, got an element of type {type(s).__name__}"
            )
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {list(size)}")
        out.append(int(s))
    return tuple(out)


def _float_dtype(dtype):
    d = _np_dtype(dtype) or _dtype.get_default_dtype().np
    return d


def zeros(*shape, size=None, dtype=None, device=None, requires_grad=False, out=None) -> Tensor:
    """A tensor of zeros (float32 unless ``dtype`` says otherwise)."""
    return _finish(
        np.zeros(_size(shape if size is None else (tuple(size),)), _float_dtype(dtype)),
        requires_grad,
    )


def ones(*shape, size=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _finish(
        np.ones(_size(shape if size is None else (tuple(size),)), _float_dtype(dtype)),
        requires_grad,
    )


def empty(
    *shape, size=None, dtype=None, device=None, requires_grad=False, memory_format=None
) -> Tensor:
    return _finish(
        np.empty(_size(shape if size is None else (tuple(size),)), _float_dtype(dtype)),
        requires_grad,
    )


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    if dtype is None:
        dt = _dtype.result_np_dtype([fill_value])
    else:
        dt = _np_dtype(dtype)
    return _finish(
        np.full(
            _size((size,) if not isinstance(size, list | tuple) else tuple(size)), fill_value, dt
        ),
        requires_grad,
    )


def _like(t, dtype):
    return _np_dtype(dtype) or t._data.dtype


def zeros_like(t, *, dtype=None, device=None, requires_grad=False, memory_format=None) -> Tensor:
    return _finish(np.zeros(t._data.shape, _like(t, dtype)), requires_grad)


def ones_like(t, *, dtype=None, device=None, requires_grad=False, memory_format=None) -> Tensor:
    return _finish(np.ones(t._data.shape, _like(t, dtype)), requires_grad)


def empty_like(t, *, dtype=None, device=None, requires_grad=False, memory_format=None) -> Tensor:
    return _finish(np.empty(t._data.shape, _like(t, dtype)), requires_grad)


def full_like(
    t, fill_value, *, dtype=None, device=None, requires_grad=False, memory_format=None
) -> Tensor:
    return _finish(np.full(t._data.shape, fill_value, _like(t, dtype)), requires_grad)


def _random_dtype(dtype, op):
    dt = _float_dtype(dtype)
    if dt.kind != "f":
        raise RuntimeError(f"{op}(): expected a floating point dtype, got {dt.name}")
    return dt



def rand(*shape, size=None, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1)."""
    dt = _random_dtype(dtype, "rand")
    arr = _rng(generator).random(
        _size(shape if size is None else (tuple(size),)),
        dtype=np.float64 if dt != np.float32 else np.float32,
    )
    return _finish(arr.astype(dt, copy=False), requires_grad)


def randn(
    *shape, size=None, generator=None, dtype=None, device=None, requires_grad=False
) -> Tensor:
    """Standard normal samples."""
    dt = _random_dtype(dtype, "randn")
    arr = _rng(generator).standard_normal(
        _size(shape if size is None else (tuple(size),)),
        dtype=np.float64 if dt != np.float32 else np.float32,
    )
    return _finish(arr.astype(dt, copy=False), requires_grad)


def rand_like(t, *, dtype=None, device=None, requires_grad=False, generator=None) -> Tensor:
    return rand(
        *t._data.shape, generator=generator, dtype=dtype or t.dtype, requires_grad=requires_grad
    )


def randn_like(t, *, dtype=None, device=None, requires_grad=False, generator=None) -> Tensor:
    return randn(
        *t._data.shape, generator=generator, dtype=dtype or t.dtype, requires_grad=requires_grad
    )


def randint(
    low, high=None, size=None, *, generator=None, dtype=None, device=None, requires_grad=False
) -> Tensor:
    """Integers uniform in [low, high): ``randint(high, size)`` or ``randint(low, high, size)``."""
    if size is None:
        if high is None or not isinstance(high, list | tuple):
            raise TypeError("randint() missing the size argument")
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    if low >= high:
        raise RuntimeError(
            f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}"
        )
    arr = _rng(generator).integers(low, high, _size(tuple(size)), dtype=np.int64)
    dt = _np_dtype(dtype)
    return _finish(arr.astype(dt, copy=False) if dt is not None else arr, requires_grad)


def randint_like(t, low=0, high=None, *, dtype=None, generator=None) -> Tensor:
    if high is None:
        low, high = 0, low
    return randint(low, high, tuple(t._data.shape), generator=generator, dtype=dtype or t.dtype)


def randperm(n: int, *, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    arr = _rng(generator).permutation(int(n)).astype(_np_dtype(dtype) or np.int64)
    return _finish(arr, requires_grad)


def normal(mean=0.0, std=1.0, size=None, *, generator=None) -> Tensor:
    m = mean._data if isinstance(mean, Tensor) else mean
    s = std._data if isinstance(std, Tensor) else std
    if size is None:
        size = np.broadcast_shapes(np.shape(m), np.shape(s))
    dt = _dtype.result_np_dtype([x for x in (m, s) if isinstance(x, np.ndarray)] or [1.0])
    return _finish(_rng(generator).normal(m, s, _size(tuple(size))).astype(dt), False)


def bernoulli(p, *, generator=None) -> Tensor:
    arr = p._data if isinstance(p, Tensor) else np.asarray(p)
    return _finish((_rng(generator).random(arr.shape) < arr).astype(arr.dtype), False)


def multinomial(input, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:
    """Sample indices from the rows of a non-negative weight matrix."""
    probs = np.asarray(input._data, dtype=np.float64)
    squeeze = probs.ndim == 1
    probs2 = probs.reshape(-1, probs.shape[-1])
    if (probs2 < 0).any() or not np.isfinite(probs2).all():
        raise RuntimeError(
            "multinomial(): probability tensor contains either inf, nan or element < 0"
        )
    sums = probs2.sum(-1, keepdims=True)
    if (sums <= 0).any():
        raise RuntimeError(
            "multinomial(): invalid multinomial distribution (sum of probabilities <= 0)"
        )
    if not replacement and num_samples > probs2.shape[-1]:
        raise RuntimeError(
            "multinomial(): cannot sample n_sample > prob_dist.size(-1) samples without replacement"
        )
    rng = _rng(generator)
    p = probs2 / sums
    out = np.empty((p.shape[0], num_samples), np.int64)
    for r in range(p.shape[0]):
        if replacement:
            c = np.cumsum(p[r])
            out[r] = np.minimum(
                np.searchsorted(c, rng.random(num_samples) * c[-1], side="right"), p.shape[1] - 1
            )
        else:
            out[r] = rng.choice(p.shape[1], num_samples, replace=False, p=p[r])
    return _finish(out[0] if squeeze else out.reshape(probs.shape[:-1] + (num_samples,)), False)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Values from ``start`` to ``end`` (exclusive) by ``step``; int64 for integer arguments."""
    if end is None:
        start, end = 0, start
    vals = [_scalar(v) for v in (start, end, step)]
    if step == 0:
        raise RuntimeError("arange(): step must be nonzero")
    dt = _np_dtype(dtype) or _dtype.result_np_dtype(vals)
    n = max(0, math.ceil((vals[1] - vals[0]) / vals[2]))
    arr = (
        vals[0] + np.arange(n, dtype=np.float64 if dt.kind == "f" else np.int64) * vals[2]
    ).astype(dt)
    return _finish(arr, requires_grad)


def _scalar(v):
    return v.item() if isinstance(v, Tensor) else v


def linspace(start, end, steps: int, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    dt = _np_dtype(dtype) or _dtype.get_default_dtype().np
    return _finish(np.linspace(_scalar(start), _scalar(end), int(steps)).astype(dt), requires_grad)


def logspace(
    start, end, steps: int, base: float = 10.0, *, dtype=None, device=None, requires_grad=False
) -> Tensor:
    dt = _np_dtype(dtype) or _dtype.get_default_dtype().np
    return _finish(np.logspace(start, end, int(steps), base=base).astype(dt), requires_grad)


def eye(n: int, m: int | None = None, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _finish(np.eye(n, m, dtype=_float_dtype(dtype)), requires_grad)


def scalar_tensor(v, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _finish(np.asarray(v, dtype=_float_dtype(dtype)), requires_grad)

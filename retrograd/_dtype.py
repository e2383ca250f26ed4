"""Dtypes and PyTorch's type-promotion rules (no silent float64)."""

from __future__ import annotations

import numpy as np


class dtype:  # noqa: N801 - PyTorch's name
    """A tensor element type, like ``torch.dtype``."""

    __slots__ = ("name", "np", "is_floating_point", "is_signed", "itemsize", "_category")

    def __init__(self, name: str, np_dtype, category: int):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.is_floating_point = category == 2
        self.is_signed = category != 0
        self.itemsize = self.np.itemsize
        self._category = category  # 0 bool, 1 integer, 2 floating

    def __repr__(self) -> str:
        return f"retrograd.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))


float16 = dtype("float16", np.float16, 2)
float32 = dtype("float32", np.float32, 2)
float64 = dtype("float64", np.float64, 2)
int8 = dtype("int8", np.int8, 1)
uint8 = dtype("uint8", np.uint8, 1)
int16 = dtype("int16", np.int16, 1)
int32 = dtype("int32", np.int32, 1)
int64 = dtype("int64", np.int64, 1)
bool_ = dtype("bool", np.bool_, 0)
half, float, double = float16, float32, float64  # noqa: A001 - PyTorch aliases
short, int, long = int16, int32, int64  # noqa: A001

_ALL = (float16, float32, float64, int8, uint8, int16, int32, int64, bool_)
_FROM_NP = {d.np: d for d in _ALL}
_NAMES = {d.name: d for d in _ALL}

_default_float = float32


def _by_name(name: str) -> dtype:
    return _NAMES[name]


def get_default_dtype() -> dtype:
    return _default_float


def set_default_dtype(d: dtype) -> None:
    """Set the dtype of new floating tensors (float32 unless changed)."""
    global _default_float
    if not isinstance(d, dtype) or not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default_float = d


def from_numpy_dtype(np_dtype) -> dtype:
    try:
        return _FROM_NP[np.dtype(np_dtype)]
    except KeyError:
        raise TypeError(
            f"can't convert np.ndarray of type {np.dtype(np_dtype)}; the only supported types are: "
            "float64, float32, float16, int64, int32, int16, int8, uint8, and bool."
        ) from None


def to_numpy_dtype(d) -> np.dtype:
    """Accept a retrograd dtype, a NumPy dtype or a name."""
    if isinstance(d, dtype):
        return d.np
    if isinstance(d, str) and d in _NAMES:
        return _NAMES[d].np
    return from_numpy_dtype(d).np


def as_dtype(d) -> dtype:
    if isinstance(d, dtype):
        return d
    if d is bool:
        return bool_
    if d is builtins_float:
        return _default_float
    if d is builtins_int:
        return int64
    if isinstance(d, str):
        try:
            return _NAMES[d]
        except KeyError:
            raise TypeError(f"unknown dtype name {d!r}") from None
    return from_numpy_dtype(d)


import builtins as _b  # noqa: E402

builtins_float, builtins_int = _b.float, _b.int

# np.result_type on same-category dtypes follows PyTorch's lattice, except for the
# int/float mixes, which PyTorch resolves to the float operand's type (NumPy: float64).
_NP_F = {np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)}


def _promote_np(a: np.dtype, b: np.dtype) -> np.dtype:
    if a is b or a == b:
        return a
    fa, fb = a in _NP_F, b in _NP_F
    if fa and not fb:
        return a
    if fb and not fa:
        return b
    if a.kind == "b":
        return b
    if b.kind == "b":
        return a
    return np.promote_types(a, b)


def _category_np(d: np.dtype) -> int:
    return 2 if d.kind == "f" else (0 if d.kind == "b" else 1)


def result_np_dtype(operands) -> np.dtype:
    """PyTorch's promotion over arrays (dim>0 beats 0-dim beats Python scalars).

    Each operand is an ndarray (with ndim) or a Python scalar.
    """
    dims = None  # dtype of tensors with ndim > 0
    zero = None  # dtype of 0-dim tensors
    scalar_cat = -1
    for x in operands:
        if isinstance(x, np.ndarray):
            if x.ndim:
                dims = x.dtype if dims is None else _promote_np(dims, x.dtype)
            else:
                zero = x.dtype if zero is None else _promote_np(zero, x.dtype)
        elif isinstance(x, _b.bool | np.bool_):
            scalar_cat = max(scalar_cat, 0)
        elif isinstance(x, _b.int | np.integer):
            scalar_cat = max(scalar_cat, 1)
        else:
            scalar_cat = max(scalar_cat, 2)
    res = dims
    if zero is not None:
        if res is None or _category_np(zero) > _category_np(res):
            res = zero
    if res is None:
        return (
            _default_float.np
            if scalar_cat == 2
            else (np.dtype(np.int64) if scalar_cat == 1 else np.dtype(np.bool_))
        )
    if scalar_cat > _category_np(res):
        res = _default_float.np if scalar_cat == 2 else np.dtype(np.int64)
    return res

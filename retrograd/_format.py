"""PyTorch-style ``repr`` of tensors."""

from __future__ import annotations

import numpy as np

from . import _dtype

_SHOWN_DTYPES = {"float32", "int64", "bool"}


def _float_formatter(arr: np.ndarray):
    finite = arr[np.isfinite(arr)] if arr.size else arr
    if finite.size and np.all(finite == np.round(finite)) and np.abs(finite).max() < 1e8:
        return lambda v: _special(v) or f"{v:.0f}."
    if finite.size:
        amax = np.abs(finite).max()
        nz = np.abs(finite[finite != 0])
        amin = nz.min() if nz.size else 0.0
        if amax >= 1e8 or (amin and amin < 1e-4) or (amin and amax / amin > 1e3):
            return lambda v: _special(v) or f"{v:.4e}"
    return lambda v: _special(v) or f"{v:.4f}"


def _special(v):
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    return None


def format_tensor(t) -> str:
    arr = t._data
    kw = {}
    if arr.dtype.kind == "f":
        fmt = _float_formatter(arr.astype(np.float64, copy=False))
        kw["formatter"] = {"float_kind": fmt}
    elif arr.dtype.kind == "b":
        kw["formatter"] = {"bool": lambda v: "True" if v else "False"}
    body = np.array2string(
        arr, separator=", ", prefix="tensor(", threshold=1000, edgeitems=3, max_line_width=79, **kw
    )
    extras = []
    dt = _dtype._FROM_NP[arr.dtype]
    if arr.size == 0 and arr.ndim != 1:
        extras.append(f"size={tuple(arr.shape)}")
    if dt.name not in _SHOWN_DTYPES or (dt is not _dtype.get_default_dtype() and dt.is_floating_point):
        if not (dt.name == "float32" and _dtype.get_default_dtype() is _dtype.float32):
            extras.append(f"dtype={dt}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t._requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"

"""PyTorch-style ``repr`` of tensors: the same number formats, column widths, line wrapping
(80 columns) and summarisation (more than 1000 elements: 3 edge items per dimension)."""

from __future__ import annotations

import math

import numpy as np

from . import _dtype

_PRECISION = 4
_THRESHOLD = 1000
_EDGEITEMS = 3
_LINEWIDTH = 80


class _Formatter:
    """One number format and width for every element of a tensor (torch's rules)."""

    __slots__ = ("floating", "int_mode", "sci_mode", "width")

    def __init__(self, arr: np.ndarray):
        self.floating = arr.dtype.kind == "f"
        self.int_mode = True
        self.sci_mode = False
        self.width = 1
        flat = arr.reshape(-1)
        if not self.floating:
            for v in flat.tolist():
                self.width = max(self.width, len(_plain(v)))
            return
        vals = flat[np.isfinite(flat) & (flat != 0)].astype(np.float64)
        if vals.size == 0:
            return
        absv = np.abs(vals)
        lo, hi = absv.min(), absv.max()
        self.int_mode = bool(np.all(vals == np.ceil(vals)))
        if self.int_mode:
            self.sci_mode = hi / lo > 1000.0 or hi > 1.0e8
            if not self.sci_mode:
                self.width = max(len(f"{v:.0f}") + 1 for v in vals.tolist())
        else:
            self.sci_mode = hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4
            if not self.sci_mode:
                self.width = max(len(f"{v:.{_PRECISION}f}") for v in vals.tolist())
        if self.sci_mode:
            self.width = max(len(f"{v:.{_PRECISION}e}") for v in vals.tolist())

    def format(self, v) -> str:
        if self.floating:
            if self.sci_mode:
                s = f"{v:{self.width}.{_PRECISION}e}"
            elif self.int_mode:
                s = f"{v:.0f}"
                if not (math.isinf(v) or math.isnan(v)):
                    s += "."
            else:
                s = f"{v:.{_PRECISION}f}"
        else:
            s = _plain(v)
        return " " * (self.width - len(s)) + s


def _plain(v) -> str:
    return str(v)


def _summarized(arr: np.ndarray) -> np.ndarray:
    """The edge items of every dimension (what a summarised repr shows)."""
    if arr.ndim == 0:
        return arr
    e = _EDGEITEMS
    if arr.shape[0] > 2 * e:
        arr = np.concatenate([arr[:e], arr[-e:]])
    if arr.ndim == 1:
        return arr
    return np.stack([_summarized(a) for a in arr])


def _vector(arr, indent, summarize, fmt) -> str:
    per_line = max(1, int(math.floor((_LINEWIDTH - indent) / (fmt.width + 2))))
    if summarize and arr.shape[0] > 2 * _EDGEITEMS:
        data = (
            [fmt.format(v) for v in arr[:_EDGEITEMS].tolist()]
            + [" ..."]
            + [fmt.format(v) for v in arr[-_EDGEITEMS:].tolist()]
        )
    else:
        data = [fmt.format(v) for v in arr.tolist()]
    lines = [", ".join(data[i : i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"


def _body(arr, indent, summarize, fmt) -> str:
    if arr.ndim == 0:
        return fmt.format(arr.item())
    if arr.ndim == 1:
        return _vector(arr, indent, summarize, fmt)
    n = arr.shape[0]
    if summarize and n > 2 * _EDGEITEMS:
        idx = list(range(_EDGEITEMS)) + [None] + list(range(n - _EDGEITEMS, n))
    else:
        idx = list(range(n))
    parts = ["..." if i is None else _body(arr[i], indent + 1, summarize, fmt) for i in idx]
    return "[" + ("," + "\n" * (arr.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def array_str(arr: np.ndarray, indent: int = 7) -> str:
    """The bracketed body of a tensor repr (``indent`` = column of the opening bracket)."""
    if arr.size == 0:
        return "[]"
    summarize = arr.size > _THRESHOLD
    fmt = _Formatter(_summarized(arr) if summarize else arr)
    return _body(arr, indent, summarize, fmt)


def format_tensor(t) -> str:
    """``repr(t)`` in PyTorch's layout.

    >>> import retrograd as rg
    >>> rg.tensor([1.0, -2.5, 3.0])
    tensor([ 1.0000, -2.5000,  3.0000])
    """
    arr = t._data
    body = array_str(arr)
    extras = []
    dt = _dtype._FROM_NP[arr.dtype]
    default = (_dtype.get_default_dtype(), _dtype.int64, _dtype.bool_)
    if arr.size == 0 and arr.ndim != 1:
        extras.append(f"size={tuple(arr.shape)}")
    if dt not in default:
        extras.append(f"dtype={dt}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t._requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"

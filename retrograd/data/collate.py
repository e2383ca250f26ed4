"""``default_collate`` / ``default_convert``: turn a list of samples into a batch.

As in PyTorch: tensors and NumPy arrays are stacked (dtype kept), Python ints become int64,
Python floats float64, bools bool; dicts, tuples/lists (tuples come back as lists) and
namedtuples are collated field by field; strings stay lists of strings.
"""

from __future__ import annotations

import collections.abc
from typing import Any

import numpy as np

from ..tensor import Tensor

__all__ = ["default_collate", "default_convert"]

_FMT = (
    "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"
)


def _stack(arrays: list[np.ndarray]) -> Tensor:
    return Tensor._make(np.stack(arrays, 0))


def default_collate(batch: list) -> Any:
    """Collate a list of samples into a batch (PyTorch's rules).

    >>> import retrograd as rg
    >>> b = rg.data.default_collate([{"x": rg.zeros(2), "y": 1}, {"x": rg.ones(2), "y": 0}])
    >>> b["x"].shape, b["y"]
    (retrograd.Size([2, 2]), tensor([1, 0]))
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        shapes = {tuple(t.shape) for t in batch}
        if len(shapes) != 1:
            raise RuntimeError(
                f"default_collate: stack expects each tensor to be equal size, but got shapes "
                f"{sorted(shapes)}"
            )
        return _stack([t._data for t in batch])
    if isinstance(elem, np.ndarray) or (
        isinstance(elem, np.generic) and not isinstance(elem, np.str_)
    ):
        if elem.dtype.kind in "SaUO":
            raise TypeError(_FMT.format(elem.dtype))
        if isinstance(elem, np.ndarray):
            shapes = {a.shape for a in batch}
            if len(shapes) != 1:
                raise RuntimeError(
                    f"default_collate: stack expects each array to be equal size, but got shapes "
                    f"{sorted(shapes)}"
                )
        return Tensor._make(np.stack([np.asarray(a) for a in batch], 0))
    if isinstance(elem, bool):
        return Tensor._make(np.array(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return Tensor._make(np.array(batch, dtype=np.int64))
    if isinstance(elem, float):
        return Tensor._make(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        try:
            return type(elem)({k: default_collate([d[k] for d in batch]) for k in elem})
        except TypeError:
            return {k: default_collate([d[k] for d in batch]) for k in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(e) != size for e in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        transposed = [list(s) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return [default_collate(s) for s in transposed]
        try:
            return type(elem)([default_collate(s) for s in transposed])
        except TypeError:
            return [default_collate(s) for s in transposed]
    raise TypeError(_FMT.format(type(elem)))


def default_convert(data: Any) -> Any:
    """Convert NumPy arrays inside ``data`` to tensors (used when ``batch_size=None``).

    >>> import numpy as np, retrograd as rg
    >>> rg.data.default_convert({"a": np.zeros(2)})["a"].dtype
    retrograd.float64
    """
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        if data.dtype.kind in "SaUO":
            return data
        return Tensor._make(data)
    if isinstance(data, np.generic) and data.dtype.kind not in "SaUO":
        return Tensor._make(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return {k: default_convert(v) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return [default_convert(d) for d in data]
    return data

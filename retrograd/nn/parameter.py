"""``Parameter``: a leaf tensor that a Module registers as a weight."""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor, _init


class Parameter(Tensor):
    """A tensor that is a module's learnable weight (``requires_grad=True`` by default).

    >>> import retrograd as rg
    >>> p = rg.nn.Parameter(rg.zeros(2))
    >>> p.requires_grad, p.is_leaf
    (True, True)
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        arr = (
            data._data
            if isinstance(data, Tensor)
            else np.asarray([] if data is None else data, dtype=np.float32)
        )
        _init(self, arr, False, None)
        if data is not None and isinstance(data, Tensor) and data._version is not None:
            self._version = data._version
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, proto):
        return (_rebuild_parameter, (self._data, self._requires_grad))

    def __deepcopy__(self, memo):
        p = Parameter(Tensor._make(self._data.copy()), self._requires_grad)
        if self._grad is not None:
            p._grad = Tensor._make(self._grad._data.copy())
        memo[id(self)] = p
        return p


def _rebuild_parameter(arr, requires_grad):
    return Parameter(Tensor._make(arr), requires_grad)


class Buffer(Tensor):
    """Marker for a tensor to register as a module buffer (``torch.nn.Buffer``)."""

    __slots__ = ()

    def __init__(self, data=None, *, persistent: bool = True):
        arr = data._data if isinstance(data, Tensor) else np.asarray(data)
        _init(self, arr, False, None)
        self.__dict__["persistent"] = persistent

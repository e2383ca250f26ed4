"""The Tensor: a NumPy array plus the autograd fields. No math lives here: operators delegate
to ``retrograd.ops`` (bound in ``retrograd._methods``)."""

from __future__ import annotations

import warnings
import weakref

import numpy as np

from . import _dtype
from .autograd import node as _node
from .autograd.node import Version


class _Handle:
    """Returned by ``register_hook``; ``remove()`` detaches the hook."""

    _next_id = 0

    def __init__(self, store: dict):
        _Handle._next_id += 1
        self.id = _Handle._next_id
        self._store = store  # a plain dict cannot be weakly referenced

    def remove(self):
        store = self._store
        if store is not None:
            store.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class Tensor:
    """An n-dimensional array that records the ops applied to it for backpropagation.

    >>> import retrograd as rg
    >>> x = rg.tensor([1.0, 2.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([2., 4.])
    """

    __slots__ = (
        "_data",
        "_requires_grad",
        "_grad",
        "grad_fn",
        "_version",
        "__weakref__",
        "__dict__",
    )
    # rarely set, so class-level defaults: creating a tensor (every op) stores only the above
    _out_idx: int = 0  # which output of grad_fn this is
    _hooks: dict | None = None  # register_hook
    _post_hooks: dict | None = None  # register_post_accumulate_grad_hook
    _retains: bool = False  # retain_grad
    __hash__ = object.__hash__
    __array_priority__ = 1000  # numpy scalars defer to our reflected operators

    def __init__(self, data=None, *, dtype=None, requires_grad: bool = False):
        from .creation import _as_array

        arr = _as_array([] if data is None else data, dtype, default_float=True)
        _init(self, arr, False, None)
        if requires_grad:
            self.requires_grad_(True)

    # --- construction fast path (used by every op) ----------------------------------
    @staticmethod
    def _make(arr: np.ndarray, requires_grad: bool = False, grad_fn=None) -> Tensor:
        t = object.__new__(Tensor)
        t._data = arr
        t._requires_grad = requires_grad
        t._grad = None
        t.grad_fn = grad_fn
        t._version = None
        return t

    def _vc(self) -> Version:
        v = self._version
        if v is None:
            v = self._version = Version()
        return v

    def _bump(self):
        self._vc().value += 1

    # --- autograd attributes --------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool):
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` on a leaf in place; only floating tensors can require grad."""
        if self.grad_fn is not None:
            if not requires_grad:
                raise RuntimeError(
                    "you can only change requires_grad flags of leaf variables. If you want to use "
                    "a computed variable in a subgraph that doesn't require differentiation use "
                    "var_no_grad = var.detach()."
                )
            return self
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError(
                "only Tensors of floating point dtype can require gradients; "
                f"got {self.dtype.name}"
            )
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def grad(self):
        if self.grad_fn is not None and not self._retains and self._grad is None:
            warnings.warn(
                "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its "
                ".grad attribute won't be populated during autograd.backward(). If you indeed "
                "want the gradient for a non-leaf Tensor, use .retain_grad() on the non-leaf "
                "Tensor.",
                UserWarning,
                stacklevel=2,
            )
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(
                    "assigned grad expected to be a Tensor or None but got "
                    f"{type(value).__name__}"
                )
            if value.shape != self.shape:
                raise RuntimeError(
                    f"assigned grad has data of a different size: got {tuple(value.shape)}, "
                    f"expected {tuple(self.shape)}"
                )
            if value.dtype is not self.dtype:
                raise RuntimeError(
                    f"assigned grad has data of a different type: got {value.dtype}, "
                    f"expected {self.dtype}"
                )
        self._grad = value

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        if self.grad_fn is None:
            if not self._requires_grad:
                raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
            return
        if self._retains:
            return
        self._retains = True
        fn = self.grad_fn
        if fn.retained is None:
            fn.retained = {}
        fn.retained[self._out_idx] = weakref.ref(self)

    @property
    def retains_grad(self) -> bool:
        return self._retains

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; it may return a new one.

        >>> import retrograd as rg
        >>> x = rg.ones(2, requires_grad=True)
        >>> h = x.register_hook(lambda g: g * 2)
        >>> x.sum().backward(); x.grad
        tensor([2., 2.])
        """
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is None:
            if self._hooks is None:
                self._hooks = {}
            store = self._hooks
        else:
            fn = self.grad_fn
            if fn.pre_hooks is None:
                fn.pre_hooks = {}
            store = fn.pre_hooks.setdefault(self._out_idx, {})
        h = _Handle(store)
        store[h.id] = hook
        return h

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` after a leaf's ``.grad`` has been accumulated."""
        if self.grad_fn is not None:
            raise RuntimeError(
                "post accumulate grad hooks cannot be registered on non-leaf tensors"
            )
        if self._post_hooks is None:
            self._post_hooks = {}
        h = _Handle(self._post_hooks)
        self._post_hooks[h.id] = hook
        return h

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None) -> None:
        """Backpropagate from this tensor; gradients accumulate in the leaves' ``.grad``."""
        from .autograd import backward

        backward(self, gradient, retain_graph, create_graph, inputs=inputs)

    def detach(self) -> Tensor:
        """A tensor sharing this one's data (and version counter) that is cut from the graph."""
        t = Tensor._make(self._data)
        t._version = self._vc()
        return t

    def detach_(self) -> Tensor:
        self.grad_fn = None
        self._requires_grad = False
        return self

    # --- metadata -------------------------------------------------------------------
    @property
    def data(self) -> Tensor:
        return self.detach()

    @data.setter
    def data(self, value: Tensor):
        arr = value._data if isinstance(value, Tensor) else np.asarray(value)
        self._data = arr

    @property
    def shape(self):
        return _Size(self._data.shape)

    def size(self, dim: int | None = None):
        if dim is None:
            return self.shape
        return self._data.shape[_wrap_dim(dim, self._data.ndim, "size")]

    @property
    def dtype(self):
        return _dtype._FROM_NP[self._data.dtype]

    @property
    def device(self):
        return _CPU

    @property
    def is_cuda(self) -> bool:
        return False

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    ndimension = dim

    def numel(self) -> int:
        return self._data.size

    nelement = numel

    def element_size(self) -> int:
        return self._data.itemsize

    @property
    def itemsize(self) -> int:
        return self._data.itemsize

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def is_contiguous(self) -> bool:
        return self._data.flags.c_contiguous

    def stride(self, dim=None):
        st = tuple(s // self._data.itemsize for s in self._data.strides)
        return st if dim is None else st[_wrap_dim(dim, self._data.ndim, "stride")]

    def data_ptr(self) -> int:
        return self._data.__array_interface__["data"][0]

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    # --- conversion -----------------------------------------------------------------
    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The underlying array (shared memory, no copy)."""
        if self._requires_grad and not force:
            raise RuntimeError(
                "Can't call numpy() on Tensor that requires grad. "
                "Use tensor.detach().numpy() instead."
            )
        return self._data

    def __array__(self, dtype=None, copy=None):
        if dtype is not None:
            return self._data.astype(dtype, copy=False)
        return self._data

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise RuntimeError(
                f"a Tensor with {self._data.size} elements cannot be converted to Scalar"
            )
        return self._data.reshape(()).item()

    def tolist(self):
        return self._data.tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError(
                "Boolean value of Tensor with more than one value is ambiguous"
                if self._data.size
                else "Boolean value of Tensor with no values is ambiguous"
            )
        return bool(self._data.reshape(()).item())

    def __repr__(self) -> str:
        from ._format import format_tensor

        return format_tensor(self)

    __str__ = __repr__

    def __format__(self, spec):
        if self._data.ndim == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec)

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __reduce_ex__(self, proto):
        return (_rebuild, (self._data, self._requires_grad))

    def __deepcopy__(self, memo):
        if self.grad_fn is not None:
            raise RuntimeError(
                "Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
                "protocol at the moment."
            )
        t = type(self).__new__(type(self))
        _init(t, self._data.copy(), self._requires_grad, None)
        if self._grad is not None:
            t._grad = Tensor._make(self._grad._data.copy())
        if hasattr(self, "__dict__"):
            import copy

            for k, v in self.__dict__.items():
                if k not in _NOT_COPIED:
                    t.__dict__[k] = copy.deepcopy(v, memo)
        memo[id(self)] = t
        return t


# per-tensor autograd state that a deep copy starts afresh (as when these were slots)
_NOT_COPIED = frozenset({"_out_idx", "_hooks", "_post_hooks", "_retains", "_views", "_view"})


def _init(t, arr, requires_grad, grad_fn):
    t._data = arr
    t._requires_grad = requires_grad
    t._grad = None
    t.grad_fn = grad_fn
    t._version = None


def _rebuild(arr, requires_grad):
    t = Tensor._make(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _wrap_dim(dim, ndim: int, op: str = "") -> int:
    """Normalise a possibly negative dim; IndexError naming the valid range otherwise."""
    n = max(ndim, 1)
    try:
        d = int(dim)
    except TypeError:
        raise TypeError(f"{op}(): dim must be an int, got {type(dim).__name__}") from None
    if d < -n or d >= n:
        raise IndexError(
            f"{op + '(): ' if op else ''}Dimension out of range (expected to be in range of "
            f"[{-n}, {n - 1}], but got {d}) for a tensor of {ndim} dimensions"
        )
    return d + n if d < 0 else d


class device:  # noqa: N801 - PyTorch's name
    """Only the CPU exists; ``device('cpu')`` is accepted where PyTorch takes a device."""

    __slots__ = ("type", "index")

    def __init__(self, type: str = "cpu", index=None):  # noqa: A002
        if isinstance(type, device):
            type = type.type  # noqa: A001
        kind = str(type).split(":")[0]
        if kind != "cpu":
            raise RuntimeError(f"retrograd runs on the CPU only; got device {type!r}")
        self.type = "cpu"
        self.index = index

    def __repr__(self):
        return "device(type='cpu')"

    def __str__(self):
        return "cpu"

    def __eq__(self, other):
        return str(other) == "cpu" or isinstance(other, device)

    def __hash__(self):
        return hash("cpu")


_CPU = device("cpu")

_node._make = Tensor._make  # the ops' fast constructor, without an import per call
from .size import Size as _Size  # noqa: E402  (size imports nothing from here)

_node.Tensor = Tensor


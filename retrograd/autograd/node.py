"""Graph nodes: one recorded op, its edges to the producers of its inputs, what its vjp needs.

A node never holds its own output Tensor (no reference cycles): an op whose vjp needs its
output keeps the output's array and rebuilds a Tensor from it on demand.
"""

from __future__ import annotations

import weakref

import numpy as np

from . import recycle as _recycle
from .grad_mode import STATE
from .recycle import MIN_BYTES as _BIG


class Version:
    """In-place modification counter, shared by a tensor, its views and its detached aliases."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0


class Node:
    """Base of every recorded op (the ``grad_fn`` of a non-leaf tensor).

    Subclasses implement ``forward(*arrays, **params) -> ndarray`` and ``backward(g)``
    returning one gradient Tensor (or None) per input. ``backward`` is written with
    retrograd ops, so it is differentiable itself: the engine runs it under ``no_grad``
    for plain backward and with grad enabled for ``create_graph=True``.
    Class attributes ``save_inputs`` (indices) and ``save_output`` declare what the vjp needs.
    """

    __slots__ = (
        "next",
        "in_meta",
        "saved",  # None once released: the graph was freed
        "saved_versions",  # None when every saved tensor was at version 0
        "out_data",
        "out_version",
        "__weakref__",
        "__dict__",
    )
    # rarely set, so class-level defaults: recording a node stores only what every node needs
    pre_hooks: dict | None = None  # output index -> tensor hooks (register_hook on a non-leaf)
    retained: dict | None = None  # output index -> weakref of a tensor that retains its grad
    trace: str | None = None  # the user's source line, under detect_anomaly
    save_inputs: tuple = ()
    save_output: bool = False
    is_view: bool = False
    n_outputs: int = 1
    # forward runs with NumPy's float warnings off: inf and nan propagate silently, as in
    # torch (detect_anomaly finds where they appear)
    quiet: bool = False

    def forward(self, *arrays, **params):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, g):  # pragma: no cover - abstract
        raise NotImplementedError

    # --- naming -----------------------------------------------------------------------
    @classmethod
    def op_name(cls) -> str:
        return cls.__name__

    def name(self) -> str:
        """PyTorch-style node name, e.g. ``MulBackward0``."""
        return f"{self.op_name()}Backward0"

    def __repr__(self) -> str:
        return f"<{self.name()} object at {id(self):#x}>"

    @property
    def next_functions(self):
        """Edges to the nodes (or leaf accumulators) of the inputs, as in PyTorch."""
        out = []
        for e in self.next:
            if e is None:
                out.append((None, 0))
            else:
                out.append(e)
        return tuple(out)

    # --- saved values ---------------------------------------------------------------
    @property
    def freed(self) -> bool:
        """Whether backward released what this node saved (the graph was freed)."""
        return self.saved is None

    def _check_alive(self):
        if self.saved is None:
            raise RuntimeError(
                f"Trying to backward through the graph a second time (or directly access saved "
                f"tensors after they have already been freed) in {self.name()}. Saved "
                "intermediate values of the graph are freed when you call .backward() or "
                "autograd.grad(). Specify retain_graph=True if you need to backward through "
                "the graph a second time or if you need to access saved tensors after calling "
                "backward."
            )

    def saved_tensors(self) -> tuple:
        """The inputs saved for the vjp, checked against in-place changes since."""
        self._check_alive()
        saved = self.saved
        vers = self.saved_versions
        for i, t in enumerate(saved):
            if (
                t is not None
                and t._version is not None
                and t._version.value != (0 if vers is None else vers[i])
            ):
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by "
                    f"an inplace operation: [{t.dtype.name} {list(t.shape)}], which is input "
                    f"{self.save_inputs[i] if i < len(self.save_inputs) else i} of "
                    f"{self.name()}, is at version {t._version.value}; expected version "
                    f"{0 if vers is None else vers[i]} instead. Hint: replace the in-place op by "
                    "its out-of-place form (e.g. y = y + 1 instead of y += 1), or clone() the "
                    "tensor first."
                )
        return saved

    def output(self):
        """The op's output as a Tensor; differentiable through this node under create_graph."""
        self._check_alive()
        ver, expected = self.out_version
        if ver.value != expected:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [{self.out_data.dtype} {list(self.out_data.shape)}], which "
                f"is output 0 of {self.name()}, is at version {ver.value}; expected version "
                f"{expected} instead. Hint: replace the in-place op by its out-of-place form "
                "(e.g. y = y + 1 instead of y += 1), or clone() the tensor first."
            )
        if STATE.enabled:
            return _make(self.out_data, True, self)
        return _make(self.out_data)

    def release(self):
        """Drop what the vjp needed (after backward, unless ``retain_graph``): the saved
        tensors, the output, and any array a subclass kept in its own slots (a mask, a
        normalised input...), so that memory falls as the backward pass proceeds."""
        saved = self.saved
        self.saved = None
        out = self.out_data
        self.out_data = None
        names = _SLOTS.get(type(self))
        if names is None:
            names = _array_slots(type(self))
        for name in names:
            a = getattr(self, name, None)
            if isinstance(a, np.ndarray):
                setattr(self, name, None)
                if a.nbytes >= _BIG:
                    _recycle.give(a)
        # large arrays nobody else holds go back for reuse (autograd/recycle.py); the size
        # tests come first: small arrays cost nothing here
        if out is not None and out.nbytes >= _BIG:
            _recycle.give(out)
        if saved:
            for t in saved:
                if t is not None and t._data.nbytes >= _BIG:
                    break
            else:
                return
            t = None
            ts = list(saved)
            del saved  # (the tuple's references go, so each tensor's count is exact)
            for i in range(len(ts)):
                t = ts[i]
                ts[i] = None
                if t is not None:
                    _recycle.give_tensor(t)


_SLOTS: dict = {}


def _array_slots(cls) -> tuple:
    """The ``__slots__`` that subclasses of Node add (where ops keep arrays for the vjp)."""
    names = _SLOTS.get(cls)
    if names is None:
        seen = []
        for k in cls.__mro__:
            if k is Node or not issubclass(k, Node):
                continue
            slots = k.__dict__.get("__slots__", ())
            for n in (slots,) if isinstance(slots, str) else slots:
                if n not in ("__dict__", "__weakref__") and n not in seen:
                    seen.append(n)
        names = _SLOTS[cls] = tuple(seen)
    return names


def _edge(t):
    fn = t.grad_fn
    if fn is not None:
        return (fn, t._out_idx)
    if t._requires_grad:
        return (t, 0)
    return None


try:
    from numpy._core._ufunc_config import _extobj_contextvar as _EXTOBJ

    with np.errstate(all="ignore"):
        _SILENT = _EXTOBJ.get()
except (ImportError, AttributeError):  # pragma: no cover - older NumPy: the slow, public way

    class _EXTOBJ:  # noqa: N801 - stands in for the context variable
        @staticmethod
        def set(_value):
            state = np.errstate(all="ignore")
            state.__enter__()
            return state

        @staticmethod
        def reset(state):
            state.__exit__(None, None, None)

    _SILENT = None


_make = None  # Tensor._make, bound by retrograd.tensor (which imports this module)
Tensor = None  # the Tensor class, bound likewise


def apply(cls, tensors, params=None):
    """Run op ``cls`` on Tensors; record a node when grad mode is on and an input needs grad."""
    node = cls()
    # NOTE: one- and two-input ops are nearly all ops; unpacking them directly instead of a
    # comprehension is a measurable part of the per-op overhead
    n = len(tensors)
    if n == 2:
        arrays = (tensors[0]._data, tensors[1]._data)
    elif n == 1:
        arrays = (tensors[0]._data,)
    else:
        arrays = [t._data for t in tensors]
    if cls.quiet:
        # NumPy keeps its float error state in a context variable; setting it directly costs
        # a fraction of entering np.errstate
        token = _EXTOBJ.set(_SILENT)
        try:
            out = node.forward(*arrays, **params) if params else node.forward(*arrays)
        finally:
            _EXTOBJ.reset(token)
    elif params:
        out = node.forward(*arrays, **params)
    else:
        out = node.forward(*arrays)
    if type(out) is not np.ndarray:
        out = np.asarray(out)  # NumPy returns scalars from 0-d ops
    if STATE.enabled:
        for t in tensors:
            if t._requires_grad:
                return _record(node, tensors, arrays, out)
    res = _make(out)
    if cls.is_view:
        res._version = tensors[0]._vc()
        if STATE.enabled:
            _link_view(res, tensors[0], node)
    if STATE.anomaly and STATE.enabled:  # inside a backward pass, its node reports instead
        node.trace = None
        _check_forward(node, tensors, out)
    return res


def _link_view(res, base, node):
    """Remember that ``res`` views ``base``: in-place writes to the view go through the base,
    and in-place writes to the base refresh the view's grad_fn (ops/inplace.py)."""
    res._view = (base, node)
    # NOTE: a plain list of weak references (not a WeakSet: ~10x cheaper per view, and views
    # are made on every step: x.T, x[i], reshape); dead ones are pruned as the list grows
    views = base.__dict__.get("_views")
    if views is None:
        base._views = [weakref.ref(res)]
        return
    views.append(weakref.ref(res))
    if len(views) % 64 == 0:
        views[:] = [r for r in views if r() is not None]


_SCALAR_META: dict = {}  # dtype -> ((), dtype), shared by the nodes of 0-d operands


def _record(node, tensors, arrays, out):
    if len(tensors) == 2:
        a, b = tensors
        fa = a.grad_fn
        fb = b.grad_fn
        node.next = (
            (fa, a._out_idx) if fa is not None else ((a, 0) if a._requires_grad else None),
            (fb, b._out_idx) if fb is not None else ((b, 0) if b._requires_grad else None),
        )
        da, db = arrays
        ma = (da.shape, da.dtype)
        sb = db.shape
        dtb = db.dtype
        if sb == ma[0] and dtb is ma[1]:
            mb = ma  # one object for equal metadata: fewer objects per node to track
        elif not sb:
            mb = _SCALAR_META.get(dtb)
            if mb is None:
                mb = _SCALAR_META[dtb] = ((), dtb)
        else:
            mb = (sb, dtb)
        node.in_meta = (ma, mb)
    else:
        nxt = []
        meta = []
        for t, d in zip(tensors, arrays):
            meta.append((d.shape, d.dtype))
            fn = t.grad_fn
            if fn is not None:
                nxt.append((fn, t._out_idx))
            elif t._requires_grad:
                nxt.append((t, 0))
            else:
                nxt.append(None)
        node.next = tuple(nxt)
        node.in_meta = tuple(meta)
    save = node.save_inputs
    if not save:
        node.saved = ()
        node.saved_versions = None
    else:
        saved = node.saved = (
            (tensors[save[0]],) if len(save) == 1 else tuple([tensors[i] for i in save])
        )
        # NOTE: a tensor never written in place has no version counter yet (version 0): no
        # tuple of versions then, the common case (fewer objects per node for the GC to track)
        vers = None
        for t in saved:
            if t._version is not None and t._version.value:
                vers = tuple([0 if t._version is None else t._version.value for t in saved])
                break
        node.saved_versions = vers
    res = _make(out, True, node)
    if node.is_view:
        res._version = tensors[0]._vc()
        _link_view(res, tensors[0], node)
    if node.save_output:
        node.out_data = out
        vc = res._vc()
        node.out_version = (vc, vc.value)
    else:
        node.out_data = None
    if STATE.anomaly:
        from .anomaly import user_frame

        node.trace = user_frame()
        _check_forward(node, tensors, out)
    return res


def _check_forward(node, tensors, out):
    if not STATE.anomaly_check_nan or out.dtype.kind != "f":
        return
    if np.isfinite(out).all():
        return
    for t in tensors:
        if t._data.dtype.kind == "f" and not np.isfinite(t._data).all():
            return  # not the first op to see a non-finite value
    from .anomaly import user_frame

    where = node.trace or user_frame()
    raise RuntimeError(
        f"Function '{node.op_name()}' returned nan or inf values in its forward output "
        f"(detect_anomaly). It was called from:\n{where}"
    )

"""In-place ops with PyTorch's rules: a leaf that requires grad may only change under
``no_grad``; every change bumps the version counter that backward checks.

Views (basic indexing, reshape/view, permute/transpose, expand) remember their base: an
in-place op on a view is written through the base with a differentiable scatter (torch's
CopySlices), and an in-place op on a base re-derives the grad_fn of its live views, so no
gradient is ever computed from a stale graph."""

from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import STATE
from ..autograd.node import Node, apply
from ..tensor import Tensor
from ._util import ShapeError


def check_writable(t: Tensor, op: str):
    if STATE.enabled and t._requires_grad and t.grad_fn is None:
        raise RuntimeError(
            f"a leaf Variable that requires grad is being used in an in-place operation ({op}). "
            "Wrap the update in `with retrograd.no_grad():` (as optimizers do), or operate on "
            "`.data` / `.detach()`."
        )
    if not t._data.flags.writeable:
        raise RuntimeError(
            f"{op}: unsupported operation: more than one element of the written-to tensor refers "
            "to a single memory location (it is an expanded view). Please clone() the tensor "
            "before performing the operation."
        )


def commit(t: Tensor, compute, needs_old: bool = True, op: str = "in-place op") -> Tensor:
    """Run ``new = compute(old_t)`` and write it into ``t`` in place.

    In grad mode, ``old_t`` is a snapshot holding ``t``'s former value and graph position,
    so the recorded node never sees the overwritten data; ``t`` then takes the new node.
    """
    check_writable(t, op)
    if STATE.enabled:
        view = t.__dict__.get("_view")
        if view is not None and np.may_share_memory(t._data, view[0]._data):
            return _commit_view(t, view[0], view[1], compute, needs_old, op)
        old = Tensor._make(t._data.copy() if needs_old else t._data, t._requires_grad, t.grad_fn)
        old._out_idx = t._out_idx
        new = compute(old)
    else:
        new = compute(t)
    if new._data.shape != t._data.shape:
        raise ShapeError(
            f"{op}: output with shape {list(t._data.shape)} doesn't match the broadcast shape "
            f"{list(new._data.shape)}"
        )
    if not np.can_cast(new._data.dtype, t._data.dtype, "same_kind"):
        raise RuntimeError(
            f"{op}: result type {new.dtype.name} can't be cast to the desired output type "
            f"{t.dtype.name}"
        )
    if new._data is not t._data:
        np.copyto(t._data, new._data, casting="unsafe")
    t._bump()
    if STATE.enabled and new._requires_grad:
        t.grad_fn = new.grad_fn
        t._out_idx = new._out_idx
        t._requires_grad = True
        # the new node must record the output's own version counter
        fn = new.grad_fn
        if fn is not None and fn.save_output and fn.out_version is not None:
            fn.out_data = t._data
            vc = t._vc()
            fn.out_version = (vc, vc.value)
        _refresh_views(t)
    return t


def _view_params(node, v) -> dict | None:
    from .indexing import GetItemView
    from .movement import BroadcastTo, Permute, Reshape

    if isinstance(node, GetItemView):
        return {"idx": node.idx, "advanced": False}
    if isinstance(node, Reshape | BroadcastTo):
        return {"shape": v._data.shape}
    if isinstance(node, Permute):
        return {"perm": node.perm}
    return None


def _refresh_views(base: Tensor) -> None:
    """After an in-place op gave ``base`` a new grad_fn, re-derive the grad_fn of its live
    views (and theirs), so that a view read afterwards differentiates through the new value
    (torch regenerates view grad_fns the same way)."""
    refs = base.__dict__.get("_views")
    if not refs:
        return
    for ref in list(refs):
        v = ref()
        if v is None:
            continue
        info = v.__dict__.get("_view")
        if info is None or info[0] is not base or not np.may_share_memory(v._data, base._data):
            continue
        params = _view_params(info[1], v)
        if params is None:
            continue
        r = apply(type(info[1]), (base,), params)
        if r.grad_fn is None:
            continue
        v.grad_fn = r.grad_fn
        v._out_idx = 0
        v._requires_grad = True
        v._view = (base, r.grad_fn)
        _refresh_views(v)


def _commit_view(t, base, vnode, compute, needs_old, op):
    """In-place op on a view of a tensor in the graph: compute the view's new value, write
    it into the base with a differentiable scatter (the base gets the new node, as torch's
    CopySlices), then make ``t`` a fresh view of the updated base."""
    old = Tensor._make(t._data.copy() if needs_old else t._data, t._requires_grad, t.grad_fn)
    old._out_idx = t._out_idx
    new = compute(old)
    if new._data.shape != t._data.shape:
        raise ShapeError(
            f"{op}: output with shape {list(t._data.shape)} doesn't match the broadcast shape "
            f"{list(new._data.shape)}"
        )
    if new._data.dtype != t._data.dtype:
        if not np.can_cast(new._data.dtype, t._data.dtype, "same_kind"):
            raise RuntimeError(
                f"{op}: result type {new.dtype.name} can't be cast to the desired output type "
                f"{t.dtype.name}"
            )
        new = new.to(t.dtype)
    if not (new._requires_grad or base._requires_grad):
        np.copyto(t._data, new._data, casting="unsafe")  # nothing to record
        t._bump()
        return t
    from .indexing import GetItemView, IndexPut
    from .movement import Permute, Reshape

    if isinstance(vnode, GetItemView):
        put = lambda b: apply(IndexPut, (b, new), {"idx": vnode.idx})  # noqa: E731
        params = {"idx": vnode.idx, "advanced": False}
    elif isinstance(vnode, Reshape):
        put = lambda b: new.reshape(b._data.shape)  # noqa: E731
        params = {"shape": t._data.shape}
    elif isinstance(vnode, Permute):
        inv = tuple(int(i) for i in np.argsort(vnode.perm))
        put = lambda b: new.permute(*inv)  # noqa: E731
        params = {"perm": vnode.perm}
    else:
        raise RuntimeError(
            f"{op}: in-place modification of a {type(vnode).__name__} view of a tensor that "
            "requires grad is not supported; clone() the view first."
        )
    commit(base, put, False, op)
    if base._requires_grad and STATE.enabled:
        r = apply(type(vnode), (base,), params)
        t.grad_fn = r.grad_fn
        t._out_idx = 0
        t._requires_grad = True
        t._view = (base, r.grad_fn)
    return t


class Fill(Node):
    """Overwrite with a constant: the old value gets a zero gradient (``zero_``/``fill_``)."""

    __slots__ = ()

    def forward(self, a, value):
        return np.full(a.shape, value, a.dtype)

    def backward(self, g):
        return (Tensor._make(np.zeros(g._data.shape, g._data.dtype)),)


def fill(t: Tensor, value) -> Tensor:
    """Out-of-place fill that stays in the graph (the vjp of the old value is 0)."""
    return apply(Fill, (t,), {"value": value})

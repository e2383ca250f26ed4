"""User-defined differentiable ops: ``rg.autograd.Function`` with ``forward(ctx, ...)`` and
``backward(ctx, ...)``, as in PyTorch."""

from __future__ import annotations

import numpy as np

from .grad_mode import STATE
from .node import Node, _edge


class FunctionCtx(Node):
    """The ``ctx`` of a custom Function; it is also the graph node (``grad_fn``)."""

    __slots__ = (
        "fn_cls",
        "needs_input_grad",
        "to_save",
        "_outs_meta",
        "materialize_grads",
        "non_differentiable",
        "dirty",
    )

    def save_for_backward(self, *tensors):
        from ..tensor import Tensor

        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(
                    "save_for_backward can only save variables, but argument "
                    f"{i} is of type {type(t).__name__}"
                )
        self.to_save = tensors

    @property
    def saved_tensors(self):
        self._check_alive()
        saved = self.saved
        for t, v in zip(saved, self.saved_versions):
            if t is not None and t._version is not None and t._version.value != v:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: saved by {self.name()}, is at version {t._version.value}; "
                    f"expected version {v} instead."
                )
        return saved

    def mark_non_differentiable(self, *tensors):
        self.non_differentiable = {id(t) for t in tensors}

    def mark_dirty(self, *tensors):
        self.dirty = tensors

    def set_materialize_grads(self, value: bool):
        self.materialize_grads = value

    def name(self):
        return f"{self.fn_cls.__name__}Backward"

    def op_name(self):
        return self.fn_cls.__name__

    def out_meta(self):
        return self._outs_meta

    def backward(self, *grads):
        if not self.materialize_grads:
            pass
        return self.fn_cls.backward(self, *grads)


class Function:
    """Base class for custom ops. Subclass with static ``forward(ctx, *args)`` and
    ``backward(ctx, *grad_outputs)``; call with ``MyFn.apply(*args)``.

    >>> import retrograd as rg
    >>> class Cube(rg.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return g * 3 * x ** 2
    >>> x = rg.tensor(2.0, requires_grad=True)
    >>> Cube.apply(x).backward(); x.grad
    tensor(12.)
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError(
            "You must implement the forward function for custom autograd.Function."
        )

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError(
            "You must implement either the backward or vjp method for your custom "
            "autograd.Function to use it with backward mode AD."
        )

    vjp = backward

    @classmethod
    def apply(cls, *args, **kwargs):
        from ..tensor import Tensor

        ctx = FunctionCtx()
        ctx.fn_cls = cls
        ctx.to_save = ()
        ctx.materialize_grads = True
        ctx.non_differentiable = ()
        ctx.dirty = ()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a._requires_grad for a in args)
        tensor_args = [a for a in args if isinstance(a, Tensor)]
        record = STATE.enabled and any(t._requires_grad for t in tensor_args)
        prev = STATE.enabled
        STATE.enabled = False
        try:
            out = cls.forward(ctx, *args, **kwargs)
        finally:
            STATE.enabled = prev
        single = not isinstance(out, tuple)
        outs = (out,) if single else out
        if not record:
            return out
        ctx.next = tuple(_edge(a) if isinstance(a, Tensor) else None for a in args)
        ctx.in_meta = tuple(
            (a._data.shape, a._data.dtype) if isinstance(a, Tensor) else ((), np.dtype(np.float32))
            for a in args
        )
        ctx.out_data = None
        if STATE.anomaly:
            from .anomaly import user_frame

            ctx.trace = user_frame()
        results = []
        meta = []
        for i, o in enumerate(outs):
            if not isinstance(o, Tensor):
                results.append(o)
                meta.append(((), np.dtype(np.float32)))
                continue
            meta.append((o._data.shape, o._data.dtype))
            if id(o) in ctx.non_differentiable or o._data.dtype.kind != "f":
                results.append(o)
                continue
            if any(o is a for a in tensor_args):
                o = Tensor._make(o._data)  # returning an input: a new tensor in the graph
            r = Tensor._make(o._data, True, ctx)
            r._out_idx = i
            r._version = o._vc()
            results.append(r)
        ctx._outs_meta = meta
        ctx.n_outputs_ = len(outs)
        saved = tuple(ctx.to_save)
        ctx.saved = saved
        ctx.saved_versions = tuple(
            0 if t is None or t._version is None else t._version.value for t in saved
        )
        return results[0] if single else tuple(results)

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)


def _n_outputs(self):
    return self.__dict__.get("n_outputs_", 1)


FunctionCtx.n_outputs = property(_n_outputs)


class once_differentiable:  # noqa: N801
    """Decorator kept for API compatibility: the backward runs without building a graph."""

    def __new__(cls, fn):
        return fn

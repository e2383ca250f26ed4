"""Reductions and scans: sum, mean, var/std, prod, max/min, logsumexp, norm, cumsum,
cumprod, softmax and log_softmax (fused for stability)."""

from __future__ import annotations

import builtins
import collections
import math

import numpy as np

from ..autograd.grad_mode import STATE
from ..autograd.node import Node, apply
from ..tensor import Tensor, _wrap_dim
from ._util import dims, errstate


def _keep_shape(shape, axes):
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _unreduce(g: Tensor, in_shape, axes, keepdim) -> Tensor:
    """Broadcast a reduced gradient back to the input shape."""
    if not STATE.enabled:  # engine fast path (no create_graph): NumPy only, no graph nodes
        gd = g._data
        if not keepdim and axes:
            gd = gd.reshape(_keep_shape(in_shape, axes))
        if gd.shape == tuple(in_shape):
            return Tensor._make(gd)
        if math.prod(in_shape) <= 65536:  # small: a filled array beats broadcast_to's overhead
            out = np.empty(in_shape, gd.dtype)
            out[...] = gd
            return Tensor._make(out)
        return Tensor._make(np.broadcast_to(gd, in_shape))
    if not keepdim and axes:
        g = g.reshape(_keep_shape(in_shape, axes))
    return g.expand(*in_shape) if g._data.shape != tuple(in_shape) else g


class Sum(Node):
    __slots__ = ("axes", "keepdim", "in_shape")

    def forward(self, a, axes, keepdim, dtype):
        self.axes, self.keepdim, self.in_shape = axes, keepdim, a.shape
        return a.sum(axis=axes, keepdims=keepdim, dtype=dtype)

    def backward(self, g):
        return (_unreduce(g, self.in_shape, self.axes, self.keepdim),)


class Mean(Node):
    __slots__ = ("axes", "keepdim", "in_shape", "count")

    def forward(self, a, axes, keepdim):
        self.axes, self.keepdim, self.in_shape = axes, keepdim, a.shape
        self.count = math.prod([a.shape[i] for i in axes]) if axes else 1
        if self.count == 0:  # np.mean warns on empty slices; torch gives nan silently
            s = a.sum(axis=axes, keepdims=keepdim)
            return np.full(s.shape, np.nan, a.dtype)
        if a.dtype == np.float16:  # np.mean accumulates float16 in float32
            return a.mean(axis=axes, keepdims=keepdim)
        # NOTE: np.mean's own arithmetic (an add.reduce, then a division by the count),
        # without its Python wrapper: bit-identical, a few µs less per call
        s = np.add.reduce(a, axis=axes, keepdims=keepdim)
        if type(s) is np.ndarray:
            s /= self.count
            return s
        return s.dtype.type(s / self.count)

    def backward(self, g):
        return (_unreduce(g / self.count, self.in_shape, self.axes, self.keepdim),)


def _sum_dtype(input, dtype):
    if dtype is not None:
        from .. import _dtype

        return _dtype.as_dtype(dtype).np
    if input._data.dtype.kind in "bi" or input._data.dtype.kind == "u":
        return np.dtype(np.int64)
    return None


def sum(input, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A001
    """Sum over ``dim`` (None: all; int or tuple; negative allowed), keeping dims if asked.

    >>> import retrograd as rg
    >>> rg.ones(2, 3).sum(dim=-1)
    tensor([3., 3.])
    """
    axes = dims(dim, input._data.ndim, "sum")
    dt = _sum_dtype(input, dtype)
    if dt is not None and input._requires_grad:
        input = input.to(dt)
        dt = None
    return apply(Sum, (input,), {"axes": axes, "keepdim": keepdim, "dtype": dt})


def mean(input, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    if dtype is not None:
        input = input.to(dtype)
    if input._data.dtype.kind != "f":
        raise RuntimeError(
            f"mean(): could not infer output dtype. Input dtype must be either a floating point "
            f"or complex dtype. Got: {input.dtype.name.capitalize()}"
        )
    return apply(Mean, (input,), {"axes": dims(dim, input._data.ndim, "mean"), "keepdim": keepdim})


def nansum(input, dim=None, keepdim=False):
    from .elementwise import where

    return sum(where(input != input, 0.0, input), dim, keepdim)


def nanmean(input, dim=None, keepdim=False):
    valid = (input == input).to(input.dtype)
    return nansum(input, dim, keepdim) / sum(valid, dim, keepdim)


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    if unbiased is None:
        return 1
    return 1 if unbiased else 0


def _check_float_var(input, op):
    if input._data.dtype.kind != "f":
        raise RuntimeError(
            f"{op}(): std and var only support floating point and complex dtypes, got "
            f"{input.dtype.name}"
        )


def var(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> Tensor:
    """Variance with Bessel's ``correction`` (default 1), as in PyTorch."""
    _check_float_var(input, "var")
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    c = _correction(unbiased, correction)
    axes = dims(dim, input._data.ndim, "var")
    n = int(np.prod([input._data.shape[i] for i in axes])) if axes else 1
    mu = mean(input, axes, keepdim=True)
    d = input - mu
    return sum(d * d, axes, keepdim) / builtins.max(n - c, 0)


class Std(Node):
    """NOTE: the gradient of std is 0 where std is 0 (a constant vector), not NaN."""

    __slots__ = ("axes", "keepdim", "c")
    save_inputs = (0,)
    save_output = True

    def forward(self, a, axes, keepdim, c):
        self.axes, self.keepdim, self.c = axes, keepdim, c
        x = _upcast(a)  # float16 accumulates in float32, as in torch
        with errstate(invalid="ignore", divide="ignore"):
            n = int(np.prod([a.shape[i] for i in axes])) if axes else 1
            mu = x.sum(axis=axes, keepdims=True) / x.dtype.type(n)  # no empty-slice warning
            v = ((x - mu) ** 2).sum(axis=axes, keepdims=keepdim) / builtins.max(n - c, 0)
            return np.sqrt(v).astype(a.dtype, copy=False)

    def backward(self, g):
        (a,) = self.saved_tensors()
        out = self.output()
        n = int(np.prod([a._data.shape[i] for i in self.axes])) if self.axes else 1
        from .elementwise import where

        scale = where(out == 0, 0.0, g / (out * builtins.max(n - self.c, 0)))
        scale = _unreduce(scale, a._data.shape, self.axes, self.keepdim)
        return (scale * (a - mean(a, self.axes, keepdim=True)),)


def std(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None) -> Tensor:
    """Standard deviation with Bessel's ``correction``; its gradient is 0 where it is 0."""
    _check_float_var(input, "std")
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    c = _correction(unbiased, correction)
    axes = dims(dim, input._data.ndim, "std")
    return apply(Std, (input,), {"axes": axes, "keepdim": keepdim, "c": c})


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return var(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return std(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


def prod(input, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Product; its gradient is exact with zeros (products of the other elements)."""
    if dtype is not None:
        input = input.to(dtype)
    if dim is None:
        flat = input.reshape(-1)
        out = (
            cumprod(flat, 0)[-1]
            if flat._data.size
            else Tensor._make(np.ones((), input._data.dtype))
        )
        if input._data.dtype.kind in "bi":
            out = out.to(_i64())
        return out
    d = _wrap_dim(dim, input._data.ndim, "prod")
    if input._data.shape[d] == 0:
        sh = list(input._data.shape)
        sh[d] = 1
        res = Tensor._make(np.ones(sh, input._data.dtype))
        return res if keepdim else res.squeeze(d)
    out = cumprod(input, d).narrow(d, input._data.shape[d] - 1, 1)
    return out if keepdim else out.squeeze(d)


def _i64():
    from .. import _dtype

    return _dtype.int64


class Cumsum(Node):
    __slots__ = ("axis",)

    def forward(self, a, axis):
        self.axis = axis
        if a.dtype == np.float16:  # accumulate in float32, as in torch
            return np.cumsum(a, axis=axis, dtype=np.float32).astype(np.float16)
        return np.cumsum(a, axis=axis)

    def backward(self, g):
        return (g.flip(self.axis).cumsum(self.axis).flip(self.axis),)


def cumsum(input, dim: int, *, dtype=None) -> Tensor:
    d = _wrap_dim(dim, input._data.ndim, "cumsum")
    dt = _sum_dtype(input, dtype)
    if dt is not None:
        input = input.to(dt)
    if input._data.ndim == 0:
        return apply(Cumsum, (input.reshape(1),), {"axis": 0}).reshape(())
    return apply(Cumsum, (input,), {"axis": d})


class Cumprod(Node):
    """vjp: reverse-cumsum(g * out) / x when no input is zero; an exact O(n^2) form otherwise."""

    __slots__ = ("axis",)
    save_inputs = (0,)
    save_output = True

    def forward(self, a, axis):
        self.axis = axis
        if a.dtype == np.float16:
            return np.cumprod(a, axis=axis, dtype=np.float32).astype(np.float16)
        return np.cumprod(a, axis=axis)

    def backward(self, g):
        (a,) = self.saved_tensors()
        ax = self.axis
        if not (a._data == 0).any():
            out = self.output()
            return ((g * out).flip(ax).cumsum(ax).flip(ax) / a,)
        # grad_i = sum_{j>=i} g_j * prod_{k<=j, k!=i} x_k, with the products built explicitly
        x = a.movedim(ax, -1)
        gm = g.movedim(ax, -1)
        n = x._data.shape[-1]
        eye = Tensor._make(np.eye(n, dtype=bool))
        xe = x.unsqueeze(-2).expand(*x._data.shape[:-1], n, n)
        from .elementwise import where

        excl = where(eye, 1.0, xe)  # row i: x with x_i replaced by 1
        c = excl.cumprod(-1)  # c[..., i, j] = prod_{k<=j, k!=i} x_k
        upper = Tensor._make(np.triu(np.ones((n, n), bool)))
        gi = (where(upper, c, 0.0) * gm.unsqueeze(-2)).sum(-1)
        return (gi.movedim(-1, ax),)


def cumprod(input, dim: int, *, dtype=None) -> Tensor:
    d = _wrap_dim(dim, input._data.ndim, "cumprod")
    dt = _sum_dtype(input, dtype)
    if dt is not None:
        input = input.to(dt)
    if input._data.ndim == 0:
        return apply(Cumprod, (input.reshape(1),), {"axis": 0}).reshape(())
    return apply(Cumprod, (input,), {"axis": d})


class Amax(Node):
    """NOTE: ties share the gradient evenly (PyTorch's amax/amin and full max/min)."""

    __slots__ = ("axes", "keepdim", "is_min")
    save_inputs = (0,)
    save_output = True

    def forward(self, a, axes, keepdim, is_min):
        self.axes, self.keepdim, self.is_min = axes, keepdim, is_min
        f = np.min if is_min else np.max
        return f(a, axis=axes, keepdims=keepdim)

    def backward(self, g):
        (a,) = self.saved_tensors()
        out = self.output()
        o = _unreduce(out.detach(), a._data.shape, self.axes, self.keepdim)._data
        mask = (a._data == o) | (np.isnan(a._data) & np.isnan(o))
        count = mask.sum(axis=self.axes, keepdims=True).astype(g._data.dtype)
        w = Tensor._make(mask / count)
        return (_unreduce(g, a._data.shape, self.axes, self.keepdim) * w,)

    def op_name(self):
        return "Amin" if self.is_min else "Amax"


def _check_nonempty(input, axes, op):
    for ax in axes:
        if input._data.shape[ax] == 0:
            raise IndexError(f"{op}(): Expected reduction dim {ax} to have non-zero size.")
    if not axes and input._data.size == 0:
        raise RuntimeError(
            f"{op}(): Expected reduction dim to be specified for input.numel() == 0. "
            "Specify the reduction dim with the 'dim' argument."
        )


def amax(input, dim=(), keepdim: bool = False) -> Tensor:
    axes = dims(None if dim == () else dim, input._data.ndim, "amax")
    _check_nonempty(input, axes, "amax")
    return apply(Amax, (input,), {"axes": axes, "keepdim": keepdim, "is_min": False})


def amin(input, dim=(), keepdim: bool = False) -> Tensor:
    axes = dims(None if dim == () else dim, input._data.ndim, "amin")
    _check_nonempty(input, axes, "amin")
    return apply(Amax, (input,), {"axes": axes, "keepdim": keepdim, "is_min": True})


_ret = collections.namedtuple("return_types", ["values", "indices"])


class MaxDim(Node):
    """``max(x, dim)`` / ``min(x, dim)`` values: the whole gradient goes to the returned
    index (the first extreme along ``dim``; NaN wins, as in torch).

    NOTE: one node where ``gather`` + ``squeeze`` would record two (the per-op overhead was
    most of the op's cost on small tensors)."""

    __slots__ = ("axis", "keepdim", "idx", "in_shape", "is_min")

    def forward(self, a, axis, keepdim, idx, is_min):
        self.axis, self.keepdim, self.idx, self.in_shape, self.is_min = (
            axis, keepdim, idx, a.shape, is_min,
        )
        v = np.take_along_axis(a, idx, axis)
        return v if keepdim else v.reshape(idx.shape[:axis] + idx.shape[axis + 1 :])

    def backward(self, g):
        gd = g._data
        if not self.keepdim:
            gd = np.expand_dims(gd, self.axis)
        if STATE.enabled:  # differentiable in g: a scatter into zeros
            from .indexing import scatter

            z = Tensor._make(np.zeros(self.in_shape, gd.dtype))
            return (scatter(z, self.axis, Tensor._make(self.idx), g.reshape(gd.shape)),)
        z = np.zeros(self.in_shape, gd.dtype)
        np.put_along_axis(z, self.idx, gd, self.axis)
        return (Tensor._make(z),)

    def op_name(self):
        return "Min" if self.is_min else "Max"


def _max_dim(input, dim, keepdim, is_min, op):
    d = _wrap_dim(dim, input._data.ndim, op)
    _check_nonempty(input, (d,) if input._data.ndim else (), op)
    a = input._data
    if not a.ndim:
        return _ret(input.clone(), Tensor._make(np.zeros((), np.int64)))
    # NOTE: NumPy's argmax/argmin return the first NaN where there is one: torch's rule
    idx = np.argmin(a, axis=d, keepdims=True) if is_min else np.argmax(a, axis=d, keepdims=True)
    values = apply(MaxDim, (input,), {"axis": d, "keepdim": keepdim, "idx": idx, "is_min": is_min})
    return _ret(values, Tensor._make(idx if keepdim else np.squeeze(idx, d)))


def max(input, dim=None, keepdim: bool = False):  # noqa: A001
    """``max(x)``: the largest value (ties share the gradient); ``max(x, dim)``: (values,
    indices), the gradient going to the returned index; ``max(x, other)``: maximum."""
    if isinstance(dim, Tensor):
        from .elementwise import maximum

        return maximum(input, dim)
    if dim is None:
        return amax(input)
    return _max_dim(input, dim, keepdim, False, "max")


def min(input, dim=None, keepdim: bool = False):  # noqa: A001
    if isinstance(dim, Tensor):
        from .elementwise import minimum

        return minimum(input, dim)
    if dim is None:
        return amin(input)
    return _max_dim(input, dim, keepdim, True, "min")


def aminmax(input, *, dim=None, keepdim=False):
    r = collections.namedtuple("aminmax", ["min", "max"])
    return r(
        amin(input, dim if dim is not None else (), keepdim),
        amax(input, dim if dim is not None else (), keepdim),
    )


def _arg(input, dim, keepdim, fn, op):
    a = input._data
    if a.dtype.kind == "b":
        raise RuntimeError(f'"{op}_cpu" not implemented for \'Bool\'')
    if dim is None:
        if a.size == 0:
            raise RuntimeError(
                f"{op}(): Expected reduction dim to be specified for input.numel() == 0."
            )
        r = np.asarray(fn(a.reshape(-1)))
        if keepdim:
            r = r.reshape((1,) * a.ndim)
        return Tensor._make(r.astype(np.int64))
    d = _wrap_dim(dim, a.ndim, op)
    if a.ndim and a.shape[d] == 0:
        raise IndexError(f"{op}(): Expected reduction dim {d} to have non-zero size.")
    return Tensor._make(np.asarray(fn(a, axis=d, keepdims=keepdim)).astype(np.int64))


def argmax(input, dim=None, keepdim: bool = False) -> Tensor:
    return _arg(input, dim, keepdim, np.argmax, "argmax")


def argmin(input, dim=None, keepdim: bool = False) -> Tensor:
    return _arg(input, dim, keepdim, np.argmin, "argmin")


def argsort(input, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    d = _wrap_dim(dim, input._data.ndim, "argsort")
    a = -input._data if descending and input._data.dtype.kind != "b" else input._data
    return Tensor._make(np.argsort(a, axis=d, kind="stable").astype(np.int64))


def sort(input, dim: int = -1, descending: bool = False, stable: bool = False):
    from .indexing import gather

    idx = argsort(input, dim, descending)
    return _ret(gather(input, _wrap_dim(dim, input._data.ndim, "sort"), idx), idx)


def topk(input, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
    d = _wrap_dim(dim, input._data.ndim, "topk")
    if k > input._data.shape[d] or k < 0:
        raise RuntimeError(
            f"topk(): selected index k out of range (k={k}, size {input._data.shape[d]})"
        )
    idx = argsort(input, d, descending=largest).narrow(d, 0, k)
    from .indexing import gather

    return _ret(gather(input, d, idx), idx)


def kthvalue(input, k, dim=-1, keepdim=False):
    d = _wrap_dim(dim, input._data.ndim, "kthvalue")
    v, i = sort(input, d)
    v, i = v.narrow(d, k - 1, 1), i.narrow(d, k - 1, 1)
    if not keepdim:
        v, i = v.squeeze(d), i.squeeze(d)
    return _ret(v, i)


def median(input, dim=None, keepdim=False):
    if dim is None:
        flat = input.reshape(-1)
        return sort(flat)[0][(flat._data.size - 1) // 2]
    d = _wrap_dim(dim, input._data.ndim, "median")
    return kthvalue(input, (input._data.shape[d] + 1) // 2, d, keepdim)


def all(input, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001
    axes = dims(dim, input._data.ndim, "all")
    return Tensor._make(np.asarray(np.all(input._data, axis=axes, keepdims=keepdim)))


def any(input, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001
    axes = dims(dim, input._data.ndim, "any")
    return Tensor._make(np.asarray(np.any(input._data, axis=axes, keepdims=keepdim)))


def count_nonzero(input, dim=None) -> Tensor:
    axes = dims(dim, input._data.ndim, "count_nonzero")
    return Tensor._make(np.asarray(np.count_nonzero(input._data, axis=axes)).astype(np.int64))


# --- logsumexp, softmax, log_softmax --------------------------------------------------------


def _stable_max(a, axes):
    """The max over ``axes`` (kept), with non-finite maxima (all -inf or empty slices, inf,
    nan) replaced by 0 so that subtracting it never makes nan from inf - inf."""
    m = np.maximum.reduce(a, axis=axes, keepdims=True, initial=-np.inf)
    # the common case, every max finite, in one call (its callers are quiet nodes: an
    # overflowing sum only sends a finite case down the general path)
    if math.isfinite(np.add.reduce(m, axis=None)):
        return m
    return np.where(np.isfinite(m), m, 0).astype(a.dtype, copy=False)


def _upcast(a):
    """float16 reductions run in float32 (finite grads past 2**16 elements)."""
    return a.astype(np.float32) if a.dtype == np.float16 else a


class LogSumExp(Node):
    """NOTE: an all -inf slice gives -inf with gradient 0 (not NaN)."""

    __slots__ = ("axes", "keepdim")
    save_inputs = (0,)
    save_output = True
    quiet = True

    def forward(self, a, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim
        x = _upcast(a)
        m = _stable_max(x, axes)
        with errstate(divide="ignore", invalid="ignore", over="ignore"):
            s = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
        return (s if keepdim else np.squeeze(s, axes)).astype(a.dtype, copy=False)

    def backward(self, g):
        (a,) = self.saved_tensors()
        out = _unreduce(self.output(), a._data.shape, self.axes, self.keepdim)
        from .elementwise import where

        safe = where(out.isinf(), 0.0, out)
        return (_unreduce(g, a._data.shape, self.axes, self.keepdim) * (a - safe).exp(),)

    @classmethod
    def op_name(cls):
        return "Logsumexp"


def logsumexp(input, dim, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) computed stably (max-subtracted)."""
    if input._data.dtype.kind != "f":
        input = input.float()
    axes = dims(dim, input._data.ndim, "logsumexp")
    return apply(LogSumExp, (input,), {"axes": axes, "keepdim": keepdim})


class Softmax(Node):
    __slots__ = ("axis",)
    save_output = True
    quiet = True

    def forward(self, a, axis):
        self.axis = axis
        x = _upcast(a)
        if x.ndim == 0:  # (0-d arithmetic gives NumPy scalars, which have no out=)
            return self.forward(a.reshape(1), 0).reshape(())
        e = np.subtract(x, _stable_max(x, axis))
        np.exp(e, out=e)
        e /= np.add.reduce(e, axis=axis, keepdims=True)
        return e if e.dtype == a.dtype else e.astype(a.dtype)

    def backward(self, g):
        out = self.output()
        if g._data.dtype == np.float16:  # reduce in float32 (finite, and torch's precision)
            o, gf = out.float(), g.float()
            return ((o * (gf - (gf * o).sum(self.axis, keepdim=True))).to(g.dtype),)
        if not STATE.enabled and out._data.ndim:  # plain backward: NumPy only, one buffer
            o = out._data
            r = g._data * o
            dot = np.add.reduce(r, axis=self.axis, keepdims=True)
            np.subtract(g._data, dot, out=r)
            r *= o
            return (Tensor._make(r),)
        return (out * (g - (g * out).sum(self.axis, keepdim=True)),)


class LogSoftmax(Node):
    __slots__ = ("axis",)
    save_output = True
    quiet = True

    def forward(self, a, axis):
        self.axis = axis
        x = _upcast(a)
        if x.ndim == 0:
            return self.forward(a.reshape(1), 0).reshape(())
        s = np.subtract(x, _stable_max(x, axis))
        s -= np.log(np.add.reduce(np.exp(s), axis=axis, keepdims=True))
        return s if s.dtype == a.dtype else s.astype(a.dtype)

    def backward(self, g):
        out = self.output()
        if not STATE.enabled and g._data.dtype != np.float16 and g._data.ndim:  # NumPy only
            r = np.exp(out._data)
            r *= np.add.reduce(g._data, axis=self.axis, keepdims=True)
            np.subtract(g._data, r, out=r)
            return (Tensor._make(r),)
        gs = g.float() if g._data.dtype == np.float16 else g
        res = gs - out.exp() * gs.sum(self.axis, keepdim=True)
        return (res.to(g.dtype),)


def _softmax_dim(input, dim, op):
    if dim is None:
        nd = input._data.ndim
        dim = 0 if nd in (0, 1, 3) else 1  # PyTorch's legacy implicit choice
    return _wrap_dim(dim, input._data.ndim, op)


def softmax(input, dim=None, dtype=None, **_) -> Tensor:
    """Softmax along ``dim``, stable for any logits (max-subtracted).

    >>> import retrograd as rg
    >>> rg.softmax(rg.tensor([1e4, 0.0]), dim=0)
    tensor([1., 0.])
    """
    if dtype is not None:
        input = input.to(dtype)
    if input._data.dtype.kind != "f":
        raise RuntimeError(
            f"\"softmax_lastdim_kernel_impl\" not implemented for '{input.dtype.name}'"
        )
    return apply(Softmax, (input,), {"axis": _softmax_dim(input, dim, "softmax")})


def log_softmax(input, dim=None, dtype=None, **_) -> Tensor:
    """log(softmax(x)) computed directly (finite where log(softmax) underflows)."""
    if dtype is not None:
        input = input.to(dtype)
    if input._data.dtype.kind != "f":
        raise RuntimeError(
            f"\"log_softmax_lastdim_kernel_impl\" not implemented for '{input.dtype.name}'"
        )
    return apply(LogSoftmax, (input,), {"axis": _softmax_dim(input, dim, "log_softmax")})


def softmin(input, dim=None, dtype=None, **_) -> Tensor:
    return softmax(-input, dim, dtype)


# --- norms -------------------------------------------------------------------------------


class Norm2(Node):
    """Euclidean norm. NOTE: its gradient at 0 is 0 (PyTorch masks x / ||x|| there)."""

    __slots__ = ("axes", "keepdim")
    save_inputs = (0,)
    save_output = True

    def forward(self, a, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim
        x = _upcast(a)
        return np.sqrt(np.sum(x * x, axis=axes, keepdims=keepdim)).astype(a.dtype, copy=False)

    def backward(self, g):
        (a,) = self.saved_tensors()
        out = _unreduce(self.output(), a._data.shape, self.axes, self.keepdim)
        from .elementwise import where

        gx = _unreduce(g, a._data.shape, self.axes, self.keepdim) * a / out
        return (where(out == 0, 0.0, gx),)

    @classmethod
    def op_name(cls):
        return "LinalgVectorNorm"


def vector_norm(x, ord=2, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002
    """p-norm over ``dim``: ord 2 (default), inf, -inf, 0, 1 or any other p."""
    if dtype is not None:
        x = x.to(dtype)
    if x._data.dtype.kind != "f":
        raise RuntimeError(
            f"linalg.vector_norm: Expected a floating point tensor as input. Got {x.dtype.name}"
        )
    axes = dims(dim, x._data.ndim, "norm")
    if ord == 2:
        return apply(Norm2, (x,), {"axes": axes, "keepdim": keepdim})
    ax = x.abs()
    if ord == float("inf"):
        return amax(ax, axes, keepdim)
    if ord == float("-inf"):
        return amin(ax, axes, keepdim)
    if ord == 0:
        return sum((x != 0).to(x.dtype), axes, keepdim)
    if ord == 1:
        return sum(ax, axes, keepdim)
    p = float(ord)
    s = sum(ax**p, axes, keepdim)
    from .elementwise import where

    # the gradient of s**(1/p) at s=0 is masked to 0, as for the 2-norm
    safe = where(s == 0, 1.0, s)
    return where(s == 0, 0.0, safe ** (1.0 / p))


def norm(input, p="fro", dim=None, keepdim: bool = False, out=None, dtype=None) -> Tensor:
    """``Tensor.norm``: 'fro' and numbers are vector norms over ``dim``."""
    if out is not None:
        raise NotImplementedError("norm(): out= is not supported; use the returned tensor")
    if p == "fro" or p is None:
        p = 2
    if isinstance(p, str):
        return matrix_norm(input, p, dim if dim is not None else (-2, -1), keepdim)
    return vector_norm(input, p, dim, keepdim, dtype=dtype)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim: bool = False) -> Tensor:
    if ord == "fro":
        return vector_norm(A, 2, dim, keepdim)
    raise NotImplementedError(f"matrix_norm: ord={ord!r} is not supported (use 'fro')")


def linalg_norm(A, ord=None, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """``linalg.norm``: vector norm unless ``ord`` is a matrix-norm name or dim is 2 long."""
    if isinstance(ord, str):
        return matrix_norm(A, ord, dim if dim is not None else (-2, -1), keepdim)
    if ord is None:
        return vector_norm(A, 2, dim, keepdim, dtype=dtype)
    if dim is None and A._data.ndim == 2 or (isinstance(dim, tuple | list) and len(dim) == 2):
        raise NotImplementedError(
            "linalg.norm: numeric matrix norms are not supported; use ord='fro'"
        )
    return vector_norm(A, ord, dim, keepdim, dtype=dtype)

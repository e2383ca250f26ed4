"""Elementwise primitives: arithmetic, unary math, activations, comparisons.

Binary ops see inputs already promoted and (for those needing grad) broadcast by
``_util.prepare``, so their vjps never reduce: the broadcast node's vjp does.
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd import recycle as _recycle
from ..autograd.grad_mode import STATE
from ..autograd.node import Node, apply
from ..tensor import Tensor
from ._util import _fast2, as_operand, errstate, prepare

# --- casting ---------------------------------------------------------------------------


class Cast(Node):
    __slots__ = ("src",)

    def forward(self, a, dtype):
        self.src = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return (g.to(self.src),)

    @classmethod
    def op_name(cls):
        return "ToCopy"


class Clone(Node):
    __slots__ = ()

    def forward(self, a):
        return a.copy()

    def backward(self, g):
        return (g,)


def clone(a: Tensor, *, memory_format=None) -> Tensor:
    """A copy of ``a`` that stays in the graph."""
    return apply(Clone, (a,))


# --- binary arithmetic -----------------------------------------------------------------


class Add(Node):
    __slots__ = ()

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Sub(Node):
    __slots__ = ()

    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, -g


class Mul(Node):
    __slots__ = ()
    save_inputs = (0, 1)
    quiet = True

    def forward(self, a, b):
        return a * b  # inf * 0 is nan, silently (torch)

    def backward(self, g):
        a, b = self.saved_tensors()
        nxt = self.next  # skip the vjp of an input that needs no grad (e.g. x * 0.5)
        if not STATE.enabled:  # plain backward: one NumPy product each, no op dispatch
            gd = g._data
            ga = _arr(gd * b._data) if nxt[0] is not None else None
            gb = _arr(gd * a._data) if nxt[1] is not None else None
            return ga, gb
        return (g * b if nxt[0] is not None else None), (g * a if nxt[1] is not None else None)


def _arr(x) -> Tensor:
    """A Tensor of a NumPy result (0-d products come back as NumPy scalars)."""
    return Tensor._make(x if type(x) is np.ndarray else np.asarray(x))


class Div(Node):
    __slots__ = ()
    save_inputs = (0, 1)
    quiet = True

    def forward(self, a, b):
        return a / b

    def backward(self, g):
        a, b = self.saved_tensors()
        ga = g / b
        gb = -ga * a / b if self.next[1] is not None else None
        return ga, gb


class Pow(Node):
    """Tensor ** Tensor. NOTE: base 0 with exponent >= 0 gives the exponent a zero gradient
    (PyTorch's convention), not 0 * log(0) = NaN."""

    __slots__ = ()
    save_inputs = (0, 1)
    save_output = True
    quiet = True

    def forward(self, a, b):
        return np.power(a, b)

    def backward(self, g):
        a, b = self.saved_tensors()
        ga = gb = None
        if self.next[0] is not None:
            # exponent 0: the base's grad is 0 even at base 0 (not 0 * inf = nan), as in torch
            ga = g * b * a ** where(b == 0, 0.0, b - 1)
        if self.next[1] is not None:
            out = self.output()
            safe_log = where((a == 0) & (b >= 0), 0.0, log(a))
            gb = g * out * safe_log
        return ga, gb


class PowScalar(Node):
    """Tensor ** Python number; d/dx x**0 = 0 everywhere, including 0 (PyTorch)."""

    __slots__ = ("p",)
    save_inputs = (0,)
    quiet = True

    def forward(self, a, p):
        self.p = p
        if p == 2:
            return a * a
        return np.power(a, p if a.dtype.kind != "f" else a.dtype.type(p))

    def backward(self, g):
        (a,) = self.saved_tensors()
        p = self.p
        if p == 0:
            return (g * 0,)
        if p == 1:
            return (g,)
        if p == 2:
            return (g * a * 2.0,)
        return (g * (a ** (p - 1) * float(p)),)

    @classmethod
    def op_name(cls):
        return "Pow"


class Remainder(Node):
    __slots__ = ()
    save_inputs = (0, 1)
    quiet = True

    def forward(self, a, b):
        return np.remainder(a, b)

    def backward(self, g):
        a, b = self.saved_tensors()
        gb = -g * floor_divide(a, b) if self.next[1] is not None else None
        return g, gb


class Maximum(Node):
    """NOTE: at ties each input gets half the gradient (PyTorch, JAX); NaN propagates."""

    __slots__ = ()
    save_inputs = (0, 1)

    def forward(self, a, b):
        return np.maximum(a, b)

    def backward(self, g):
        a, b = self.saved_tensors()
        w = _tie_weights(a._data > b._data, a._data == b._data, g._data.dtype)
        return g * w, g * (1.0 - w)


class Minimum(Node):
    __slots__ = ()
    save_inputs = (0, 1)

    def forward(self, a, b):
        return np.minimum(a, b)

    def backward(self, g):
        a, b = self.saved_tensors()
        w = _tie_weights(a._data < b._data, a._data == b._data, g._data.dtype)
        return g * w, g * (1.0 - w)


def _tie_weights(win, tie, dt):
    w = np.asarray(win).astype(dt)  # 0-d comparisons give NumPy scalars
    w[tie] = 0.5
    return Tensor._make(w)


class Where(Node):
    __slots__ = ("cond",)

    def forward(self, c, a, b):
        self.cond = c
        return np.where(c, a, b)

    def backward(self, g):
        c = Tensor._make(self.cond)
        zero = Tensor._make(np.zeros((), g._data.dtype))
        ga = where(c, g, zero) if self.next[1] is not None else None
        gb = where(c, zero, g) if self.next[2] is not None else None
        return None, ga, gb


def _binary(cls, a, b, op):
    ops = _fast2(a, b, False)  # the common cases first, without prepare's list
    if ops is None:
        ops = prepare(op, [a, b])
    return apply(cls, ops)


def add(input, other, *, alpha=1, out=None) -> Tensor:
    """``input + alpha * other`` with broadcasting and PyTorch's type promotion.

    >>> import retrograd as rg
    >>> rg.add(rg.tensor([1.0, 2.0]), 1)
    tensor([2., 3.])
    """
    if alpha != 1:
        other = mul(other, alpha)
    return _binary(Add, input, other, "add")


def sub(input, other, *, alpha=1, out=None) -> Tensor:
    if alpha != 1:
        other = mul(other, alpha)
    ops = _fast2(input, other, False)
    if ops is None:
        if any(isinstance(x, Tensor) and x._data.dtype.kind == "b" for x in (input, other)):
            ops = None
        else:
            ops = prepare("sub", [input, other])
    if ops is None or ops[0]._data.dtype.kind == "b":
        raise RuntimeError(
            "Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
            "trying to invert a mask, use the `~` or `logical_not()` operator instead."
        )
    return apply(Sub, ops)


def rsub(input, other, alpha=1) -> Tensor:
    return sub(other, input, alpha=alpha)


def mul(input, other, *, out=None) -> Tensor:
    return _binary(Mul, input, other, "mul")


def div(input, other, *, rounding_mode=None, out=None) -> Tensor:
    """True division (int / int gives float); ``rounding_mode`` 'floor' or 'trunc'."""
    if rounding_mode is None:
        a, b = prepare("div", [input, other], float_only=True)
        return apply(Div, (a, b))
    if rounding_mode == "floor":
        return floor_divide(input, other)
    if rounding_mode == "trunc":
        return _int_like(trunc(div(input, other)), input, other)
    raise ValueError(
        "div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
        f"'{rounding_mode}'"
    )


def _both_int(a, b):
    da = a._data.dtype.kind if isinstance(a, Tensor) else ("f" if isinstance(a, float) else "i")
    db = b._data.dtype.kind if isinstance(b, Tensor) else ("f" if isinstance(b, float) else "i")
    return da in "iub" and db in "iub"


def _int_like(r, a, b):
    if _both_int(a, b):
        raw = [x._data if isinstance(x, Tensor) else x for x in (a, b)]
        from .. import _dtype

        return Tensor._make(r._data.astype(_dtype.result_np_dtype(raw)))
    return r


true_divide = divide = div
multiply = mul
subtract = sub


def floor_divide(input, other) -> Tensor:
    """Floor division; its result carries no gradient (as in PyTorch)."""
    a, b = prepare("floor_divide", [input, other])
    _no_bool_kernel(a, "div_floor")
    if b._data.dtype.kind in "iu" and (b._data == 0).any():
        raise RuntimeError("ZeroDivisionError: integer floor division by zero")
    with errstate(divide="ignore", invalid="ignore"):
        return Tensor._make(np.asarray(np.floor_divide(a._data, b._data)))


def remainder(input, other) -> Tensor:
    """Python-style modulo (the result has the sign of the divisor)."""
    a, b = prepare("remainder", [input, other])
    _no_bool_kernel(a, "remainder")
    if b._data.dtype.kind in "iu" and (b._data == 0).any():
        raise RuntimeError("ZeroDivisionError: integer modulo by zero")
    return apply(Remainder, (a, b))


def fmod(input, other) -> Tensor:
    a, b = prepare("fmod", [input, other])
    with errstate(divide="ignore", invalid="ignore"):
        q = np.fmod(a._data, b._data)
    # fmod(a, b) = a - trunc(a / b) * b
    if STATE.enabled and (a._requires_grad or b._requires_grad):
        return sub(a, mul(trunc(div(a, b)).detach(), b))
    return Tensor._make(np.asarray(q))


def pow(input, exponent) -> Tensor:  # noqa: A001 - PyTorch's name
    """``input ** exponent``; integer tensors to negative integer powers raise as in PyTorch."""
    if isinstance(input, Tensor) and isinstance(exponent, bool) and input._data.dtype == bool:
        # torch: a bool tensor to a bool power stays bool (x ** True = x, x ** False = 1)
        return input.clone() if exponent else Tensor._make(np.ones_like(input._data))
    if (
        isinstance(input, Tensor)
        and isinstance(exponent, int | float)
        and not isinstance(exponent, bool)
    ):
        if input._data.dtype == bool and isinstance(exponent, int):
            input = input.to(np.int64)  # torch: bool ** 2 is int64
        if input._data.dtype.kind in "iub":
            if isinstance(exponent, float):
                input = input.to(_default_float())
            elif exponent < 0:
                raise RuntimeError("Integers to negative integer powers are not allowed.")
        return apply(PowScalar, (input,), {"p": exponent})
    a, b = prepare("pow", [input, exponent])
    _no_bool_kernel(a, "pow")
    if a._data.dtype.kind in "iu" and (b._data < 0).any():
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    return apply(Pow, (a, b))


def _no_bool_kernel(a: Tensor, op: str) -> None:
    """torch has no bool kernel for some integer ops (its error class and wording)."""
    if a._data.dtype == bool:
        raise NotImplementedError(f'"{op}_cpu" not implemented for \'Bool\'')


def _default_float():
    from .. import _dtype

    return _dtype.get_default_dtype()


def float_power(input, exponent) -> Tensor:
    from .. import _dtype

    a = as_operand(input).to(_dtype.float64)
    e = exponent.to(_dtype.float64) if isinstance(exponent, Tensor) else exponent
    return pow(a, e)


def maximum(input, other) -> Tensor:
    """Elementwise maximum; ties split the gradient evenly."""
    return _binary(Maximum, input, other, "maximum")


def minimum(input, other) -> Tensor:
    return _binary(Minimum, input, other, "minimum")


def fmax(input, other) -> Tensor:
    """Elementwise maximum that ignores NaN (NaN only where both are NaN)."""
    return maximum(where(isnan(input), other, input), where(isnan(other), input, other))


def fmin(input, other) -> Tensor:
    """Elementwise minimum that ignores NaN (NaN only where both are NaN)."""
    return minimum(where(isnan(input), other, input), where(isnan(other), input, other))


def where(condition, input=None, other=None) -> Tensor:
    """Pick from ``input`` where ``condition`` holds, else from ``other`` (broadcasting).

    >>> import retrograd as rg
    >>> x = rg.tensor([-1.0, 2.0])
    >>> rg.where(x > 0, x, 0.0)
    tensor([0., 2.])
    """
    if input is None and other is None:
        return nonzero(condition, as_tuple=True)
    c = condition._data if isinstance(condition, Tensor) else np.asarray(condition)
    if c.dtype != np.bool_:
        if c.dtype.kind in "iuf":
            c = c.astype(bool)
        else:
            raise RuntimeError(
                "where expected condition to be a boolean tensor, but got a tensor with dtype "
                f"{c.dtype}"
            )
    a, b = prepare("where", [input, other])
    if STATE.enabled and (a._requires_grad or b._requires_grad):
        from ._util import broadcast_shape, expand_to

        shape = broadcast_shape(
            broadcast_shape(c.shape, a._data.shape, "where"), b._data.shape, "where"
        )
        if a._requires_grad and a._data.shape != shape:
            a = expand_to(a, shape)
        if b._requires_grad and b._data.shape != shape:
            b = expand_to(b, shape)
        if c.shape != shape:
            c = np.broadcast_to(c, shape)
    return apply(Where, (Tensor._make(c), a, b))


def nonzero(input, *, as_tuple=False):
    """Indices of the non-zero entries: an (n, ndim) int64 tensor, or a tuple of 1-D ones."""
    a = input._data
    if a.ndim == 0:
        n = int(bool(a))
        if as_tuple:
            return (Tensor._make(np.zeros(n, np.int64)),)
        return Tensor._make(np.zeros((n, 0), np.int64))
    idx = np.nonzero(a)
    if as_tuple:
        return tuple(Tensor._make(i.astype(np.int64)) for i in idx)
    return Tensor._make(
        np.stack(idx, axis=1).astype(np.int64) if idx else np.zeros((0, 0), np.int64)
    )


def lerp(input, end, weight) -> Tensor:
    """``input + weight * (end - input)``."""
    return add(input, mul(weight, sub(end, input)))


# --- unary math --------------------------------------------------------------------------


class Neg(Node):
    __slots__ = ()

    def forward(self, a):
        return -a

    def backward(self, g):
        return (-g,)


class Abs(Node):
    """NOTE: abs'(0) = 0 (sign(0) = 0), PyTorch's convention."""

    __slots__ = ()
    save_inputs = (0,)

    def forward(self, a):
        return np.abs(a)

    def backward(self, g):
        (a,) = self.saved_tensors()
        return (g * sign(a),)


class Exp(Node):
    __slots__ = ()
    save_output = True
    quiet = True

    def forward(self, a):
        return np.exp(a)

    def backward(self, g):
        return (g * self.output(),)


class Exp2(Node):
    __slots__ = ()
    save_output = True
    quiet = True

    def forward(self, a):
        return np.exp2(a)

    def backward(self, g):
        return (g * self.output() * math.log(2.0),)


class Expm1(Node):
    __slots__ = ()
    save_output = True
    quiet = True

    def forward(self, a):
        return np.expm1(a)

    def backward(self, g):
        return (g * (self.output() + 1.0),)


class Log(Node):
    __slots__ = ()
    save_inputs = (0,)
    quiet = True

    def forward(self, a):
        return np.log(a)

    def backward(self, g):
        (a,) = self.saved_tensors()
        return (g / a,)


class Log2(Node):
    __slots__ = ()
    save_inputs = (0,)
    quiet = True

    def forward(self, a):
        return np.log2(a)

    def backward(self, g):
        (a,) = self.saved_tensors()
        return (g / (a * math.log(2.0)),)


class Log10(Node):
    __slots__ = ()
    save_inputs = (0,)
    quiet = True

    def forward(self, a):
        return np.log10(a)

    def backward(self, g):
        (a,) = self.saved_tensors()
        return (g / (a * math.log(10.0)),)


class Log1p(Node):
    __slots__ = ()
    save_inputs = (0,)
    quiet = True

    def forward(self, a):
        return np.log1p(a)

    def backward(self, g):
        (a,) = self.saved_tensors()
        return (g / (a + 1.0),)


class Sqrt(Node):
    """NOTE: sqrt'(0) = +inf (PyTorch, JAX). To mask it, use the double-where idiom:
    ``sqrt(where(x > 0, x, 1))`` inside ``where(x > 0, ..., 0)``."""

    __slots__ = ()
    save_output = True
    quiet = True

    def forward(self, a):
        return np.sqrt(a)

    def backward(self, g):
        return (g / (self.output() * 2.0),)


class Rsqrt(Node):
    __slots__ = ()
    save_output = True
    quiet = True

    def forward(self, a):
        return 1.0 / np.sqrt(a) if a.dtype.kind != "f" else a.dtype.type(1) / np.sqrt(a)

    def backward(self, g):
        out = self.output()
        return (g * out * out * out * -0.5,)


class Sin(Node):
    __slots__ = ()
    save_inputs = (0,)

    def forward(self, a):
        return np.sin(a)

    def backward(self, g):
        (a,) = self.saved_tensors()
        return (g * cos(a),)


class Cos(Node):
    __slots__ = ()
    save_inputs = (0,)

    def forward(self, a):
        return np.cos(a)

    def backward(self, g):
        (a,) = self.saved_tensors()
        return (-g * sin(a),)


class Tan(Node):
    __slots__ = ()
    save_output = True

    def forward(self, a):
        return np.tan(a)

    def backward(self, g):
        out = self.output()
        return (g * (out * out + 1.0),)


class Tanh(Node):
    __slots__ = ()
    save_output = True

    def forward(self, a):
        return np.tanh(a)

    def backward(self, g):
        out = self.output()
        if not STATE.enabled and out._data.ndim:  # plain backward: NumPy only, one buffer
            o = out._data
            r = o * o
            np.subtract(1.0, r, out=r)
            r *= g._data
            return (_arr(r),)
        return (g * (1.0 - out * out),)


class Sigmoid(Node):
    """NOTE: branch on the sign so exp never overflows; derivative from the output."""

    __slots__ = ()
    save_output = True

    def forward(self, a):
        return _sigmoid(a)

    def backward(self, g):
        out = self.output()
        if not STATE.enabled and out._data.ndim:  # plain backward: NumPy only, one buffer
            o = out._data
            r = g._data * o
            r *= np.subtract(1.0, o)  # (g * out) * (1 - out): the same rounding as below
            return (_arr(r),)
        return (g * out * (1.0 - out),)


def _sigmoid(a):
    """1 / (1 + e^-a) for a >= 0 and e^a / (1 + e^a) below, with e = e^-|a| (never
    overflows), in two buffers."""
    if a.dtype.kind != "f" or not a.ndim:
        e = np.exp(-np.abs(a))
        return np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
    e = np.abs(a)
    np.negative(e, out=e)
    np.exp(e, out=e)
    # the numerator, 1 where a >= 0 and e^a = e below: e^min(a, 0) is exactly that (and nan
    # for nan), without np.where's slow scalar operand
    num = np.minimum(a, 0.0)
    np.exp(num, out=num)
    e += 1.0
    num /= e
    return num


class Relu(Node):
    """NOTE: relu'(0) = 0."""

    __slots__ = ()
    save_output = True

    def forward(self, a):
        if a.size >= _BLOCKED_MIN and a.dtype.kind == "f" and a.flags.c_contiguous:
            out = _recycle.empty_like(a)
            af, of = a.reshape(-1), out.reshape(-1)
            _blocked(lambda s, e: np.maximum(af[s:e], 0, out=of[s:e]), a.size)
            return out
        return np.maximum(a, 0)

    def backward(self, g):
        out = self.output()
        # the gradient passes where out > 0 and where out is nan (torch: zero where out <= 0);
        # out is never negative, so that is where out != 0
        if not STATE.enabled:  # fast path (no create_graph): one NumPy multiply by the mask
            gd, od = g._data, out._data
            if od.size >= _BLOCKED_MIN and gd.flags.c_contiguous and od.flags.c_contiguous:
                res = _recycle.donated(g) if gd.dtype == od.dtype else None
                if res is None:
                    res = _recycle.empty(od.shape, np.result_type(gd, od))
                gf, of, rf = gd.reshape(-1), od.reshape(-1), res.reshape(-1)
                _blocked(lambda s, e: np.multiply(gf[s:e], of[s:e] != 0, out=rf[s:e]), od.size)
                return (Tensor._make(res),)
            return (Tensor._make(gd * (od != 0)),)
        return (g * (out != 0),)


# NOTE: elementwise passes over arrays of a MB or more run in cache-sized blocks, shared out
# among as many Python threads as BLAS may use (ops.conv.run_blocks): NumPy's ufuncs are
# single-threaded, and their full-size temporaries (a mask) cost a page fault per 4 KiB.
_BLOCKED_MIN = 1 << 18  # elements
_BLOCK = 1 << 16


def _blocked(fn, n: int) -> None:
    """``fn(start, end)`` over ``[0, n)`` in blocks of ``_BLOCK``, on BLAS-many threads (one
    call over the whole range when there is one thread)."""
    from .conv import _mode, run_blocks

    if not _mode()[1]:
        fn(0, n)
        return

    def work(_k, starts):
        for s in starts:
            fn(s, min(s + _BLOCK, n))

    run_blocks(list(range(0, n, _BLOCK)), work)


class Clamp(Node):
    """Clamp to scalar bounds. ``inclusive``: gradient passes at the bounds (clamp) or not
    (hardtanh, relu6), as in PyTorch."""

    __slots__ = ("lo", "hi", "inclusive")
    save_inputs = (0,)

    def forward(self, a, lo, hi, inclusive):
        self.lo, self.hi, self.inclusive = lo, hi, inclusive
        return np.clip(a, lo, hi) if a.dtype.kind != "f" else np.clip(a, _c(lo, a), _c(hi, a))

    def backward(self, g):
        (a,) = self.saved_tensors()
        x = a._data
        if self.inclusive:
            m = np.ones(x.shape, bool)
            if self.lo is not None:
                m &= x >= self.lo
            if self.hi is not None:
                m &= x <= self.hi
        else:
            m = (x > self.lo) & (x < self.hi)
        return (g * Tensor._make(m),)


def _c(v, a):
    return None if v is None else a.dtype.type(v)


class Softplus(Node):
    __slots__ = ("beta", "threshold")
    save_inputs = (0,)

    def forward(self, a, beta, threshold):
        self.beta, self.threshold = beta, threshold
        z = a * beta
        with errstate(over="ignore"):
            soft = (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))) / beta
        return np.where(z > threshold, a, soft).astype(a.dtype, copy=False)

    def backward(self, g):
        (a,) = self.saved_tensors()
        z = a * self.beta
        return (g * where(z > self.threshold, 1.0, sigmoid(z)),)


class Elu(Node):
    __slots__ = ("alpha", "scale")
    save_inputs = (0,)

    def forward(self, a, alpha, scale):
        self.alpha, self.scale = alpha, scale
        with errstate(over="ignore"):
            neg = alpha * np.expm1(np.minimum(a, 0))
        return (scale * np.where(a > 0, a, neg)).astype(a.dtype, copy=False)

    def backward(self, g):
        (a,) = self.saved_tensors()
        return (g * where(a > 0, self.scale, exp(a) * (self.alpha * self.scale)),)


class Gelu(Node):
    """Exact GELU ``x * Phi(x)`` or the tanh approximation (nanoGPT's)."""

    __slots__ = ("approximate",)
    save_inputs = (0,)

    def forward(self, a, approximate):
        self.approximate = approximate
        x = a.astype(np.float32) if a.dtype == np.float16 else a  # half: compute in float
        if not x.ndim:
            x = x.reshape(1)  # (0-d arithmetic gives NumPy scalars, which have no out=)
        # NOTE: in place in the output buffer: each MB-sized temporary costs page faults (glibc
        # hands freed large blocks back to the OS) that took 5x the arithmetic on the GPT's MLP
        if approximate == "tanh":
            y = np.multiply(x, x, out=_recycle.empty_like(x)) if x.ndim else x * x
            y *= 0.044715
            y += 1.0
            y *= x
            y *= _K  # K (x + 0.044715 x^3)
            np.tanh(y, out=y)
        else:
            y = _erf(x * _INV_SQRT2)
        y += 1.0
        y *= x
        y *= 0.5
        return y.reshape(a.shape).astype(a.dtype, copy=False)

    def backward(self, g):
        (a,) = self.saved_tensors()
        if self.approximate == "tanh" and not STATE.enabled and a._data.dtype.kind == "f":
            return (Tensor._make(_gelu_tanh_vjp(a._data, g._data)),)
        if self.approximate == "tanh":
            a2 = a * a
            t = tanh((a + a2 * a * 0.044715) * _K)
            d = 0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * (_K * (1.0 + 3 * 0.044715 * a2))
            return (g * d,)
        if not STATE.enabled and a._data.dtype.kind == "f":  # no create_graph: plain NumPy
            x = a._data
            d = _erf(x * x.dtype.type(_INV_SQRT2))
            d += 1.0
            d *= 0.5  # cdf
            d += x * np.exp(x * x * x.dtype.type(-0.5)) * x.dtype.type(_INV_SQRT_2PI)
            return (Tensor._make((g._data * d).astype(g._data.dtype, copy=False)),)
        cdf = 0.5 * (1.0 + erf(a * _INV_SQRT2))
        pdf = exp(a * a * -0.5) * _INV_SQRT_2PI
        return (g * (cdf + a * pdf),)


def _gelu_tanh_vjp(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``g * d gelu_tanh(x) / dx`` in NumPy with three temporaries, all in place.

    NOTE: the engine's fast path (no create_graph); the Tensor formula above builds ~18
    full-size temporaries, and this vjp sits in every GPT MLP block.
    """
    dt = np.result_type(x, g)
    x2 = np.multiply(x, x, dtype=dt, out=_recycle.empty(x.shape, dt))
    t = np.multiply(x2, 0.044715, dtype=dt, out=_recycle.empty(x.shape, dt))
    t += 1.0
    t *= x
    t *= _K
    np.tanh(t, out=t)  # t = tanh(K (x + 0.044715 x^3))
    s = np.multiply(t, t, dtype=dt, out=_recycle.empty(x.shape, dt))
    np.subtract(1.0, s, out=s)  # 1 - t^2
    x2 *= 3 * 0.044715
    x2 += 1.0
    x2 *= _K * 0.5
    x2 *= s
    x2 *= x  # 0.5 x (1 - t^2) K (1 + 3 0.044715 x^2)
    t += 1.0
    t *= 0.5
    t += x2
    t *= g
    _recycle.give(x2)  # the two temporaries, for the next large op
    _recycle.give(s)
    return t


_K = math.sqrt(2.0 / math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class Erf(Node):
    __slots__ = ()
    save_inputs = (0,)

    def forward(self, a):
        return _erf(a)

    def backward(self, g):
        (a,) = self.saved_tensors()
        return (g * exp(-(a * a)) * (2.0 / math.sqrt(math.pi)),)


try:  # SciPy is optional: without it, erf is computed below
    from scipy.special import erf as _scipy_erf
except ImportError:
    _scipy_erf = None


def _erf(x: np.ndarray) -> np.ndarray:
    if _scipy_erf is not None:
        return _scipy_erf(x).astype(x.dtype, copy=False)
    if x.dtype == np.float64:
        return _erf_numpy(x)
    return _erf_fast(x)


# Chebyshev-fitted erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2), z >= 0: fractional error
# below 1.2e-7 everywhere (Press et al., Numerical Recipes, 6.2), i.e. float32 precision.
_ERFC_COEFFS = (
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
    0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277,
)


def _erf_fast(x: np.ndarray) -> np.ndarray:
    """erf for float32/float16 in ~15 whole-array float32 ops (the float64 series costs ~20x
    more and sat on the GPT's GELU hot path)."""
    xf = x.astype(np.float32, copy=False)
    z = np.abs(xf)
    t = z * np.float32(0.5)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    poly = np.full_like(t, _ERFC_COEFFS[-1])
    for c in _ERFC_COEFFS[-2::-1]:
        poly *= t
        poly += np.float32(c)
    z *= z
    poly -= z
    np.exp(poly, out=poly)
    poly *= t  # erfc(|x|)
    np.subtract(np.float32(1.0), poly, out=poly)
    np.copysign(poly, xf, out=poly)
    # near 0, 1 - erfc cancels: use the Maclaurin series there (6 terms: < 1e-8 at 0.5)
    small = np.abs(xf) < 0.5
    x2 = xf * xf
    acc = np.full_like(xf, -1.0 / 1320.0)
    for c in (1.0 / 216.0, -1.0 / 42.0, 1.0 / 10.0, -1.0 / 3.0, 1.0):
        acc *= x2
        acc += np.float32(c)
    acc *= xf
    acc *= np.float32(2.0 / math.sqrt(math.pi))
    np.copyto(poly, acc, where=small)
    return poly.astype(x.dtype, copy=False)


def _erf_numpy(x: np.ndarray) -> np.ndarray:
    """erf to double precision without SciPy: a positive-term series below 3, and the
    Laplace continued fraction for erfc above."""
    xd = np.asarray(x, dtype=np.float64)
    ax = np.abs(xd)
    out = np.empty_like(xd)
    small = ax < 3.0
    if small.any():
        s = ax[small]
        s2 = s * s
        term = s.copy()
        total = s.copy()
        for n in range(1, 80):
            term = term * (2.0 * s2) / (2 * n + 1)
            total += term
            if term.max(initial=0.0) < 1e-17 * total.min(initial=1.0):
                break
        out[small] = 2.0 / math.sqrt(math.pi) * np.exp(-s2) * total
    big = ~small
    if big.any():
        b = ax[big]
        frac = np.zeros_like(b)
        for k in range(60, 0, -1):
            frac = (k / 2.0) / (b + frac)
        out[big] = 1.0 - np.exp(-b * b) / math.sqrt(math.pi) / (b + frac)
    return (np.sign(xd) * out).astype(x.dtype, copy=False)


class ZeroGrad(Node):
    """Piecewise-constant ops (sign, floor, ceil, round, trunc): zero gradient."""

    __slots__ = ("fn",)

    def forward(self, a, fn):
        self.fn = fn
        return fn(a)

    def backward(self, g):
        return (g * 0.0,)

    def op_name(self):
        return self.fn.__name__.capitalize()


def _zero_grad_op(fn, a):
    if a._data.dtype.kind in "iub" and fn is not _np_sign:
        return clone(a)
    return apply(ZeroGrad, (a,), {"fn": fn})


def _unary(cls):
    def op(input, *, out=None):
        return apply(cls, (_floatify(input),))

    return op


def _floatify(a):
    """Integer inputs of float-valued math ops are promoted to the default float."""
    if not isinstance(a, Tensor):
        a = as_operand(a)
    if a._data.dtype.kind != "f":
        return Tensor._make(a._data.astype(_default_float().np))
    return a


def neg(input) -> Tensor:
    if input._data.dtype.kind == "b":
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported.")
    return apply(Neg, (input,))


negative = neg


def abs(input) -> Tensor:  # noqa: A001
    return apply(Abs, (input,))


absolute = abs
exp = _unary(Exp)
exp2 = _unary(Exp2)
expm1 = _unary(Expm1)
log = _unary(Log)
log2 = _unary(Log2)
log10 = _unary(Log10)
log1p = _unary(Log1p)
sqrt = _unary(Sqrt)
rsqrt = _unary(Rsqrt)
sin = _unary(Sin)
cos = _unary(Cos)
tan = _unary(Tan)
tanh = _unary(Tanh)
sigmoid = _unary(Sigmoid)
erf = _unary(Erf)
exp.__doc__ = "Elementwise e**x."
log.__doc__ = "Natural logarithm; log(0) = -inf and log(x<0) = nan, as in PyTorch."
sqrt.__doc__ = "Square root; its gradient at 0 is +inf (PyTorch's convention)."
sigmoid.__doc__ = "Logistic function, stable for any magnitude (no overflow)."
tanh.__doc__ = "Hyperbolic tangent; saturates to +-1 with zero gradient."


def square(input) -> Tensor:
    return pow(input, 2)


def reciprocal(input) -> Tensor:
    return div(1.0, input)


def _np_sign(a):
    s = np.sign(a)
    if a.dtype.kind == "f":
        s = np.where(np.isnan(a), a.dtype.type(0), s)  # torch: sign(nan) = 0
    return s


_np_sign.__name__ = "sign"


def sign(input) -> Tensor:
    """-1, 0 or 1 (0 for NaN, as in torch); its gradient is 0."""
    return _zero_grad_op(_np_sign, input)


sgn = sign


def floor(input) -> Tensor:
    return _zero_grad_op(np.floor, input)


def ceil(input) -> Tensor:
    return _zero_grad_op(np.ceil, input)


def trunc(input) -> Tensor:
    return _zero_grad_op(np.trunc, input)


fix = trunc


def round(input, *, decimals: int = 0) -> Tensor:  # noqa: A001
    if decimals:
        return _zero_grad_op(lambda a: np.round(a, decimals), input)
    return _zero_grad_op(np.round, input)


def frac(input) -> Tensor:
    return sub(input, trunc(input))


def relu(input, inplace: bool = False) -> Tensor:
    """max(x, 0); its gradient at 0 is 0."""
    return apply(Relu, (input,))


def clamp(input, min=None, max=None) -> Tensor:  # noqa: A002
    """Clamp into [min, max] (scalars or tensors); the gradient passes at the bounds."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = input
        if min is not None:
            out = where(out < min, min, out)
        if max is not None:
            out = where(out > max, max, out)
        return out
    if input._data.dtype.kind in "iub" and (isinstance(min, float) or isinstance(max, float)):
        input = _floatify(input)  # int tensor, float bounds: the default float, as in torch
    return apply(Clamp, (input,), {"lo": min, "hi": max, "inclusive": True})


clip = clamp


def clamp_min(input, min) -> Tensor:  # noqa: A002
    return clamp(input, min=min)


def clamp_max(input, max) -> Tensor:  # noqa: A002
    return clamp(input, max=max)


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    return apply(Clamp, (input,), {"lo": min_val, "hi": max_val, "inclusive": False})


def relu6(input, inplace: bool = False) -> Tensor:
    return hardtanh(input, 0.0, 6.0)


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return where(input > 0, input, mul(input, negative_slope))


def elu(input, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return apply(Elu, (input,), {"alpha": alpha, "scale": 1.0})


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace: bool = False) -> Tensor:
    return apply(Elu, (input,), {"alpha": _SELU_ALPHA, "scale": _SELU_SCALE})


def celu(input, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return mul(apply(Elu, (div(input, alpha),), {"alpha": 1.0, "scale": 1.0}), alpha)


def gelu(input, approximate: str = "none") -> Tensor:
    """GELU, exact (``approximate='none'``) or with the tanh approximation."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu(): approximate must be 'none' or 'tanh', got {approximate!r}")
    return apply(Gelu, (input,), {"approximate": approximate})


def silu(input, inplace: bool = False) -> Tensor:
    return mul(input, sigmoid(input))


def mish(input, inplace: bool = False) -> Tensor:
    return mul(input, tanh(softplus(input)))


def softplus(input, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta x)) / beta``, linear above ``threshold`` (PyTorch)."""
    return apply(Softplus, (input,), {"beta": beta, "threshold": threshold})


def hardsigmoid(input, inplace: bool = False) -> Tensor:
    return div(hardtanh(add(input, 3.0), 0.0, 6.0), 6.0)


def hardswish(input, inplace: bool = False) -> Tensor:
    return mul(input, hardsigmoid(input))


def logsigmoid(input) -> Tensor:
    return neg(softplus(neg(input)))


def softsign(input) -> Tensor:
    return div(input, add(abs(input), 1.0))


def tanhshrink(input) -> Tensor:
    return sub(input, tanh(input))


# --- comparisons and logic (no gradient) ---------------------------------------------------


def _compare(fn, name):
    def op(input, other) -> Tensor:
        if other is None and name in ("eq", "ne"):
            return name == "ne"  # ``t == None`` is False, as in torch
        a = input._data if isinstance(input, Tensor) else input
        b = other._data if isinstance(other, Tensor) else other
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape != b.shape:
            from ._util import broadcast_shape

            broadcast_shape(a.shape, b.shape, name)
        return Tensor._make(np.asarray(fn(a, b)))

    op.__name__ = name
    return op


eq = _compare(np.equal, "eq")
ne = _compare(np.not_equal, "ne")
lt = _compare(np.less, "lt")
le = _compare(np.less_equal, "le")
gt = _compare(np.greater, "gt")
ge = _compare(np.greater_equal, "ge")
less, less_equal, greater, greater_equal, not_equal = lt, le, gt, ge, ne


def _check_bcast(a, b, name):
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape != b.shape:
        from ._util import broadcast_shape

        broadcast_shape(a.shape, b.shape, name)


def _bool_op(fn, name):
    def op(input, other) -> Tensor:
        a = input._data if isinstance(input, Tensor) else input
        b = other._data if isinstance(other, Tensor) else other
        _check_bcast(a, b, name)
        return Tensor._make(np.asarray(fn(a, b)))

    op.__name__ = name
    return op


logical_and = _bool_op(np.logical_and, "logical_and")
logical_or = _bool_op(np.logical_or, "logical_or")
logical_xor = _bool_op(np.logical_xor, "logical_xor")


def _bitwise(fn, name):
    def op(input, other) -> Tensor:
        a = input._data if isinstance(input, Tensor) else input
        b = other._data if isinstance(other, Tensor) else other
        for x in (a, b):
            if isinstance(x, np.ndarray) and x.dtype.kind == "f" or isinstance(x, float):
                raise RuntimeError(f"\"{name}_cpu\" not implemented for 'Float'")
        _check_bcast(a, b, name)
        return Tensor._make(np.asarray(fn(a, b)))

    op.__name__ = name
    return op


bitwise_and = _bitwise(np.bitwise_and, "bitwise_and")
bitwise_or = _bitwise(np.bitwise_or, "bitwise_or")
bitwise_xor = _bitwise(np.bitwise_xor, "bitwise_xor")


def logical_not(input) -> Tensor:
    return Tensor._make(np.asarray(np.logical_not(input._data)))


def bitwise_not(input) -> Tensor:
    if input._data.dtype.kind == "f":
        raise RuntimeError("bitwise_not_cpu not implemented for 'Float'")
    return Tensor._make(np.asarray(np.invert(input._data)))


def isnan(input) -> Tensor:
    return Tensor._make(np.asarray(np.isnan(input._data)))


def isinf(input) -> Tensor:
    return Tensor._make(np.asarray(np.isinf(input._data)))


def isfinite(input) -> Tensor:
    return Tensor._make(np.asarray(np.isfinite(input._data)))


def isclose(input, other, rtol=1e-5, atol=1e-8, equal_nan=False) -> Tensor:
    return Tensor._make(
        np.asarray(np.isclose(input._data, as_operand(other)._data, rtol, atol, equal_nan))
    )


def allclose(input, other, rtol=1e-5, atol=1e-8, equal_nan=False) -> bool:
    return bool(np.allclose(input._data, as_operand(other)._data, rtol, atol, equal_nan))


def equal(input, other) -> bool:
    return input._data.shape == other._data.shape and bool(np.array_equal(input._data, other._data))


def nan_to_num(input, nan=0.0, posinf=None, neginf=None) -> Tensor:
    x = input._data
    fixed = np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)
    return _replace(input, fixed)


def _replace(input, fixed):
    mask = Tensor._make(np.isfinite(input._data))
    return where(mask, input, Tensor._make(fixed))

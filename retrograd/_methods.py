"""Bind the op functions to Tensor as methods and operators (one place, no math here)."""

from __future__ import annotations

import numpy as np

from . import _dtype
from .autograd.node import apply
from .ops import elementwise as E
from .ops import indexing as I
from .ops import linalg as L
from .ops import movement as M
from .ops import reduce as R
from .ops._util import as_operand
from .ops.inplace import check_writable, commit
from .random import _rng
from .tensor import Tensor


def _r(fn):
    """Reflected operator: ``other OP self``."""

    def op(self, other):
        return fn(as_operand(other, self), self)

    return op


def _to(self, *args, **kwargs):
    """``to(dtype)``, ``to(device)``, ``to(other)``, ``to(device, dtype)``: a cast (no copy
    when nothing changes)."""
    dtype = kwargs.get("dtype")
    copy = kwargs.get("copy", False)
    for a in args:
        if isinstance(a, _dtype.dtype):
            dtype = a
        elif isinstance(a, Tensor):
            dtype = a.dtype
        elif a is float or a is int or a is bool:
            dtype = _dtype.as_dtype(a)
        elif isinstance(a, np.dtype) or (isinstance(a, type) and issubclass(a, np.generic)):
            dtype = _dtype.as_dtype(a)  # NumPy dtypes (used by vjps such as Cast's)
        elif isinstance(a, str) or hasattr(a, "type"):
            from .tensor import device

            device(a)
    if dtype is None or _dtype.as_dtype(dtype).np == self._data.dtype:
        return E.clone(self) if copy else self
    from .ops._util import cast

    return cast(self, _dtype.as_dtype(dtype).np)


def _type(self, dtype=None):
    if dtype is None:
        return {
            "float32": "retrograd.FloatTensor",
            "float64": "retrograd.DoubleTensor",
            "int64": "retrograd.LongTensor",
        }.get(self.dtype.name, f"retrograd.{self.dtype.name}")
    return _to(self, dtype)


def _inplace(fn, name, needs_old=True):
    def method(self, *args, **kwargs):
        return commit(self, lambda t: fn(t, *args, **kwargs), needs_old, name)

    method.__name__ = name
    return method


def _zero_(self):
    return _fill_(self, 0)


def _fill_(self, value):
    from .autograd.grad_mode import STATE
    from .ops.inplace import fill

    if isinstance(value, Tensor) and value._data.ndim:
        raise RuntimeError(
            "fill_ only supports 0-dimension value tensor but got tensor with "
            f"{value._data.ndim} dimensions."
        )
    if STATE.enabled and isinstance(value, Tensor) and value._requires_grad:
        v = value.to(self.dtype)
        return commit(
            self, lambda t: E.add(fill(t, 0), v.expand(*self._data.shape)), False, "fill_"
        )
    if STATE.enabled and self._requires_grad:
        v = value.item() if isinstance(value, Tensor) else value
        return commit(self, lambda t: fill(t, v), False, "fill_" if value != 0 else "zero_")
    check_writable(self, "fill_")
    self._data[...] = value._data if isinstance(value, Tensor) else value
    self._bump()
    return self


def _copy_(self, src, non_blocking=False):
    from .autograd.grad_mode import STATE

    src = as_operand(src, self)
    if STATE.enabled and (src._requires_grad or self._requires_grad):
        s = src.to(self.dtype) if src._data.dtype != self._data.dtype else src
        from .ops.inplace import fill

        return commit(
            self, lambda t: E.add(fill(t, 0), s.expand(*self._data.shape)), False, "copy_"
        )
    check_writable(self, "copy_")
    try:
        np.copyto(self._data, np.broadcast_to(src._data, self._data.shape), casting="unsafe")
    except ValueError:
        raise RuntimeError(
            f"copy_: the size of src {tuple(src._data.shape)} does not broadcast to "
            f"{tuple(self._data.shape)}"
        ) from None
    self._bump()
    return self


def _random_(fill):
    def method(self, *args, generator=None, **kwargs):
        from .autograd.grad_mode import STATE

        check_writable(self, fill.__name__)
        vals = fill(_rng(generator), self._data.shape, *args, **kwargs)
        if STATE.enabled and self._requires_grad:  # a non-leaf: its old value gets zero grad
            from .ops.inplace import fill as fill_node

            return commit(self, lambda t: fill_node(t, vals), False, fill.__name__)
        self._data[...] = vals
        self._bump()
        return self

    method.__name__ = fill.__name__
    return method


def normal_(rng, shape, mean=0.0, std=1.0):
    return rng.normal(mean, std, shape)


def uniform_(rng, shape, a=0.0, b=1.0):
    return rng.uniform(a, b, shape)


def bernoulli_(rng, shape, p=0.5):
    return rng.random(shape) < p


def exponential_(rng, shape, lambd=1.0):
    return rng.exponential(1.0 / lambd, shape)


def random_(rng, shape, low=0, high=None):
    if high is None:
        low, high = 0, low
    return rng.integers(low, high, shape)




def _getitem(self, idx):
    return I.getitem(self, idx)


def _setitem(self, idx, value):
    I.setitem(self, idx, value)


def _new_factory(factory):
    def method(self, *size, dtype=None, device=None, requires_grad=False):
        from . import creation

        return getattr(creation, factory)(
            *size, dtype=dtype or self.dtype, requires_grad=requires_grad
        )

    return method


def _new_tensor(self, data, dtype=None, device=None, requires_grad=False):
    from .creation import tensor

    return tensor(data, dtype=dtype or self.dtype, requires_grad=requires_grad)


def _new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
    from .creation import full

    return full(size, fill_value, dtype=dtype or self.dtype, requires_grad=requires_grad)


def _max(self, dim=None, keepdim=False):
    return R.max(self, dim, keepdim)


def _min(self, dim=None, keepdim=False):
    return R.min(self, dim, keepdim)


def _mT(self):
    if self._data.ndim < 2:
        raise RuntimeError(
            "tensor.mT is only supported on matrices or batches of matrices. Got "
            f"{self._data.ndim}-D tensor."
        )
    return M.transpose(self, -2, -1)


def _T(self):
    nd = self._data.ndim
    if nd < 2:
        return self
    return apply(M.Permute, (self,), {"perm": tuple(range(nd - 1, -1, -1))})


def _masked_fill_(self, mask, value):
    return commit(self, lambda t: I.masked_fill(t, mask, value), False, "masked_fill_")




def _bind():
    T = Tensor
    # arithmetic operators
    T.__add__ = E.add
    T.__radd__ = _r(E.add)
    T.__sub__ = E.sub
    T.__rsub__ = _r(E.sub)
    T.__mul__ = E.mul
    T.__rmul__ = _r(E.mul)
    T.__truediv__ = E.div
    T.__rtruediv__ = _r(E.div)
    T.__floordiv__ = E.floor_divide
    T.__rfloordiv__ = _r(E.floor_divide)
    T.__mod__ = E.remainder
    T.__rmod__ = _r(E.remainder)
    T.__pow__ = E.pow
    T.__rpow__ = _r(E.pow)
    T.__matmul__ = L.matmul
    T.__rmatmul__ = lambda self, other: L.matmul(as_operand(other), self)
    T.__neg__ = E.neg
    T.__pos__ = lambda self: self
    T.__abs__ = E.abs
    T.__invert__ = lambda self: (
        E.logical_not(self) if self._data.dtype == np.bool_ else E.bitwise_not(self)
    )
    T.__eq__ = E.eq
    T.__ne__ = E.ne
    T.__lt__ = E.lt
    T.__le__ = E.le
    T.__gt__ = E.gt
    T.__ge__ = E.ge
    T.__and__ = lambda s, o: E.bitwise_and(s, o)
    T.__or__ = lambda s, o: E.bitwise_or(s, o)
    T.__xor__ = lambda s, o: E.bitwise_xor(s, o)
    T.__rand__ = T.__and__
    T.__ror__ = T.__or__
    T.__rxor__ = T.__xor__
    T.__getitem__ = _getitem
    T.__setitem__ = _setitem
    # in-place operators
    T.__iadd__ = _inplace(E.add, "add_", needs_old=False)
    T.__isub__ = _inplace(E.sub, "sub_", needs_old=False)
    T.__imul__ = _inplace(E.mul, "mul_")
    T.__itruediv__ = _inplace(E.div, "div_")
    T.__ipow__ = _inplace(E.pow, "pow_")
    T.__ifloordiv__ = _inplace(E.floor_divide, "floor_divide_")
    T.__imod__ = _inplace(E.remainder, "remainder_")

    for name in (
        "add sub mul div true_divide divide multiply subtract floor_divide remainder fmod pow "
        "float_power maximum minimum fmax fmin lerp neg negative abs absolute exp exp2 expm1 log "
        "log2 log10 log1p sqrt rsqrt sin cos tan tanh sigmoid erf square reciprocal sign sgn "
        "floor ceil trunc fix round frac relu clamp clip clamp_min clamp_max hardtanh "
        "eq ne lt le gt ge less less_equal greater greater_equal not_equal logical_and logical_or "
        "logical_xor logical_not bitwise_and bitwise_or bitwise_xor bitwise_not isnan isinf "
        "isfinite isclose allclose equal nan_to_num clone where rsub softplus"
    ).split():
        setattr(T, name, getattr(E, name))
    for name in (
        "sum mean nansum nanmean var std prod cumsum cumprod amax amin argmax argmin argsort sort "
        "topk kthvalue median all any count_nonzero logsumexp softmax log_softmax aminmax"
    ).split():
        setattr(T, name, getattr(R, name))
    T.max = _max
    T.min = _min
    for name in (
        "reshape view flatten unflatten squeeze unsqueeze permute transpose swapaxes swapdims "
        "movedim moveaxis t expand expand_as broadcast_to tensor_split chunk unbind flip "
        "fliplr flipud roll repeat repeat_interleave narrow contiguous"
    ).split():
        setattr(T, name, getattr(M, name))

    def tile(self, *dims):
        return M.tile(self, dims[0] if len(dims) == 1 else dims)

    T.tile = tile
    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        return R.norm(self, p, dim, keepdim, dtype=dtype)

    T.norm = norm

    def split(self, split_size, dim=0):
        return M.split(self, split_size, dim)

    T.split = split
    T.view_as = lambda self, other: M.view(self, *other._data.shape)
    T.reshape_as = lambda self, other: M.reshape(self, *other._data.shape)
    for name in (
        "index_select gather scatter scatter_add index_add index_fill masked_fill masked_select "
        "take_along_dim take tril triu"
    ).split():
        setattr(T, name, getattr(I, name))
    for name in "matmul mm bmm mv dot inner outer ger addmm".split():
        setattr(T, name, getattr(L, name))
    T.T = property(_T)
    T.mT = property(_mT)
    T.H = T.T
    T.mH = T.mT
    T.to = _to
    T.type = _type
    T.float = lambda self: _to(self, _dtype.float32)
    T.double = lambda self: _to(self, _dtype.float64)
    T.half = lambda self: _to(self, _dtype.float16)
    T.long = lambda self: _to(self, _dtype.int64)
    T.int = lambda self: _to(self, _dtype.int32)
    T.bool = lambda self: _to(self, _dtype.bool_)
    T.cpu = lambda self, *a, **k: self
    T.cuda = lambda self, *a, **k: (_ for _ in ()).throw(
        RuntimeError("retrograd runs on the CPU only")
    )
    T.type_as = lambda self, other: _to(self, other.dtype)
    T.new_tensor = _new_tensor
    T.new_zeros = _new_factory("zeros")
    T.new_ones = _new_factory("ones")
    T.new_empty = _new_factory("empty")
    T.new_full = _new_full
    T.zero_ = _zero_
    T.fill_ = _fill_
    T.copy_ = _copy_
    T.normal_ = _random_(normal_)
    T.uniform_ = _random_(uniform_)
    T.bernoulli_ = _random_(bernoulli_)
    T.exponential_ = _random_(exponential_)
    T.random_ = _random_(random_)
    T.masked_fill_ = _masked_fill_
    for name, fn, old in (
        ("add_", E.add, False),
        ("sub_", E.sub, False),
        ("mul_", E.mul, True),
        ("div_", E.div, True),
        ("pow_", E.pow, True),
        ("clamp_", E.clamp, True),
        ("clip_", E.clamp, True),
        ("clamp_min_", E.clamp_min, True),
        ("clamp_max_", E.clamp_max, True),
        ("neg_", E.neg, False),
        ("abs_", E.abs, True),
        ("exp_", E.exp, False),
        ("log_", E.log, True),
        ("sqrt_", E.sqrt, False),
        ("sigmoid_", E.sigmoid, False),
        ("tanh_", E.tanh, False),
        ("relu_", E.relu, False),
        ("floor_", E.floor, False),
        ("ceil_", E.ceil, False),
        ("round_", E.round, False),
        ("trunc_", E.trunc, False),
        ("sign_", E.sign, False),
        ("lerp_", E.lerp, True),
        ("square_", E.square, True),
        ("reciprocal_", E.reciprocal, True),
        ("remainder_", E.remainder, True),
        ("fmod_", E.fmod, True),
        ("scatter_", I.scatter, False),
        ("scatter_add_", I.scatter_add, False),
        ("index_add_", I.index_add, False),
        ("index_fill_", I.index_fill, False),
        ("tril_", I.tril, False),
        ("triu_", I.triu, False),
    ):
        setattr(T, name, _inplace(fn, name, old))

    def addcmul_(self, tensor1, tensor2, *, value=1):
        return commit(
            self, lambda t: E.add(t, E.mul(E.mul(tensor1, tensor2), value)), False, "addcmul_"
        )

    def addcdiv_(self, tensor1, tensor2, *, value=1):
        return commit(
            self, lambda t: E.add(t, E.mul(E.div(tensor1, tensor2), value)), False, "addcdiv_"
        )

    def squeeze_(self, dim=None):
        self._data = self._data.reshape(M.squeeze(self.detach(), dim)._data.shape)
        return self

    def unsqueeze_(self, dim):
        self._data = self._data.reshape(M.unsqueeze(self.detach(), dim)._data.shape)
        return self

    T.addcmul_ = addcmul_
    T.addcdiv_ = addcdiv_
    T.squeeze_ = squeeze_
    T.unsqueeze_ = unsqueeze_
    T.addcmul = lambda self, t1, t2, *, value=1: E.add(self, E.mul(E.mul(t1, t2), value))
    T.addcdiv = lambda self, t1, t2, *, value=1: E.add(self, E.mul(E.div(t1, t2), value))
    T.nonzero = E.nonzero
    T.argwhere = lambda self: E.nonzero(self)


_bind()

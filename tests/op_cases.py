"""The table of op cases that drives tests/test_ops_table.py.

Each row calls an op the same way in retrograd and in PyTorch: ``fn(m, *args)`` where ``m`` is
the ``retrograd`` or the ``torch`` module, so one lambda serves both. Arguments are built from
specs: ``A(shape, dom)`` a float input that requires grad, ``I(shape, high)`` an int64 index
array, ``B(shape)`` a bool mask, ``K(array)`` a fixed constant.

``ops`` names the public functions (in ``retrograd.ops.*``) a row covers; the meta-test in
test_ops_table.py fails when a public differentiable op has no row and no entry in EXEMPT.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class A:
    """A float input that requires grad. dom: any | pos | unit | nz | distinct | big."""

    shape: tuple
    dom: str = "any"


@dataclass(frozen=True)
class I:  # noqa: E742 - short spec name
    """An int64 index array with values in [lo, high)."""

    shape: tuple
    high: int
    lo: int = 0


@dataclass(frozen=True)
class B:
    """A bool mask."""

    shape: tuple


@dataclass(frozen=True)
class K:
    """A fixed constant (a list, converted to an array in the input dtype unless int/bool)."""

    value: object
    dtype: str | None = None


@dataclass
class Case:
    id: str
    ops: tuple
    fn: object
    args: tuple
    smooth: bool = True  # False: the op has kinks (inputs are sampled away from them)
    grad: bool = True  # differentiable (else: forward values and dtype only)
    rtol: float = 1e-4
    atol: float = 1e-5
    gc_atol: float = 1e-5
    extra: dict = field(default_factory=dict)


def make_arrays(case: Case, dtype) -> list:
    """NumPy arrays for ``case.args`` (float specs in ``dtype``), seeded by the case id."""
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    out = []
    for spec in case.args:
        if isinstance(spec, A):
            out.append(_float(rng, spec).astype(dtype))
        elif isinstance(spec, I):
            out.append(rng.integers(spec.lo, spec.high, spec.shape).astype(np.int64))
        elif isinstance(spec, B):
            out.append(rng.random(spec.shape) < 0.5)
        elif isinstance(spec, K):
            arr = np.asarray(spec.value)
            if spec.dtype is not None:
                arr = arr.astype(spec.dtype)
            elif arr.dtype.kind == "f":
                arr = arr.astype(dtype)
            out.append(arr)
        else:
            out.append(spec)  # a Python value passed as is
    return out


def _float(rng, spec: A) -> np.ndarray:
    shape, dom = spec.shape, spec.dom
    n = int(np.prod(shape)) if shape else 1
    if dom == "any":
        x = rng.standard_normal(shape)
    elif dom == "pos":
        x = rng.uniform(0.5, 2.0, shape)
    elif dom == "unit":
        x = rng.uniform(-0.9, 0.9, shape)
    elif dom == "nz":  # bounded away from 0 (denominators, kinks)
        x = rng.uniform(0.4, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    elif dom == "distinct":  # well-separated values (max/min/sort-like ops)
        x = (rng.permutation(n) * 0.3 - 0.1 * n + rng.uniform(0, 0.05, n)).reshape(shape)
    elif dom == "small":  # cumprod/prod: moderate magnitudes
        x = rng.uniform(0.6, 1.4, shape) * rng.choice([-1.0, 1.0], shape)
    else:
        raise ValueError(dom)
    return np.asarray(x, dtype=np.float64)


def _F(m):
    return m.nn.functional


def _ip(op, *extra):
    """An in-place method applied to a clone (so the leaf stays untouched)."""

    def fn(m, a, *rest):
        y = a.clone()
        getattr(y, op)(*rest, *extra)
        return y

    return fn


def _setitem(idx):
    def fn(m, a, v):
        y = a.clone()
        y[idx] = v
        return y

    return fn


def _setitem_scalar(m, a):
    y = a * 1.0
    y[1:, 0] = 2.5
    return y


def _getitem_tensor_idx(m, a, i):
    return a[i]


CASES: list[Case] = []


def add(id, ops, fn, *args, **kw):
    CASES.append(Case(id, tuple(ops.split()), fn, tuple(args), **kw))


# --- arithmetic -----------------------------------------------------------------------------
add("add_same", "add", lambda m, a, b: a + b, A((2, 3)), A((2, 3)))
add("add_bcast", "add", lambda m, a, b: a + b, A((3, 1)), A((1, 4)))
add("add_rank", "add", lambda m, a, b: a + b, A((4,)), A((3, 4)))
add("add_0d", "add", lambda m, a, b: a + b, A(()), A((2, 3)))
add("add_empty", "add", lambda m, a, b: a + b, A((0, 3)), A((1, 3)))
add("add_alpha", "add", lambda m, a, b: m.add(a, b, alpha=2.5), A((2, 3)), A((3,)))
add("radd_scalar", "add", lambda m, a: 2.5 + a, A((2, 3)))
add("add_int_scalar", "add", lambda m, a: a + 2, A((3,)))
add("sub_bcast", "sub subtract", lambda m, a, b: a - b, A((2, 1, 3)), A((4, 1)))
add("rsub_scalar", "sub rsub", lambda m, a: 3 - a, A((2, 3)))
add("rsub_fn", "rsub", lambda m, a, b: m.rsub(a, b), A((2, 3)), A((3,)))
add("sub_alpha", "sub", lambda m, a, b: m.sub(a, b, alpha=0.5), A((2, 3)), A((2, 3)))
add("mul_bcast", "mul multiply", lambda m, a, b: a * b, A((3, 1)), A((1, 4)))
add("mul_4d", "mul", lambda m, a, b: a * b, A((2, 1, 3, 2)), A((2, 1, 3, 1)))
add("rmul_scalar", "mul", lambda m, a: 0.3 * a, A((5,)))
add("div_bcast", "div divide true_divide", lambda m, a, b: a / b, A((2, 3)), A((3,), "nz"))
add("rdiv_scalar", "div reciprocal", lambda m, a: 2.0 / a, A((4,), "nz"))
add("reciprocal", "reciprocal", lambda m, a: m.reciprocal(a), A((4,), "nz"))
add("div_scalar", "div", lambda m, a: a / 4, A((4,)))
add(
    "remainder",
    "remainder",
    lambda m, a, b: a % b,
    A((2, 3), "distinct"),
    A((3,), "pos"),
    smooth=False,
)
add("rremainder", "remainder", lambda m, a: 5.3 % a, K([1.5, -2.0, 0.7]), grad=False)
add(
    "remainder_other",
    "remainder",
    lambda m, a, b: m.remainder(a.detach() * 0 + 5.3, b),
    A((4,), "pos"),
    A((4,), "pos"),
    smooth=False,
)
add(
    "fmod",
    "fmod",
    lambda m, a, b: m.fmod(a, b),
    A((2, 3), "distinct"),
    A((3,), "pos"),
    smooth=False,
)
add("pow_tensor", "pow", lambda m, a, b: a**b, A((2, 3), "pos"), A((3,)))
add("pow_2", "pow square", lambda m, a: a**2, A((2, 3)))
add("pow_3_neg_base", "pow", lambda m, a: a**3, A((5,), "nz"))
add("pow_half", "pow", lambda m, a: a**0.5, A((4,), "pos"))
add("pow_neg", "pow", lambda m, a: a**-1.5, A((4,), "pos"))
add("pow_0", "pow", lambda m, a: a**0, A((3,)))
add("pow_1", "pow", lambda m, a: a**1, A((3,)))
add("rpow", "pow", lambda m, a: 2.0**a, A((2, 3)))
add("pow_fn_bcast", "pow", lambda m, a, b: m.pow(a, b), A((2, 1), "pos"), A((3,)))
add("float_power", "float_power", lambda m, a: m.float_power(a, 2.5), A((3,), "pos"))
add("square", "square", lambda m, a: m.square(a), A((2, 3)))
add("neg", "neg negative", lambda m, a: -a, A((2, 3)))
add("neg_fn", "negative", lambda m, a: m.negative(a), A((3,)))
add("matmul_op", "matmul", lambda m, a, b: a @ b, A((2, 3)), A((3, 4)))

# --- unary math and activations --------------------------------------------------------------
for _name, _dom in [
    ("abs", "nz"),
    ("exp", "any"),
    ("exp2", "any"),
    ("log", "pos"),
    ("log2", "pos"),
    ("log10", "pos"),
    ("log1p", "pos"),
    ("expm1", "any"),
    ("sqrt", "pos"),
    ("rsqrt", "pos"),
    ("sin", "any"),
    ("cos", "any"),
    ("tan", "unit"),
    ("tanh", "any"),
    ("sigmoid", "any"),
    ("erf", "any"),
]:
    add(_name, _name, (lambda n: lambda m, a: getattr(m, n)(a))(_name), A((2, 3), _dom))
    add(_name + "_method", _name, (lambda n: lambda m, a: getattr(a, n)())(_name), A((4,), _dom))
add("absolute", "absolute", lambda m, a: m.absolute(a), A((3,), "nz"))
add("abs_dunder", "abs", lambda m, a: abs(a), A((3,), "nz"))
add("exp_big", "exp", lambda m, a: m.exp(a * 20), A((4,)), atol=1e-3, rtol=1e-4)
add("relu", "relu", lambda m, a: m.relu(a), A((2, 3), "nz"), smooth=False)
add("relu_F", "relu", lambda m, a: _F(m).relu(a), A((5,), "nz"), smooth=False)
add("relu6", "relu6", lambda m, a: _F(m).relu6(a * 5), A((6,), "nz"), smooth=False)
add(
    "leaky_relu", "leaky_relu", lambda m, a: _F(m).leaky_relu(a, 0.2), A((2, 3), "nz"), smooth=False
)
add("elu", "elu", lambda m, a: _F(m).elu(a, 0.7), A((2, 3), "nz"), smooth=False)
add("selu", "selu", lambda m, a: _F(m).selu(a), A((2, 3), "nz"), smooth=False)
add("celu", "celu", lambda m, a: _F(m).celu(a, 1.3), A((2, 3), "nz"), smooth=False)
add("gelu", "gelu", lambda m, a: _F(m).gelu(a), A((2, 3)))
add("gelu_tanh", "gelu", lambda m, a: _F(m).gelu(a, approximate="tanh"), A((2, 3)))
add("silu", "silu", lambda m, a: _F(m).silu(a), A((2, 3)))
add("mish", "mish", lambda m, a: _F(m).mish(a), A((2, 3)))
add("softplus", "softplus", lambda m, a: _F(m).softplus(a), A((2, 3)))
add(
    "softplus_beta",
    "softplus",
    lambda m, a: _F(m).softplus(a * 3, beta=2.0, threshold=5.0),
    A((8,), "nz"),
    smooth=False,
)
add(
    "hardtanh",
    "hardtanh",
    lambda m, a: _F(m).hardtanh(a * 2, -1.0, 1.5),
    A((6,), "nz"),
    smooth=False,
)
add(
    "hardsigmoid", "hardsigmoid", lambda m, a: _F(m).hardsigmoid(a * 4), A((6,), "nz"), smooth=False
)
add("hardswish", "hardswish", lambda m, a: _F(m).hardswish(a * 4), A((6,), "nz"), smooth=False)
add("logsigmoid", "logsigmoid", lambda m, a: _F(m).logsigmoid(a), A((2, 3)))
add("softsign", "softsign", lambda m, a: _F(m).softsign(a), A((2, 3), "nz"))
add("tanhshrink", "tanhshrink", lambda m, a: _F(m).tanhshrink(a), A((2, 3)))
add("clamp", "clamp clip", lambda m, a: m.clamp(a, -0.5, 0.7), A((2, 4), "nz"), smooth=False)
add("clamp_min", "clamp clamp_min", lambda m, a: a.clamp(min=0.2), A((6,), "nz"), smooth=False)
add("clamp_max", "clamp_max", lambda m, a: m.clamp_max(a, 0.2), A((6,), "nz"), smooth=False)
add("clamp_min_fn", "clamp_min", lambda m, a: m.clamp_min(a, -0.2), A((6,), "nz"), smooth=False)
add("clip", "clip", lambda m, a: m.clip(a, -0.3, 0.3), A((6,), "nz"), smooth=False)
add(
    "clamp_tensor",
    "clamp",
    lambda m, a, lo, hi: m.clamp(a, lo, hi),
    A((2, 3), "distinct"),
    A((3,), "distinct"),
    A((2, 3), "distinct"),
    smooth=False,
)
add(
    "maximum",
    "maximum fmax",
    lambda m, a, b: m.maximum(a, b),
    A((2, 3), "distinct"),
    A((3,), "distinct"),
    smooth=False,
)
add(
    "minimum",
    "minimum fmin",
    lambda m, a, b: m.minimum(a, b),
    A((3, 1), "distinct"),
    A((4,), "distinct"),
    smooth=False,
)
add(
    "maximum_0d",
    "maximum",
    lambda m, a, b: m.maximum(a, b),
    A(()),
    A((3,), "distinct"),
    smooth=False,
)
add(
    "max_binary",
    "max maximum",
    lambda m, a, b: m.max(a, b),
    A((2, 3), "distinct"),
    A((2, 3), "distinct"),
    smooth=False,
)
add("where", "where", lambda m, c, a, b: m.where(c, a, b), B((2, 3)), A((2, 3)), A((3,)))
add("where_scalar", "where", lambda m, a: m.where(a > 0, a, 0.0), A((2, 3)), smooth=False)
add(
    "where_bcast_cond",
    "where",
    lambda m, c, a, b: m.where(c, a, b),
    B((3, 1)),
    A((1, 2)),
    A((3, 2)),
)
add("lerp_scalar", "lerp", lambda m, a, b: m.lerp(a, b, 0.3), A((2, 3)), A((2, 3)))
add("lerp_tensor", "lerp", lambda m, a, b, w: m.lerp(a, b, w), A((2, 3)), A((3,)), A((2, 3)))
for _name in ("sign", "sgn", "floor", "ceil", "round", "trunc", "fix", "frac"):
    add(_name, _name, (lambda n: lambda m, a: getattr(m, n)(a * 3))(_name), A((2, 3), "nz"))
add("round_decimals", "round", lambda m, a: m.round(a * 3, decimals=1), A((5,)))
add("nan_to_num", "nan_to_num", lambda m, a: m.nan_to_num(a), A((2, 3)))
add("clone", "clone", lambda m, a: m.clone(a), A((2, 3)))
add("to_double", "clone", lambda m, a: a.to(m.float64) * 2, A((3,)))

# --- reductions -----------------------------------------------------------------------------
add("sum_all", "sum", lambda m, a: a.sum(), A((2, 3)))
add("sum_dim", "sum", lambda m, a: a.sum(1), A((2, 3, 2)))
add("sum_neg_keep", "sum", lambda m, a: a.sum(-1, keepdim=True), A((2, 3)))
add("sum_tuple", "sum", lambda m, a: m.sum(a, (0, 2)), A((2, 3, 2)))
add("sum_tuple_neg_keep", "sum", lambda m, a: a.sum((-1, 0), keepdim=True), A((2, 3, 2)))
add("sum_empty", "sum", lambda m, a: a.sum(0), A((0, 3)))
add("sum_0d", "sum", lambda m, a: a.sum(), A(()))
add("mean_all", "mean", lambda m, a: a.mean(), A((2, 3)))
add("mean_tuple_keep", "mean", lambda m, a: a.mean((0, -1), keepdim=True), A((2, 3, 2)))
add("mean_neg", "mean", lambda m, a: m.mean(a, -2), A((2, 3, 1)))
add("nansum", "nansum", lambda m, a: m.nansum(a, 1), A((2, 3)))
add("nanmean", "nanmean", lambda m, a: m.nanmean(a, 0), A((2, 3)))
add("var_all", "var", lambda m, a: a.var(), A((2, 3)))
add("var_dim", "var", lambda m, a: a.var(1), A((2, 3)))
add(
    "var_corr0_keep", "var", lambda m, a: m.var(a, (0, 2), correction=0, keepdim=True), A((2, 3, 2))
)
add("var_unbiased_false", "var", lambda m, a: a.var(-1, unbiased=False), A((3, 4)))
add("var_corr2", "var", lambda m, a: a.var(1, correction=2), A((2, 4)))
add("std_all", "std", lambda m, a: a.std(), A((2, 3)))
add("std_dim_keep", "std", lambda m, a: m.std(a, -1, keepdim=True), A((2, 3)))
add("std_corr0_tuple", "std", lambda m, a: a.std((0, 1), correction=0), A((2, 3, 2)))
add("var_mean", "var_mean", lambda m, a: m.var_mean(a, 1), A((2, 3)))
add("std_mean", "std_mean", lambda m, a: m.std_mean(a, 0, keepdim=True), A((2, 3)))
add("prod_all", "prod", lambda m, a: a.prod(), A((2, 3), "small"))
add("prod_dim", "prod", lambda m, a: m.prod(a, 1), A((2, 3), "small"))
add("prod_neg_keep", "prod", lambda m, a: a.prod(-1, keepdim=True), A((3, 4), "small"))
add(
    "prod_zero",
    "prod",
    lambda m, a: (a * m.tensor([1.0, 0.0, 1.0], dtype=a.dtype)).prod(-1),
    A((2, 3), "small"),
)
add(
    "prod_two_zeros",
    "prod",
    lambda m, a: (a * m.tensor([0.0, 1.0, 0.0, 1.0], dtype=a.dtype)).prod(),
    A((4,), "small"),
)
add("cumsum", "cumsum", lambda m, a: m.cumsum(a, 1), A((2, 3)))
add("cumsum_neg", "cumsum", lambda m, a: a.cumsum(-2), A((3, 2)))
add("cumprod", "cumprod", lambda m, a: m.cumprod(a, 1), A((2, 4), "small"))
add(
    "cumprod_zero",
    "cumprod",
    lambda m, a: (a * m.tensor([1.0, 0.0, 1.0, 1.0], dtype=a.dtype)).cumprod(-1),
    A((2, 4), "small"),
)
add("max_all", "max amax", lambda m, a: a.max(), A((2, 3), "distinct"), smooth=False)
add("min_all", "min amin", lambda m, a: m.min(a), A((2, 3), "distinct"), smooth=False)
add("max_dim", "max", lambda m, a: m.max(a, 1), A((2, 3), "distinct"), smooth=False)
add(
    "max_dim_keep_neg",
    "max",
    lambda m, a: a.max(-1, keepdim=True),
    A((3, 4), "distinct"),
    smooth=False,
)
add("min_dim", "min", lambda m, a: m.min(a, 0), A((3, 2), "distinct"), smooth=False)
add("amax_tuple", "amax", lambda m, a: m.amax(a, (0, 2)), A((2, 3, 2), "distinct"), smooth=False)
add("amax_keep", "amax", lambda m, a: a.amax(-1, keepdim=True), A((2, 3), "distinct"), smooth=False)
add("amin_dim", "amin", lambda m, a: m.amin(a, 1), A((2, 3), "distinct"), smooth=False)
add(
    "aminmax",
    "aminmax",
    lambda m, a: tuple(m.aminmax(a, dim=1)),
    A((2, 3), "distinct"),
    smooth=False,
)
add("logsumexp", "logsumexp", lambda m, a: m.logsumexp(a, 1), A((2, 3)))
add(
    "logsumexp_tuple_keep",
    "logsumexp",
    lambda m, a: a.logsumexp((0, -1), keepdim=True),
    A((2, 3, 2)),
)
add(
    "logsumexp_big",
    "logsumexp",
    lambda m, a: m.logsumexp(a * 1e4, -1),
    A((2, 3), "distinct"),
    smooth=False,
    rtol=1e-5,
    atol=1e-2,
)
add("softmax", "softmax", lambda m, a: m.softmax(a, 1), A((2, 3)))
add("softmax_neg", "softmax", lambda m, a: a.softmax(-1), A((2, 2, 3)))
add("softmax_empty", "softmax", lambda m, a: m.softmax(a, 1), A((2, 0)))
add("log_softmax_empty", "log_softmax", lambda m, a: m.log_softmax(a, 0), A((0, 2)))
add("logsumexp_empty", "logsumexp", lambda m, a: m.logsumexp(a, 1), A((2, 0)))
add("softmax_F_dim0", "softmax", lambda m, a: _F(m).softmax(a, dim=0), A((3, 2)))
add(
    "softmax_big",
    "softmax",
    lambda m, a: m.softmax(a * 1e4, -1),
    A((2, 3), "distinct"),
    smooth=False,
)
add("log_softmax", "log_softmax", lambda m, a: m.log_softmax(a, 1), A((2, 3)))
add(
    "log_softmax_big",
    "log_softmax",
    lambda m, a: _F(m).log_softmax(a * 1e4, -1),
    A((2, 3), "distinct"),
    smooth=False,
    atol=1e-2,
)
add("softmin", "softmin", lambda m, a: _F(m).softmin(a, 1), A((2, 3)))
add("norm_all", "norm", lambda m, a: a.norm(), A((2, 3)))
add("norm_dim_keep", "norm", lambda m, a: m.norm(a, dim=1, keepdim=True), A((2, 3)))
add("norm_p1", "norm", lambda m, a: a.norm(p=1, dim=-1), A((2, 3), "nz"), smooth=False)
add("norm_p3", "norm", lambda m, a: a.norm(p=3, dim=(0, 1)), A((2, 3), "nz"))
add(
    "norm_inf",
    "norm",
    lambda m, a: a.norm(p=float("inf"), dim=1),
    A((2, 3), "distinct"),
    smooth=False,
)
add("linalg_norm", "linalg_norm vector_norm", lambda m, a: m.linalg.norm(a), A((2, 3)))
add("linalg_norm_dim", "linalg_norm", lambda m, a: m.linalg.norm(a, dim=-1), A((2, 3)))
add("linalg_norm_fro", "linalg_norm matrix_norm", lambda m, a: m.linalg.norm(a, "fro"), A((2, 3)))
add(
    "vector_norm_ord",
    "vector_norm",
    lambda m, a: m.linalg.vector_norm(a, 4, dim=0),
    A((2, 3), "nz"),
)
add(
    "vector_norm_ninf",
    "vector_norm",
    lambda m, a: m.linalg.vector_norm(a, float("-inf"), dim=1),
    A((2, 3), "distinct"),
    smooth=False,
)
add("matrix_norm", "matrix_norm", lambda m, a: m.linalg.matrix_norm(a), A((2, 2, 3)))
add("sort", "sort", lambda m, a: tuple(m.sort(a, 1)), A((2, 4), "distinct"), smooth=False)
add(
    "sort_desc",
    "sort",
    lambda m, a: tuple(a.sort(0, descending=True)),
    A((3, 2), "distinct"),
    smooth=False,
)
add("topk", "topk", lambda m, a: tuple(m.topk(a, 2, dim=-1)), A((2, 5), "distinct"), smooth=False)
add(
    "topk_smallest",
    "topk",
    lambda m, a: tuple(a.topk(2, 0, largest=False)),
    A((4, 2), "distinct"),
    smooth=False,
)
add(
    "kthvalue",
    "kthvalue",
    lambda m, a: tuple(m.kthvalue(a, 2, 1)),
    A((2, 5), "distinct"),
    smooth=False,
)
add("median_dim", "median", lambda m, a: tuple(m.median(a, 1)), A((2, 5), "distinct"), smooth=False)
add("median_all", "median", lambda m, a: a.median(), A((2, 3), "distinct"), smooth=False)

# --- shape ops ------------------------------------------------------------------------------
add("reshape", "reshape", lambda m, a: a.reshape(3, -1), A((2, 3)))
add("reshape_fn", "reshape", lambda m, a: m.reshape(a, (6,)), A((2, 3)))
add("reshape_empty", "reshape", lambda m, a: a.reshape(0, 2), A((3, 0)))
add("view", "view", lambda m, a: a.view(2, 1, 3), A((6,)))
add("view_as", "view", lambda m, a, b: a.view_as(b), A((6,)), A((3, 2)))
add("reshape_as", "reshape", lambda m, a, b: a.reshape_as(b), A((6,)), A((3, 2)))
add("flatten", "flatten", lambda m, a: a.flatten(), A((2, 3, 2)))
add("flatten_range", "flatten", lambda m, a: m.flatten(a, 1, -1), A((2, 3, 2)))
add("unflatten", "unflatten", lambda m, a: a.unflatten(1, (2, 3)), A((2, 6)))
add("unflatten_neg", "unflatten", lambda m, a: m.unflatten(a, -1, (-1, 2)), A((2, 6)))
add("squeeze", "squeeze", lambda m, a: a.squeeze(), A((1, 3, 1)))
add("squeeze_dim", "squeeze", lambda m, a: m.squeeze(a, -1), A((2, 3, 1)))
add("squeeze_tuple", "squeeze", lambda m, a: a.squeeze((0, 2)), A((1, 3, 1)))
add("unsqueeze", "unsqueeze", lambda m, a: a.unsqueeze(-1), A((2, 3)))
add("unsqueeze0", "unsqueeze", lambda m, a: m.unsqueeze(a, 0), A((3,)))
add("permute", "permute", lambda m, a: a.permute(2, 0, 1), A((2, 3, 2)))
add("permute_neg", "permute", lambda m, a: m.permute(a, (-1, 0, 1)), A((2, 3, 2)))
add("transpose", "transpose", lambda m, a: a.transpose(0, -1), A((2, 3, 2)))
add("swapaxes", "swapaxes swapdims", lambda m, a: m.swapaxes(a, 0, 1), A((2, 3)))
add("movedim", "movedim moveaxis", lambda m, a: m.movedim(a, 0, -1), A((2, 3, 2)))
add("t", "t", lambda m, a: a.t(), A((2, 3)))
add("t_1d", "t", lambda m, a: m.t(a), A((3,)))
add("T", "permute", lambda m, a: a.T, A((2, 3)))
add("mT", "transpose", lambda m, a: a.mT, A((2, 2, 3)))
add("expand", "expand", lambda m, a: a.expand(2, 3, 4), A((3, 1)))
add("expand_neg1", "expand", lambda m, a: a.expand(-1, 4), A((3, 1)))
add("expand_as", "expand_as", lambda m, a, b: a.expand_as(b), A((1, 3)), A((2, 3)))
add("broadcast_to", "broadcast_to", lambda m, a: m.broadcast_to(a, (2, 3)), A((3,)))
add(
    "broadcast_tensors",
    "broadcast_tensors",
    lambda m, a, b: tuple(m.broadcast_tensors(a, b)),
    A((3, 1)),
    A((2,)),
)
add("repeat", "repeat", lambda m, a: a.repeat(2, 1, 3), A((2, 2)))
add("tile", "tile", lambda m, a: m.tile(a, (2,)), A((2, 3)))
add(
    "repeat_interleave",
    "repeat_interleave",
    lambda m, a: m.repeat_interleave(a, 2, dim=0),
    A((2, 3)),
)
add("cat", "cat concat concatenate", lambda m, a, b: m.cat([a, b], 1), A((2, 3)), A((2, 1)))
add("cat_neg_empty", "cat", lambda m, a, b: m.cat((a, b), -2), A((0, 2)), A((3, 2)))
add("stack", "stack", lambda m, a, b: m.stack([a, b]), A((2, 3)), A((2, 3)))
add("stack_neg", "stack", lambda m, a, b: m.stack([a, b], -1), A((2, 3)), A((2, 3)))
add("hstack", "hstack", lambda m, a, b: m.hstack([a, b]), A((2, 3)), A((2, 1)))
add("vstack", "vstack", lambda m, a, b: m.vstack([a, b]), A((3,)), A((2, 3)))
add("split", "split", lambda m, a: tuple(a.split(2, 1)), A((2, 5)))
add("split_sizes", "split", lambda m, a: tuple(m.split(a, [1, 3], -1)), A((2, 4)))
add("tensor_split", "tensor_split", lambda m, a: tuple(m.tensor_split(a, 3, 1)), A((2, 5)))
add("chunk", "chunk", lambda m, a: tuple(a.chunk(3, 0)), A((5, 2)))
add("unbind", "unbind", lambda m, a: tuple(m.unbind(a, -1)), A((2, 3)))
add("flip", "flip", lambda m, a: a.flip(0, -1), A((2, 3)))
add("flip_fn", "flip", lambda m, a: m.flip(a, (1,)), A((2, 3)))
add("fliplr", "fliplr", lambda m, a: m.fliplr(a), A((2, 3)))
add("flipud", "flipud", lambda m, a: m.flipud(a), A((2, 3)))
add("roll", "roll", lambda m, a: a.roll(1, 1), A((2, 3)))
add("roll_multi", "roll", lambda m, a: m.roll(a, (1, -2), (0, -1)), A((2, 3)))
add("roll_flat", "roll", lambda m, a: m.roll(a, 2), A((2, 3)))
add("narrow", "narrow", lambda m, a: a.narrow(1, 1, 2), A((2, 4)))
add("narrow_neg", "narrow", lambda m, a: m.narrow(a, -1, -2, 2), A((2, 4)))
add("contiguous", "contiguous", lambda m, a: a.t().contiguous(), A((2, 3)))
add("pad_constant", "pad", lambda m, a: _F(m).pad(a, (1, 2)), A((2, 3)))
add("pad_constant_value", "pad", lambda m, a: _F(m).pad(a, (1, 0, 0, 2), value=1.5), A((2, 3)))
add("pad_negative", "pad", lambda m, a: _F(m).pad(a, (-1, 1)), A((2, 3)))
add("pad_reflect", "pad", lambda m, a: _F(m).pad(a, (2, 1), mode="reflect"), A((1, 2, 4)))
add(
    "pad_reflect_2d",
    "pad",
    lambda m, a: _F(m).pad(a, (1, 1, 1, 0), mode="reflect"),
    A((1, 1, 3, 3)),
)
add("pad_replicate", "pad", lambda m, a: _F(m).pad(a, (2, 1), mode="replicate"), A((1, 2, 3)))
add("pad_circular", "pad", lambda m, a: _F(m).pad(a, (1, 2), mode="circular"), A((1, 2, 3)))

# --- indexing -------------------------------------------------------------------------------
add("getitem_int", "getitem", lambda m, a: a[1], A((3, 2)))
add("getitem_neg_int", "getitem", lambda m, a: a[-1, 0], A((3, 2)))
add("getitem_slice_step", "getitem", lambda m, a: a[::2, 1:], A((5, 3)))
add("getitem_none_ellipsis", "getitem", lambda m, a: a[..., None, 1], A((2, 3, 2)))
add("getitem_mask", "getitem masked_select", _getitem_tensor_idx, A((3, 2)), B((3, 2)))
add("getitem_row_mask", "getitem", _getitem_tensor_idx, A((4, 2)), K([True, False, True, True]))
add("getitem_int_array_repeat", "getitem", _getitem_tensor_idx, A((3, 2)), K([0, 0, 2, 0]))
add("getitem_int_2d", "getitem", lambda m, a, i, j: a[i, j], A((3, 4)), I((2, 2), 3), I((2, 2), 4))
add("getitem_mixed", "getitem", lambda m, a, i: a[:, i, 1:], A((2, 4, 3)), K([3, 1, 3]))
add("getitem_list", "getitem", lambda m, a: a[[0, 2, 2]], A((3, 2)))
add("masked_select", "masked_select", lambda m, a, mk: m.masked_select(a, mk), A((2, 3)), B((3,)))
add("gather", "gather", lambda m, a, i: m.gather(a, 1, i), A((2, 4)), I((2, 3), 4))
add("gather_neg", "gather", lambda m, a, i: a.gather(-2, i), A((3, 2)), I((4, 2), 3))
add(
    "take_along_dim",
    "take_along_dim",
    lambda m, a, i: m.take_along_dim(a, i, 1),
    A((2, 4)),
    I((2, 3), 4),
)
add(
    "take_along_dim_bcast",
    "take_along_dim",
    lambda m, a, i: m.take_along_dim(a, i, 1),
    A((2, 4)),
    I((1, 3), 4),
)
add(
    "take_along_dim_flat",
    "take_along_dim",
    lambda m, a, i: m.take_along_dim(a, i),
    A((2, 3)),
    I((4,), 6),
)
add("take", "take", lambda m, a, i: m.take(a, i), A((2, 3)), I((2, 2), 6))
add(
    "index_select", "index_select", lambda m, a, i: m.index_select(a, 0, i), A((3, 2)), K([2, 0, 2])
)
add("index_select_neg", "index_select", lambda m, a, i: a.index_select(-1, i), A((2, 4)), K([3, 1]))
add(
    "scatter",
    "scatter",
    lambda m, a, i, s: m.scatter(a, 1, i, s),
    A((2, 4)),
    K([[1, 3], [0, 2]]),
    A((2, 2)),
)
add("scatter_value", "scatter", lambda m, a, i: a.scatter(0, i, 1.5), A((3, 2)), K([[2, 0]]))
add(
    "scatter_add",
    "scatter_add",
    lambda m, a, i, s: m.scatter_add(a, 1, i, s),
    A((2, 4)),
    K([[1, 1, 3], [0, 2, 0]]),
    A((2, 3)),
)
add(
    "scatter_add_repeat",
    "scatter_add",
    lambda m, a, i, s: a.scatter_add(0, i, s),
    A((3, 2)),
    K([[2, 0], [2, 2]]),
    A((2, 2)),
)
add(
    "index_add",
    "index_add",
    lambda m, a, i, s: m.index_add(a, 0, i, s),
    A((3, 2)),
    K([2, 0, 2]),
    A((3, 2)),
)
add("index_fill", "index_fill", lambda m, a, i: a.index_fill(1, i, -1.0), A((2, 4)), K([0, 3]))
add("masked_fill", "masked_fill", lambda m, a, mk: m.masked_fill(a, mk, 0.5), A((2, 3)), B((2, 3)))
add(
    "masked_fill_bcast", "masked_fill", lambda m, a, mk: a.masked_fill(mk, -2.0), A((2, 3)), B((3,))
)
add(
    "masked_fill_tensor",
    "masked_fill",
    lambda m, a, mk, v: a.masked_fill(mk, v),
    A((2, 3)),
    B((2, 3)),
    A(()),
)
add("tril", "tril", lambda m, a: m.tril(a), A((3, 3)))
add("tril_diag", "tril", lambda m, a: a.tril(-1), A((2, 3, 4)))
add("triu", "triu", lambda m, a: m.triu(a, 1), A((3, 4)))
add("setitem_slice", "setitem", _setitem((slice(0, 2), slice(1, 3))), A((3, 4)), A((2, 2)))
add("setitem_bcast", "setitem", _setitem((slice(None), 1)), A((3, 4)), A(()))
add("setitem_int", "setitem", _setitem(1), A((3, 4)), A((4,)))
add("setitem_scalar", "setitem", _setitem_scalar, A((3, 2)))

# --- in-place on a clone ---------------------------------------------------------------------
add("add_", "add_", _ip("add_"), A((2, 3)), A((3,)))
add("add_alpha_", "add_", lambda m, a, b: a.clone().add_(b, alpha=2), A((2, 3)), A((2, 3)))
add("sub_", "sub_", _ip("sub_"), A((2, 3)), A((2, 3)))
add("mul_", "mul_", _ip("mul_"), A((2, 3)), A((3,)))
add(
    "mul_scalar_",
    "mul_",
    _ip(
        "mul_",
    ),
    A((2, 3)),
    2.5,
)
add("div_", "div_", _ip("div_"), A((2, 3)), A((3,), "nz"))
add("iadd", "add_", lambda m, a, b: _iadd(a.clone(), b), A((2, 3)), A((2, 3)))
add("imul", "mul_", lambda m, a, b: _imul(a.clone(), b), A((2, 3)), A((2, 3)))
add("zero_", "zero_", lambda m, a, b: a.clone().zero_() + b, A((2, 3)), A((2, 3)))
add("fill_", "fill_", lambda m, a: a.clone().fill_(2.0) * a, A((2, 3)))
add("fill_tensor_", "fill_", lambda m, a, v: a.clone().fill_(v), A((2, 3)), A(()))
add("copy_", "copy_", lambda m, a, b: a.clone().copy_(b), A((2, 3)), A((3,)))
add("clamp_", "clamp_", lambda m, a: a.clone().clamp_(-0.5, 0.5), A((2, 3), "nz"), smooth=False)
add("exp_", "exp_", lambda m, a: a.clone().exp_(), A((2, 3)))
add(
    "masked_fill_",
    "masked_fill_",
    lambda m, a, mk: a.clone().masked_fill_(mk, 1.0),
    A((2, 3)),
    B((2, 3)),
)

# --- linear algebra -------------------------------------------------------------------------
add("matmul_1d_1d", "matmul", lambda m, a, b: m.matmul(a, b), A((3,)), A((3,)))
add("matmul_1d_2d", "matmul", lambda m, a, b: a @ b, A((3,)), A((3, 2)))
add("matmul_2d_1d", "matmul", lambda m, a, b: a @ b, A((2, 3)), A((3,)))
add("matmul_3d_2d", "matmul", lambda m, a, b: a @ b, A((2, 2, 3)), A((3, 4)))
add("matmul_2d_3d", "matmul", lambda m, a, b: a @ b, A((2, 3)), A((2, 3, 2)))
add("matmul_batched", "matmul", lambda m, a, b: a @ b, A((2, 2, 3)), A((2, 3, 2)))
add("matmul_bcast_batch", "matmul", lambda m, a, b: a @ b, A((2, 1, 2, 3)), A((3, 3, 2)))
add("matmul_1d_3d", "matmul", lambda m, a, b: a @ b, A((3,)), A((2, 3, 2)))
add("matmul_3d_1d", "matmul", lambda m, a, b: a @ b, A((2, 2, 3)), A((3,)))
add("matmul_empty", "matmul", lambda m, a, b: a @ b, A((0, 3)), A((3, 2)))
add("mm", "mm", lambda m, a, b: m.mm(a, b), A((2, 3)), A((3, 2)))
add("bmm", "bmm", lambda m, a, b: m.bmm(a, b), A((2, 2, 3)), A((2, 3, 2)))
add("mv", "mv", lambda m, a, b: m.mv(a, b), A((2, 3)), A((3,)))
add("dot", "dot inner", lambda m, a, b: m.dot(a, b), A((3,)), A((3,)))
add("inner", "inner", lambda m, a, b: m.inner(a, b), A((3,)), A((3,)))
add("outer", "outer ger", lambda m, a, b: m.outer(a, b), A((3,)), A((2,)))
add(
    "addmm",
    "addmm",
    lambda m, c, a, b: m.addmm(c, a, b, beta=0.5, alpha=2.0),
    A((3,)),
    A((2, 4)),
    A((4, 3)),
)
add(
    "baddbmm",
    "baddbmm",
    lambda m, c, a, b: m.baddbmm(c, a, b, alpha=0.5),
    A((2, 2, 3)),
    A((2, 2, 4)),
    A((2, 4, 3)),
)
add("einsum_mm", "einsum", lambda m, a, b: m.einsum("ij,jk->ik", a, b), A((2, 3)), A((3, 2)))
add(
    "einsum_batch",
    "einsum",
    lambda m, a, b: m.einsum("bij,bjk->bik", a, b),
    A((2, 2, 3)),
    A((2, 3, 2)),
)
add("einsum_implicit", "einsum", lambda m, a, b: m.einsum("ij,jk", a, b), A((2, 3)), A((3, 2)))
add("einsum_sum_out", "einsum", lambda m, a, b: m.einsum("ij,k->i", a, b), A((2, 3)), A((2,)))
add(
    "einsum_ellipsis",
    "einsum",
    lambda m, a, b: m.einsum("...ij,...j->...i", a, b),
    A((2, 2, 3)),
    A((2, 3)),
)
add(
    "einsum_three",
    "einsum",
    lambda m, a, b, c: m.einsum("i,ij,j->", a, b, c),
    A((2,)),
    A((2, 3)),
    A((3,)),
)
add("einsum_transpose", "einsum", lambda m, a: m.einsum("ij->ji", a), A((2, 3)))

# --- not differentiable: forward values and dtypes only ---------------------------------------
for _name in ("eq ne lt le gt ge less less_equal greater greater_equal not_equal").split():
    add(
        _name,
        _name,
        (lambda n: lambda m, a, b: getattr(m, n)(a, b))(_name),
        K([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]),
        K([2.0, 2.0, 2.0]),
        grad=False,
    )
add("lt_scalar", "lt", lambda m, a: a < 1.5, K([1.0, 2.0]), grad=False)
add("eq_int_float", "eq", lambda m, a, b: a == b, K([1, 2], "int64"), K([1.0, 3.0]), grad=False)
for _name in ("logical_and", "logical_or", "logical_xor"):
    add(
        _name,
        _name,
        (lambda n: lambda m, a, b: getattr(m, n)(a, b))(_name),
        K([True, False, True, False]),
        K([True, True, False, False]),
        grad=False,
    )
add("logical_not", "logical_not", lambda m, a: m.logical_not(a), K([1.0, 0.0, 2.0]), grad=False)
for _name in ("bitwise_and", "bitwise_or", "bitwise_xor"):
    add(
        _name,
        _name,
        (lambda n: lambda m, a, b: getattr(m, n)(a, b))(_name),
        K([5, 3, 12], "int64"),
        K([3, 3, 10], "int64"),
        grad=False,
    )
add("and_bool", "bitwise_and", lambda m, a, b: a & b, K([True, False]), K([True, True]), grad=False)
add("bitwise_not", "bitwise_not", lambda m, a: m.bitwise_not(a), K([5, -3], "int64"), grad=False)
add("invert_bool", "logical_not", lambda m, a: ~a, K([True, False]), grad=False)
add(
    "isnan",
    "isnan isinf isfinite",
    lambda m, a: (m.isnan(a), m.isinf(a), m.isfinite(a)),
    K([1.0, float("nan"), float("inf")]),
    grad=False,
)
add("isclose", "isclose", lambda m, a, b: m.isclose(a, b), K([1.0, 2.0]), K([1.0, 2.1]), grad=False)
add(
    "floor_divide",
    "floor_divide",
    lambda m, a, b: a // b,
    K([7.0, -7.0, 7.5]),
    K([2.0, 2.0, -2.0]),
    grad=False,
)
add(
    "floor_divide_int",
    "floor_divide",
    lambda m, a: m.floor_divide(a, 3),
    K([7, -7, 6], "int64"),
    grad=False,
)
add(
    "div_int_int", "div", lambda m, a, b: a / b, K([7, -7], "int64"), K([2, 2], "int64"), grad=False
)
add(
    "div_floor",
    "div",
    lambda m, a, b: m.div(a, b, rounding_mode="floor"),
    K([7, -7], "int64"),
    K([2, 2], "int64"),
    grad=False,
)
add(
    "div_trunc",
    "div",
    lambda m, a, b: m.div(a, b, rounding_mode="trunc"),
    K([7.0, -7.0]),
    K([2.0, 2.0]),
    grad=False,
)
add("remainder_int", "remainder", lambda m, a: a % 3, K([7, -7], "int64"), grad=False)
add(
    "argmax",
    "argmax",
    lambda m, a: (m.argmax(a), a.argmax(1), a.argmax(-1, keepdim=True)),
    K([[1.0, 5.0, 3.0], [7.0, 2.0, 7.0]]),
    grad=False,
)
add(
    "argmin",
    "argmin",
    lambda m, a: (m.argmin(a), a.argmin(0)),
    K([[1.0, 5.0, 3.0], [7.0, 1.0, 7.0]]),
    grad=False,
)
add("argsort", "argsort", lambda m, a: m.argsort(a, -1), K([[3.0, 1.0, 2.0]]), grad=False)
add(
    "all_any",
    "all any",
    lambda m, a: (m.all(a), a.all(1), a.any(0), m.any(a, -1, keepdim=True), a.all((0, 1))),
    K([[True, False], [True, True]]),
    grad=False,
)
add(
    "count_nonzero",
    "count_nonzero",
    lambda m, a: (m.count_nonzero(a), m.count_nonzero(a, 1)),
    K([[0.0, 1.0], [2.0, 0.5]]),
    grad=False,
)
add(
    "nonzero",
    "nonzero",
    lambda m, a: (m.nonzero(a), *m.nonzero(a, as_tuple=True)),
    K([[0.0, 1.0], [2.0, 0.5]]),
    grad=False,
)
add("one_hot", "one_hot", lambda m, a: _F(m).one_hot(a, 4), K([0, 3, 1], "int64"), grad=False)
add("sum_int", "sum", lambda m, a: (a.sum(), a.sum(0)), K([[1, 2], [3, 4]], "int64"), grad=False)
add("sum_bool", "sum", lambda m, a: a.sum(), K([True, True, False]), grad=False)
add("cumsum_int", "cumsum", lambda m, a: a.cumsum(0), K([1, 2, 3], "int32"), grad=False)
add("max_int_dim", "max", lambda m, a: tuple(a.max(1)), K([[1, 5], [7, 2]], "int64"), grad=False)


def _iadd(y, b):
    y += b
    return y


def _imul(y, b):
    y *= b
    return y


CASE_IDS = [c.id for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS), "duplicate case ids"

# Public names in retrograd.ops.* that need no row, with the reason.
EXEMPT = {
    "allclose": "returns a Python bool",
    "equal": "returns a Python bool",
    "randperm": "random",
    "broadcast_shapes": "returns a Size",
    "as_operand": "helper",
    "cast": "helper (covered through .to)",
    "getitem": "bound to __getitem__",
    "setitem": "bound to __setitem__",
}

# --- 0-d inputs with dim=0 / -1 ---------------------------------------------------------------
add("sum_0d_dim", "sum", lambda m, a: a.sum(0), A(()))
add("mean_0d_tuple", "mean", lambda m, a: a.mean((-1,), keepdim=True), A(()))
add("logsumexp_0d", "logsumexp", lambda m, a: m.logsumexp(a, 0), A(()))
add("cumsum_0d", "cumsum", lambda m, a: a.cumsum(0), A(()))
add("cumprod_0d", "cumprod", lambda m, a: a.cumprod(-1), A(()))
add("softmax_0d", "softmax", lambda m, a: a.softmax(0), A(()))
add("amax_0d", "amax", lambda m, a: a.amax(0), A(()), smooth=False)
add("norm_0d", "norm", lambda m, a: a.norm(), A((), "nz"), smooth=False)
add("mean_empty", "mean", lambda m, a: a.mean(1), A((2, 0)), grad=False)
add(
    "clamp_int_float_bounds",
    "clamp",
    lambda m, a: m.clamp(a, 0.5, 3.5),
    K([1, 5], "int64"),
    grad=False,
)
add("nonzero_0d", "nonzero", lambda m, a: m.nonzero(a), K(1, "int64"), grad=False)

# --- more in-place and setitem forms ------------------------------------------------------------
add("setitem_list_idx", "setitem", _setitem(([0, 2],)), A((3, 2)), A((2, 2)))
add("setitem_mask", "setitem", lambda m, a, v: _set_mask(a.clone(), v), A((2, 3)), A(()))
add("setitem_ellipsis", "setitem", _setitem((Ellipsis, 0)), A((2, 3)), A((2,)))
add(
    "scatter_",
    "scatter",
    lambda m, a, s: a.clone().scatter_(1, m.tensor([[2, 0]]), s),
    A((2, 3)),
    A((1, 2)),
)
add(
    "scatter_add_",
    "scatter_add",
    lambda m, a, s: a.clone().scatter_add_(0, m.tensor([[1, 1]]), s),
    A((2, 2)),
    A((1, 2)),
)
add(
    "index_add_",
    "index_add",
    lambda m, a, s: a.clone().index_add_(0, m.tensor([1, 1]), s),
    A((2, 3)),
    A((2, 3)),
)
add("tril_", "tril", lambda m, a: a.clone().tril_(), A((3, 3)))
add("sub_scalar_alpha_", "sub_", lambda m, a: a.clone().sub_(2.0, alpha=0.5), A((3,)))
add("div_scalar_", "div_", lambda m, a: a.clone().div_(4.0), A((3,)))
add("isub", "sub_", lambda m, a, b: _isub(a.clone(), b), A((2, 3)), A((3,)))
add("itruediv", "div_", lambda m, a, b: _idiv(a.clone(), b), A((2, 3)), A((3,), "nz"))
add("ipow", "pow_", lambda m, a: _ipow(a.clone()), A((3,), "pos"))
add("view_inplace", "mul_", lambda m, a: _view_mul(a * 1), A((2, 3)))


def _set_mask(y, v):
    y[y > 0] = v
    return y


def _isub(y, b):
    y -= b
    return y


def _idiv(y, b):
    y /= b
    return y


def _ipow(y):
    y **= 2
    return y


def _view_mul(y):
    y[:, 1:].mul_(3)
    y[0].add_(1)
    return y


add("einsum_trace", "einsum", lambda m, a: m.einsum("ii->", a), A((3, 3)))
add("einsum_diag", "einsum", lambda m, a, b: m.einsum("iij,j->i", a, b), A((2, 2, 3)), A((3,)))
add("einsum_implicit_trace", "einsum", lambda m, a: m.einsum("ii", a), A((2, 2)))
add(
    "fmax_nan",
    "fmax",
    lambda m, a, b: m.fmax(a, b),
    K([float("nan"), 1.0, float("nan"), 2.0]),
    K([2.0, float("nan"), float("nan"), 1.0]),
    grad=False,
)
add(
    "fmin_grad",
    "fmin",
    lambda m, a, b: m.fmin(a, b),
    A((2, 3), "distinct"),
    A((3,), "distinct"),
    smooth=False,
)
add(
    "fmax_grad",
    "fmax",
    lambda m, a, b: m.fmax(a, b),
    A((2, 3), "distinct"),
    A((2, 3), "distinct"),
    smooth=False,
)
add("sign_nan", "sign", lambda m, a: m.sign(a), K([float("nan"), -0.0, 2.0, -1.5]), grad=False)

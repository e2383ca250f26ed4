"""Every op in tests/op_cases.py: float64 gradcheck (and gradgradcheck for smooth ops) and a
float32 comparison of values, dtypes and gradients with PyTorch."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import retrograd as rg
from retrograd.ops import elementwise, indexing, linalg, movement, reduce
from tests.op_cases import CASES, EXEMPT, A, make_arrays

GRAD_CASES = [c for c in CASES if c.grad]
# Ops with kinks (smooth=False) are sampled away from them, where their second derivatives
# exist too (zero or piecewise smooth), so every differentiable row gets a gradgradcheck.
SMOOTH_CASES = GRAD_CASES


def _ids(cases):
    return [c.id for c in cases]


def _build(case, lib, dtype):
    """Arguments for ``case.fn`` in ``lib`` (rg or torch), float specs requiring grad."""
    arrays = make_arrays(case, dtype)
    args, leaves = [], []
    for spec, arr in zip(case.args, arrays):
        if not isinstance(arr, np.ndarray):
            args.append(arr)
            continue
        if lib is rg:
            t = rg.tensor(arr)
        else:
            t = lib.from_numpy(np.array(arr, copy=True))
        if isinstance(spec, A):
            t.requires_grad_(True)
            leaves.append(t)
        args.append(t)
    return args, leaves


def _flat(out):
    if isinstance(out, tuple | list):
        res = []
        for o in out:
            res.extend(_flat(o))
        return res
    return [out]


def _np(t):
    # force: torch's ZeroTensor grads (e.g. through zero_) refuse a plain numpy()
    return t.detach().numpy(force=True) if not isinstance(t, np.ndarray) else t


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_matches_torch_float32(case, torch):
    rg_args, rg_leaves = _build(case, rg, np.float32)
    t_args, t_leaves = _build(case, torch, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow/invalid warnings leak
        rg_out = _flat(case.fn(rg, *rg_args))
    t_out = _flat(case.fn(torch, *t_args))
    assert len(rg_out) == len(t_out)
    for r, t in zip(rg_out, t_out):
        assert isinstance(r, rg.Tensor), type(r)
        assert tuple(r.shape) == tuple(t.shape), (r.shape, t.shape)
        assert r.dtype.name == str(t.dtype).replace("torch.", ""), (r.dtype, t.dtype)
        np.testing.assert_allclose(_np(r), _np(t), rtol=case.rtol, atol=case.atol)
        assert r.requires_grad == t.requires_grad, (r.requires_grad, t.requires_grad)
    if not case.grad:
        return
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal(tuple(t.shape)).astype(np.float32) for t in t_out]
    loss_r = sum((r * rg.tensor(w)).sum() for r, w in zip(rg_out, weights) if r.requires_grad)
    loss_t = sum((t * torch.from_numpy(w)).sum() for t, w in zip(t_out, weights) if t.requires_grad)
    loss_r.backward()
    loss_t.backward()
    for lr, lt in zip(rg_leaves, t_leaves):
        if lt.grad is None:
            assert lr.grad is None or not np.any(_np(lr.grad)), "torch gives no grad"
            continue
        assert lr.grad is not None, "missing gradient"
        assert lr.grad.dtype == rg.float32 and lr.grad.shape == lr.shape
        np.testing.assert_allclose(
            _np(lr.grad), _np(lt.grad), rtol=case.rtol * 10, atol=case.atol * 10
        )


def _rg_fn(case, args, leaves):
    pos = [i for i, a in enumerate(args) if any(a is x for x in leaves)]

    def fn(*xs):
        full = list(args)
        for i, x in zip(pos, xs):
            full[i] = x
        return tuple(o for o in _flat(case.fn(rg, *full)) if o.dtype.is_floating_point)

    return fn


@pytest.mark.parametrize("case", GRAD_CASES, ids=_ids(GRAD_CASES))
def test_gradcheck_float64(case):
    args, leaves = _build(case, rg, np.float64)
    assert rg.autograd.gradcheck(_rg_fn(case, args, leaves), tuple(leaves), atol=case.gc_atol)


@pytest.mark.parametrize("case", SMOOTH_CASES, ids=_ids(SMOOTH_CASES))
def test_gradgradcheck_float64(case):
    args, leaves = _build(case, rg, np.float64)
    assert rg.autograd.gradgradcheck(_rg_fn(case, args, leaves), tuple(leaves), atol=case.gc_atol)


# --- the table covers every public differentiable op ------------------------------------------

_MODULES = (elementwise, reduce, movement, indexing, linalg)

# The op list of the core-engine issue: each needs a row.
REQUIRED = (
    "add sub mul div floor_divide remainder pow matmul neg eq ne lt le gt ge logical_and "
    "logical_or logical_not abs exp exp2 log log2 log1p expm1 sqrt rsqrt square sin cos tan tanh "
    "sigmoid relu relu6 leaky_relu elu selu gelu silu mish softplus hardtanh clamp clip maximum "
    "minimum where lerp sign floor ceil round trunc sum mean var std prod max min amax amin "
    "argmax argmin logsumexp norm cumsum cumprod all any softmax log_softmax reshape view flatten "
    "unflatten squeeze unsqueeze permute transpose t swapaxes expand expand_as broadcast_to "
    "repeat tile cat stack split chunk unbind flip roll narrow pad getitem setitem gather "
    "scatter scatter_add index_select masked_fill take_along_dim tril triu add_ sub_ mul_ div_ "
    "zero_ fill_ copy_ clamp_ mm bmm dot outer einsum linalg_norm"
).split()


def _public_functions():
    out = {}
    for mod in _MODULES:
        for name, obj in vars(mod).items():
            if name.startswith("_") or not inspect.isfunction(obj):
                continue
            if obj.__module__ != mod.__name__:
                continue
            out[name] = obj
    return out


def _resolve(name):
    for mod in _MODULES:
        if hasattr(mod, name):
            return getattr(mod, name)
    return getattr(rg.Tensor, name, None)


def test_every_public_op_has_a_row():
    covered = {op for c in CASES for op in c.ops}
    unknown = sorted(op for op in covered if _resolve(op) is None)
    assert not unknown, f"table names unknown ops: {unknown}"
    covered_objs = {id(_resolve(op)) for op in covered}
    missing = sorted(
        name
        for name, fn in _public_functions().items()
        if id(fn) not in covered_objs and name not in EXEMPT
    )
    assert not missing, f"public ops without a row in tests/op_cases.py: {missing}"
    missing_required = sorted(set(REQUIRED) - covered)
    assert not missing_required, f"required ops without a row: {missing_required}"


def test_meta_detects_a_missing_row(monkeypatch):
    """The meta-test is not vacuous: a new public op without a row makes it fail."""

    def brand_new_op(x):
        return x

    brand_new_op.__module__ = elementwise.__name__
    monkeypatch.setattr(elementwise, "brand_new_op", brand_new_op, raising=False)
    with pytest.raises(AssertionError, match="brand_new_op"):
        test_every_public_op_has_a_row()

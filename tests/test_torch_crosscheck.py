"""Property-based cross-checks against PyTorch (the oracle), forward and backward, float32.

Hypothesis draws the cases (``derandomize=True``: the same cases on every run, so a failure
reproduces): broadcasting shape pairs for the binary ops, dim/keepdim combinations for the
reductions, random indexing expressions, and a few optimiser steps of small random models.
Every backward uses a random upstream gradient, so a wrong reduction or permutation of the
gradient cannot hide behind an all-ones cotangent.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import retrograd as rg

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

SETTINGS = settings(
    derandomize=True,
    deadline=None,
    max_examples=50,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

RTOL, ATOL = 1e-5, 1e-6
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-5


# ----------------------------------------------------------------------------- helpers


def _close(got, want, rtol=RTOL, atol=ATOL, what="value"):
    got = got.detach().numpy() if isinstance(got, rg.Tensor) else np.asarray(got)
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != torch {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != torch {want.dtype}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what, equal_nan=True)


def _pair(arr: np.ndarray, requires_grad: bool = True):
    """The same float32 data as a retrograd leaf and a torch leaf."""
    arr = np.array(arr, dtype=np.float32)  # (np.ascontiguousarray would make 0-d arrays 1-d)
    return (
        rg.tensor(arr.copy(), requires_grad=requires_grad),
        torch.tensor(arr.copy(), requires_grad=requires_grad),
    )


def _backward_both(out_r, out_t, seed: int):
    """Backpropagate the same random cotangent through both results."""
    g = np.random.default_rng(seed).standard_normal(tuple(out_t.shape)).astype(np.float32)
    (out_r * rg.tensor(g)).sum().backward()
    (out_t * torch.tensor(g)).sum().backward()


@st.composite
def broadcast_shapes(draw, n: int = 2):
    """``n`` shapes that broadcast together: suffixes of a common shape with some dims
    squeezed to 1 (ranks 0..4, sizes 1..4)."""
    full = draw(st.lists(st.integers(1, 4), min_size=0, max_size=4))
    shapes = []
    for _ in range(n):
        rank = draw(st.integers(0, len(full)))
        suffix = full[len(full) - rank :]
        ones = draw(st.lists(st.booleans(), min_size=rank, max_size=rank))
        shapes.append(tuple(1 if o else s for s, o in zip(suffix, ones)))
    return shapes


# ---------------------------------------------------------------------- binary broadcasting

BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / b, lambda a, b: a / b),
    "maximum": (rg.maximum, torch.maximum),
    "minimum": (rg.minimum, torch.minimum),
    "pow": (lambda a, b: a**b, lambda a, b: a**b),
    "pow_fn": (rg.pow, torch.pow),
}


def _operands(name: str, shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    if name.startswith("pow"):
        return rng.uniform(0.5, 2.0, shape).astype(np.float32)  # log(base) is real and finite
    if name == "div":
        return np.where(np.abs(x) < 0.3, np.sign(x) * 0.3 + x, x).astype(np.float32)
    return x


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(shapes=broadcast_shapes(2), seed=st.integers(0, 2**16))
def test_binary_broadcast_matches_torch(name, shapes, seed):
    rng = np.random.default_rng(seed)
    rg_op, torch_op = BINARY[name]
    (ar, at), (br, bt) = (_pair(_operands(name, s, rng)) for s in shapes)
    out_r, out_t = rg_op(ar, br), torch_op(at, bt)
    _close(out_r, out_t, what=f"{name}{shapes} forward")
    _backward_both(out_r, out_t, seed + 1)
    _close(ar.grad, at.grad, GRAD_RTOL, GRAD_ATOL, what=f"{name}{shapes} grad of input 0")
    _close(br.grad, bt.grad, GRAD_RTOL, GRAD_ATOL, what=f"{name}{shapes} grad of input 1")


@SETTINGS
@given(shapes=broadcast_shapes(3), seed=st.integers(0, 2**16))
def test_where_broadcast_matches_torch(shapes, seed):
    rng = np.random.default_rng(seed)
    cond = rng.random(shapes[0]) < 0.5
    (ar, at), (br, bt) = (_pair(rng.standard_normal(s)) for s in shapes[1:])
    out_r = rg.where(rg.tensor(cond), ar, br)
    out_t = torch.where(torch.tensor(cond), at, bt)
    _close(out_r, out_t, what=f"where{shapes} forward")
    _backward_both(out_r, out_t, seed + 1)
    _close(ar.grad, at.grad, GRAD_RTOL, GRAD_ATOL, what=f"where{shapes} grad of input")
    _close(br.grad, bt.grad, GRAD_RTOL, GRAD_ATOL, what=f"where{shapes} grad of other")


@SETTINGS
@given(
    shape=st.lists(st.integers(1, 4), max_size=3),
    scalar=st.sampled_from([2, 0.5, -1.5]),
    seed=st.integers(0, 2**16),
)
def test_python_scalar_operands_match_torch(shape, scalar, seed):
    # T18: python scalars on either side keep float32 and give torch's values and grads
    rng = np.random.default_rng(seed)
    xr, xt = _pair(rng.uniform(0.5, 2.0, shape))
    cases = [
        (lambda v: scalar + v),
        (lambda v: scalar - v),
        (lambda v: scalar / v),
        (lambda v: scalar**v) if scalar > 0 else (lambda v: v * scalar),
        (lambda v: v**scalar),
    ]
    out_r = sum(f(xr) for f in cases)
    out_t = sum(f(xt) for f in cases)
    _close(out_r, out_t, what="scalar ops forward")
    _backward_both(out_r, out_t, seed + 1)
    _close(xr.grad, xt.grad, GRAD_RTOL, GRAD_ATOL, what="scalar ops grad")


# ------------------------------------------------------------------------------ reductions


@st.composite
def reduction_case(draw, allow_tuple: bool = True, allow_none: bool = True):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    nd = len(shape)
    kinds = ["int"] + (["tuple"] if allow_tuple else []) + (["none"] if allow_none else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        dim = None
    elif kind == "int":
        dim = draw(st.integers(-nd, nd - 1))
    else:
        axes = draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
        dim = tuple(a - nd if draw(st.booleans()) else a for a in axes)  # mix negative dims
    return shape, dim, draw(st.booleans())


def _reduced_count(shape, dim) -> int:
    if dim is None:
        return int(np.prod(shape))
    dims = (dim,) if isinstance(dim, int) else dim
    return int(np.prod([shape[d] for d in dims]))


def _run_reduction(name, xr, xt, dim, keepdim):
    if dim is None:  # torch.prod has no dim=None overload
        return getattr(rg, name)(xr), getattr(torch, name)(xt)
    return (
        getattr(rg, name)(xr, dim=dim, keepdim=keepdim),
        getattr(torch, name)(xt, dim=dim, keepdim=keepdim),
    )


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "logsumexp"])
@SETTINGS
@given(case=reduction_case(), seed=st.integers(0, 2**16))
def test_reduction_matches_torch(name, case, seed):
    shape, dim, keepdim = case
    if name in ("amax", "amin", "logsumexp") and dim is None:
        dim = tuple(range(len(shape)))  # torch requires a dim for these
    xr, xt = _pair(np.random.default_rng(seed).standard_normal(shape))
    out_r, out_t = _run_reduction(name, xr, xt, dim, keepdim)
    what = f"{name}(shape={shape}, dim={dim}, keepdim={keepdim})"
    _close(out_r, out_t, what=what + " forward")
    _backward_both(out_r, out_t, seed + 1)
    _close(xr.grad, xt.grad, GRAD_RTOL, GRAD_ATOL, what=what + " grad")


@pytest.mark.parametrize("name", ["var", "std"])
@SETTINGS
@given(case=reduction_case(), correction=st.sampled_from([0, 1, 2]), seed=st.integers(0, 2**16))
def test_var_std_match_torch(name, case, correction, seed):
    shape, dim, keepdim = case
    if _reduced_count(shape, dim) <= correction:
        correction = 0  # n - correction <= 0 is a division by zero (nan/inf in both)
    xr, xt = _pair(np.random.default_rng(seed).standard_normal(shape))
    out_r = getattr(rg, name)(xr, dim=dim, keepdim=keepdim, correction=correction)
    out_t = getattr(torch, name)(xt, dim=dim, keepdim=keepdim, correction=correction)
    what = f"{name}(shape={shape}, dim={dim}, keepdim={keepdim}, correction={correction})"
    _close(out_r, out_t, 1e-4, 1e-5, what=what + " forward")
    _backward_both(out_r, out_t, seed + 1)
    _close(xr.grad, xt.grad, GRAD_RTOL, GRAD_ATOL, what=what + " grad")


@SETTINGS
@given(
    case=reduction_case(),
    p=st.sampled_from([2, 1, 3, float("inf"), "fro"]),
    seed=st.integers(0, 2**16),
)
def test_norm_matches_torch(case, p, seed):
    shape, dim, keepdim = case
    if p == "fro" and isinstance(dim, tuple) and len(dim) > 2:
        dim = dim[:2]  # the Frobenius norm takes at most two dims
    xr, xt = _pair(np.random.default_rng(seed).standard_normal(shape))
    out_r = rg.norm(xr, p=p, dim=dim, keepdim=keepdim)
    out_t = torch.norm(xt, p=p, dim=dim, keepdim=keepdim)
    what = f"norm(shape={shape}, p={p}, dim={dim}, keepdim={keepdim})"
    _close(out_r, out_t, 1e-5, 1e-5, what=what + " forward")
    _backward_both(out_r, out_t, seed + 1)
    _close(xr.grad, xt.grad, GRAD_RTOL, GRAD_ATOL, what=what + " grad")


@SETTINGS
@given(case=reduction_case(allow_tuple=False), seed=st.integers(0, 2**16))
def test_prod_matches_torch(case, seed):
    shape, dim, keepdim = case  # torch.prod takes one int dim (or none)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 1.5, shape) * rng.choice([-1, 1], shape)
    xr, xt = _pair(x)
    out_r, out_t = _run_reduction("prod", xr, xt, dim, keepdim)
    what = f"prod(shape={shape}, dim={dim}, keepdim={keepdim})"
    _close(out_r, out_t, 1e-5, 1e-6, what=what + " forward")
    _backward_both(out_r, out_t, seed + 1)
    _close(xr.grad, xt.grad, GRAD_RTOL, GRAD_ATOL, what=what + " grad")


@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=st.integers(0, 2**16))
def test_prod_with_zeros_matches_torch(shape, seed):
    # one or two exact zeros: the gradient is not prod/x there (that would be nan or inf)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[rng.integers(0, flat.size, size=rng.integers(1, 3))] = 0.0
    xr, xt = _pair(x)
    out_r, out_t = rg.prod(xr, dim=-1), torch.prod(xt, dim=-1)
    _close(out_r, out_t, what="prod with zeros forward")
    _backward_both(out_r, out_t, seed + 1)
    _close(xr.grad, xt.grad, GRAD_RTOL, GRAD_ATOL, what="prod with zeros grad")


@st.composite
def matmul_shapes(draw):
    """Operand shapes for matmul: 1-D or 2-D operands, or batched ones whose batch dims
    broadcast (including rank-extension and size-1 dims)."""
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    batch = draw(broadcast_shapes(2))
    left = [(k,), (n, k), (*batch[0], n, k)]
    right = [(k,), (k, m), (*batch[1], k, m)]
    return draw(st.sampled_from(left)), draw(st.sampled_from(right))


@SETTINGS
@given(shapes=matmul_shapes(), seed=st.integers(0, 2**16))
def test_matmul_broadcast_matches_torch(shapes, seed):
    rng = np.random.default_rng(seed)
    (ar, at), (br, bt) = (_pair(rng.standard_normal(s)) for s in shapes)
    out_r, out_t = rg.matmul(ar, br), torch.matmul(at, bt)
    _close(out_r, out_t, 1e-5, 1e-5, what=f"matmul{shapes} forward")
    _backward_both(out_r, out_t, seed + 1)
    _close(ar.grad, at.grad, GRAD_RTOL, GRAD_ATOL, what=f"matmul{shapes} grad of input")
    _close(br.grad, bt.grad, GRAD_RTOL, GRAD_ATOL, what=f"matmul{shapes} grad of other")


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "cumsum", "cumprod"])
@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data())
def test_dim_ops_match_torch(name, shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    seed = data.draw(st.integers(0, 2**16))
    x = np.random.default_rng(seed).standard_normal(shape)
    xr, xt = _pair(x * 3 if name.endswith("softmax") else x)
    out_r, out_t = getattr(rg, name)(xr, dim), getattr(torch, name)(xt, dim)
    what = f"{name}(shape={shape}, dim={dim})"
    _close(out_r, out_t, 1e-5, 1e-6, what=what + " forward")
    _backward_both(out_r, out_t, seed + 1)
    _close(xr.grad, xt.grad, GRAD_RTOL, GRAD_ATOL, what=what + " grad")


# -------------------------------------------------------------------------------- indexing


@st.composite
def index_case(draw):
    """A shape and an index tuple mixing slices (with steps), negative ints, None, one
    Ellipsis, int arrays with repeats and a bool mask."""
    shape = tuple(draw(st.lists(st.integers(2, 5), min_size=1, max_size=4)))
    rng_seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(rng_seed)
    items, dim, n_adv, n_none, used_ellipsis = [], 0, 0, 0, False
    # (every item after an Ellipsis must be drawn: they are aligned to the trailing dims)
    while dim < len(shape):
        size = shape[dim]
        kind = draw(st.sampled_from(["slice", "int", "none", "ellipsis", "array", "mask", "full"]))
        if kind == "slice":
            start = draw(st.one_of(st.none(), st.integers(-size, size)))
            stop = draw(st.one_of(st.none(), st.integers(-size, size)))
            step = draw(st.one_of(st.none(), st.integers(1, 3)))  # torch: positive steps only
            items.append(slice(start, stop, step))
            dim += 1
        elif kind == "int":
            items.append(draw(st.integers(-size, size - 1)))
            dim += 1
        elif kind == "none" and n_none < 2:
            n_none += 1
            items.append(None)
        elif kind == "ellipsis" and not used_ellipsis:
            used_ellipsis = True
            items.append(Ellipsis)
            dim = max(dim, len(shape) - draw(st.integers(0, len(shape) - dim)))
        elif kind == "array" and n_adv < 2:
            k = draw(st.integers(1, 4))
            idx = rng.integers(-size, size, size=k)
            if k > 1:
                idx[-1] = idx[0]  # a repeated index: its gradient must accumulate (T24)
            items.append(idx if n_adv == 0 else None)
            if n_adv == 1:  # a second array must broadcast with the first: give it 1 entry
                items[-1] = rng.integers(-size, size, size=1)
            n_adv += 1
            dim += 1
        elif kind == "mask" and n_adv == 0:
            mask = rng.random(size) < 0.6
            items.append(mask)
            n_adv = 2  # a mask plus another advanced index rarely broadcasts: keep it alone
            dim += 1
        else:
            items.append(slice(None))
            dim += 1
    return shape, tuple(items), rng_seed


def _torch_index(idx):
    out = []
    for it in idx:
        out.append(torch.from_numpy(it) if isinstance(it, np.ndarray) else it)
    return tuple(out)


def _rg_index(idx):
    return tuple(rg.tensor(it) if isinstance(it, np.ndarray) else it for it in idx)


@SETTINGS
@given(case=index_case())
def test_getitem_matches_torch(case):
    shape, idx, seed = case
    xr, xt = _pair(np.random.default_rng(seed).standard_normal(shape))
    out_t = xt[_torch_index(idx)]
    for form, rg_idx in (("numpy", idx), ("tensor", _rg_index(idx))):
        xr.grad = None
        out_r = xr[rg_idx]
        _close(out_r, out_t, what=f"x{list(shape)}[{idx}] ({form} indices) forward")
        if out_t.numel() == 0:
            continue
        g = np.random.default_rng(seed + 1).standard_normal(tuple(out_t.shape)).astype("f4")
        (out_r * rg.tensor(g)).sum().backward()
        gt = torch.autograd.grad((out_t * torch.tensor(g)).sum(), xt, retain_graph=True)[0]
        _close(xr.grad, gt, GRAD_RTOL, GRAD_ATOL, what=f"x{list(shape)}[{idx}] ({form}) grad")


@SETTINGS
@given(case=index_case())
def test_getitem_then_reuse_accumulates_like_torch(case):
    # the same element reached through indexing and directly: both paths accumulate
    shape, idx, seed = case
    xr, xt = _pair(np.random.default_rng(seed).standard_normal(shape))
    out_r, out_t = xr[idx], xt[_torch_index(idx)]
    loss_r = (out_r * out_r).sum() + (xr * 3.0).sum()
    loss_t = (out_t * out_t).sum() + (xt * 3.0).sum()
    _close(loss_r, loss_t, 1e-4, 1e-5, what=f"x{list(shape)}[{idx}] loss")
    loss_r.backward()
    loss_t.backward()
    _close(xr.grad, xt.grad, GRAD_RTOL, GRAD_ATOL, what=f"x{list(shape)}[{idx}] grad")


@SETTINGS
@given(case=index_case())
def test_setitem_matches_torch(case):
    # x[idx] = v on a non-leaf: result, grad of x (zero where overwritten) and grad of v
    shape, idx, seed = case
    rng = np.random.default_rng(seed)
    xr, xt = _pair(rng.standard_normal(shape))
    with torch.no_grad():
        target_shape = tuple(xt[_torch_index(idx)].shape)
    if 0 in target_shape:
        return
    has_repeats = any(
        isinstance(i, np.ndarray) and i.dtype != bool and len(np.unique(i % s)) < i.size
        for i, s in zip([i for i in idx if i is not None and i is not Ellipsis], shape)
    )
    v = rng.standard_normal(target_shape).astype(np.float32)
    if has_repeats:  # which duplicate write wins is unspecified in torch: write equal values
        v[...] = 0.5
    vr, vt = _pair(v)
    yr, yt = xr * 1.0, xt * 1.0
    yr[idx] = vr
    yt[_torch_index(idx)] = vt
    _close(yr, yt, what=f"x{list(shape)}[{idx}] = v result")
    _backward_both(yr, yt, seed + 1)
    _close(xr.grad, xt.grad, GRAD_RTOL, GRAD_ATOL, what=f"x{list(shape)}[{idx}] = v, grad x")
    if not has_repeats:
        _close(vr.grad, vt.grad, GRAD_RTOL, GRAD_ATOL, what=f"x{list(shape)}[{idx}] = v, grad v")


def test_int_and_array_index_follow_torch_order():
    # torch selects with the int first: x[0, :, [1, 2]] on (2, 3, 4) is (3, 2) (NumPy: (2, 3))
    x = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)
    xr, xt = _pair(x)
    cases = [(0, slice(None), [1, 2]), (slice(None), 0, slice(1, None), [1]), (0, None, [1])]
    for idx in cases:
        xr.grad = None
        tidx = tuple(torch.tensor(i) if isinstance(i, list) else i for i in idx)
        _close(xr[idx], xt[tidx], what=str(idx))
        xr[idx].sum().backward()
        _close(xr.grad, torch.autograd.grad(xt[tidx].sum(), xt)[0], what=f"{idx} grad")
    yr = rg.zeros(2, 3, 4)
    yr[0, :, [1, 2]] = rg.arange(6.0).reshape(3, 2)
    yt = torch.zeros(2, 3, 4)
    yt[0, :, [1, 2]] = torch.arange(6.0).reshape(3, 2)
    _close(yr, yt, what="setitem x[0, :, [1, 2]] = v")


# ------------------------------------------------------------------- small training runs


def _copy_params(model_r, model_t):
    sd = model_r.state_dict()
    with torch.no_grad():
        for name, p in model_t.state_dict().items():
            p.copy_(torch.from_numpy(np.array(sd[name].numpy(), copy=True)))


def _train_both(model_r, model_t, x, y, steps: int, lr: float, weight_decay: float):
    opt_r = rg.optim.Adam(model_r.parameters(), lr=lr, weight_decay=weight_decay)
    opt_t = torch.optim.Adam(model_t.parameters(), lr=lr, weight_decay=weight_decay)
    xr, xt = rg.tensor(x), torch.tensor(x)
    yr, yt = rg.tensor(y), torch.tensor(y)
    for step in range(steps):
        opt_r.zero_grad()
        opt_t.zero_grad()
        loss_r = rg.nn.functional.cross_entropy(model_r(xr), yr)
        loss_t = torch.nn.functional.cross_entropy(model_t(xt), yt)
        _close(loss_r, loss_t, 1e-4, 1e-5, what=f"loss at step {step}")
        loss_r.backward()
        loss_t.backward()
        for (n, pr), pt in zip(model_r.named_parameters(), model_t.parameters()):
            _close(pr.grad, pt.grad, 1e-3, 1e-5, what=f"grad of {n} at step {step}")
        opt_r.step()
        opt_t.step()
    for (n, pr), pt in zip(model_r.named_parameters(), model_t.parameters()):
        assert pr.dtype == rg.float32 and pr.grad.dtype == rg.float32  # T47
        _close(pr, pt, 1e-4, 1e-5, what=f"{n} after {steps} Adam steps")


TRAIN_SETTINGS = settings(SETTINGS, max_examples=4)


@TRAIN_SETTINGS
@given(
    hidden=st.lists(st.integers(2, 12), min_size=1, max_size=3),
    act=st.sampled_from(["ReLU", "Tanh", "GELU", "SiLU"]),
    n_in=st.integers(1, 6),
    n_cls=st.integers(2, 5),
    seed=st.integers(0, 2**16),
)
def test_mlp_adam_training_matches_torch(hidden, act, n_in, n_cls, seed):
    rng = np.random.default_rng(seed)
    rg.manual_seed(seed)
    sizes = [n_in, *hidden, n_cls]

    def build(nn):
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), getattr(nn, act)()]
        return nn.Sequential(*layers[:-1])

    model_r, model_t = build(rg.nn), build(torch.nn)
    _copy_params(model_r, model_t)
    x = rng.standard_normal((8, n_in)).astype(np.float32)
    y = rng.integers(0, n_cls, 8)
    _train_both(model_r, model_t, x, y, steps=5, lr=1e-2, weight_decay=0.01)


@TRAIN_SETTINGS
@given(
    channels=st.integers(1, 4),
    kernel=st.integers(1, 3),
    padding=st.integers(0, 1),
    stride=st.integers(1, 2),
    pool=st.sampled_from(["MaxPool2d", "AvgPool2d"]),
    seed=st.integers(0, 2**16),
)
def test_cnn_adam_training_matches_torch(channels, kernel, padding, stride, pool, seed):
    rng = np.random.default_rng(seed)
    rg.manual_seed(seed)

    def build(nn):
        # no conv bias before BatchNorm: its true gradient is 0, and Adam would amplify the
        # float32 rounding noise in it into full-size steps of arbitrary sign
        return nn.Sequential(
            nn.Conv2d(2, channels, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            getattr(nn, pool)(2),
            nn.Flatten(),
        )

    model_r, model_t = build(rg.nn), build(torch.nn)
    x = rng.standard_normal((4, 2, 8, 8)).astype(np.float32)
    with torch.no_grad():
        n_feat = model_t(torch.tensor(x)).shape[1]
    model_r.append(rg.nn.Linear(n_feat, 3))
    model_t.append(torch.nn.Linear(n_feat, 3))
    _copy_params(model_r, model_t)
    y = rng.integers(0, 3, 4)
    _train_both(model_r, model_t, x, y, steps=5, lr=1e-2, weight_decay=0.0)
    for name, b in model_t.state_dict().items():  # BatchNorm running stats follow torch too
        if "running" in name:
            _close(model_r.state_dict()[name], b, 1e-4, 1e-5, what=name)


# ------------------------------------------------------------------- dtype rules (forward)

DTYPES = ["float32", "float64", "float16", "int64", "int32", "uint8", "int8", "bool"]
BINARY_DTYPE_OPS = {
    "add": lambda m, a, b: a + b,
    "sub": lambda m, a, b: a - b,
    "mul": lambda m, a, b: a * b,
    "div": lambda m, a, b: a / b,
    "floordiv": lambda m, a, b: a // b,
    "pow": lambda m, a, b: a**b,
    "maximum": lambda m, a, b: m.maximum(a, b),
    "lt": lambda m, a, b: a < b,
}
# mismatches found by this check in retrograd/ops (being edited by another helper): reported
# there, xfailed here (not strict: a concurrent fix must not turn CI red)
DTYPE_KNOWN: dict = {}


def _run_dtype_case(lib, fn, da, db):
    a = lib.tensor(np.array([1, 2, 3]).astype(da))
    b = lib.tensor(np.array([1, 2, 1]).astype(db))
    try:
        return fn(rg if lib is rg else torch, a, b), None
    except Exception as e:  # noqa: BLE001  (the exception class is what is compared)
        return None, type(e)


@pytest.mark.parametrize("name", sorted(BINARY_DTYPE_OPS))
@pytest.mark.parametrize("da", DTYPES)
@pytest.mark.parametrize("db", DTYPES)
def test_binary_dtype_promotion_matches_torch(name, da, db, request):
    if (name, da, db) in DTYPE_KNOWN:
        reason = DTYPE_KNOWN[(name, da, db)]
        request.applymarker(pytest.mark.xfail(reason=reason, strict=False))
    fn = BINARY_DTYPE_OPS[name]
    want, t_err = _run_dtype_case(torch, fn, da, db)
    got, r_err = _run_dtype_case(rg, fn, da, db)
    assert (t_err is None) == (r_err is None), f"{name}({da}, {db}): torch {t_err}, rg {r_err}"
    if t_err is None:
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], (
            f"{name}({da}, {db}): dtype {got.dtype} != torch {want.dtype}"
        )
        np.testing.assert_allclose(
            got.numpy().astype(np.float64), want.numpy().astype(np.float64), rtol=1e-3
        )


REDUCE_KNOWN: dict = {}


@pytest.mark.parametrize("name", ["sum", "prod", "mean", "amax", "cumsum", "argmax", "max", "std"])
@pytest.mark.parametrize("dt", DTYPES)
def test_reduction_dtype_rules_match_torch(name, dt, request):
    if (name, dt) in REDUCE_KNOWN:
        request.applymarker(pytest.mark.xfail(reason=REDUCE_KNOWN[(name, dt)], strict=False))
    kw = {"dim": 0} if name in ("cumsum", "amax") else {}
    x = np.array([[1, 2], [3, 4]]).astype(dt)
    results = []
    for lib in (torch, rg):
        try:
            results.append((getattr(lib, name)(lib.tensor(x), **kw), None))
        except Exception as e:  # noqa: BLE001
            results.append((None, type(e)))
    (want, t_err), (got, r_err) = results
    assert (t_err is None) == (r_err is None), f"{name}({dt}): torch {t_err}, rg {r_err}"
    if t_err is None:
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], (
            f"{name}({dt}): dtype {got.dtype} != torch {want.dtype}"
        )


SCALAR_KNOWN: dict = {}


@pytest.mark.parametrize("name", ["add", "mul", "div", "floordiv", "pow"])
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("scalar", [2, 2.5, True], ids=["int", "float", "bool"])
def test_python_scalar_dtype_promotion_matches_torch(name, dt, scalar, request):
    if (name, dt, scalar) in SCALAR_KNOWN:  # (True != 2 and != 2.5: keys do not collide)
        reason = SCALAR_KNOWN[(name, dt, scalar)]
        request.applymarker(pytest.mark.xfail(reason=reason, strict=False))
    fn = BINARY_DTYPE_OPS[name]
    results = []
    for lib in (torch, rg):
        try:
            results.append((fn(lib, lib.tensor(np.array([1, 2, 3]).astype(dt)), scalar), None))
        except Exception as e:  # noqa: BLE001
            results.append((None, type(e)))
    (want, t_err), (got, r_err) = results
    assert (t_err is None) == (r_err is None), (
        f"{name}({dt}, {scalar!r}): torch {t_err}, rg {r_err}"
    )
    if t_err is None:
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], (
            f"{name}({dt}, {scalar!r}): dtype {got.dtype} != torch {want.dtype}"
        )
        np.testing.assert_allclose(
            got.numpy().astype(np.float64), want.numpy().astype(np.float64), rtol=1e-3
        )

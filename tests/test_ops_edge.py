"""Gradient conventions at edge values, checked exactly against PyTorch (float32)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import retrograd as rg


def both(torch, fn, *values, weights=None):
    """Run ``fn(m, *leaves)`` in retrograd and torch; return values and leaf grads of each."""
    arrays = [np.asarray(v, dtype=np.float32) for v in values]
    res = []
    for lib in (rg, torch):
        leaves = [
            rg.tensor(a, requires_grad=True) if lib is rg else torch.tensor(a, requires_grad=True)
            for a in arrays
        ]
        with warnings.catch_warnings():
            if lib is rg:
                warnings.simplefilter("error", RuntimeWarning)
            out = fn(lib, *leaves)
            w = np.ones(tuple(out.shape), np.float32) if weights is None else weights
            (out * (rg.tensor(w) if lib is rg else torch.tensor(w))).sum().backward()
        grads = [None if x.grad is None else x.grad.detach().numpy().copy() for x in leaves]
        res.append((out.detach().numpy().copy(), grads))
    return res


def assert_same(torch, fn, *values, exact=True, **kw):
    (ro, rgs), (to, tgs) = both(torch, fn, *values, **kw)
    cmp = np.testing.assert_array_equal if exact else _close
    cmp(ro, to)
    for a, b in zip(rgs, tgs):
        if b is None:
            assert a is None or not a.any()
        else:
            assert a is not None
            cmp(a, b)
    return ro, rgs


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_T36_sqrt_at_zero_grad_is_inf(torch):
    _, (g,) = assert_same(torch, lambda m, x: x.sqrt(), [0.0, 4.0])
    assert g[0] == np.inf and g[1] == 0.25


def test_T36_masked_sqrt_gives_nan_like_pytorch(torch):
    """PITFALLS recommends grad 0 for ``where(x>0, sqrt(x), 0)`` at 0; PyTorch gives NaN
    (0 * inf), and we follow PyTorch. The documented fix is the double-where idiom."""
    _, (g,) = assert_same(torch, lambda m, x: m.where(x > 0, x.sqrt(), 0.0), [0.0, 4.0])
    assert np.isnan(g[0])
    # double where: the untaken branch never sees 0
    _, (g,) = assert_same(
        torch,
        lambda m, x: m.where(x > 0, m.where(x > 0, x, 1.0).sqrt(), 0.0),
        [0.0, 4.0],
    )
    assert g[0] == 0.0 and g[1] == 0.25


def test_T38_abs_relu_at_zero(torch):
    for fn in (lambda m, x: x.abs(), lambda m, x: m.relu(x), lambda m, x: x.relu()):
        _, (g,) = assert_same(torch, fn, [0.0, -1.0, 2.0])
        assert g[0] == 0.0
    _, (g,) = assert_same(torch, lambda m, x: m.nn.functional.leaky_relu(x, 0.1), [0.0, -1.0])
    _, (g,) = assert_same(torch, lambda m, x: m.nn.functional.relu6(x), [0.0, 6.0, 3.0])
    _, (g,) = assert_same(torch, lambda m, x: m.nn.functional.hardtanh(x), [-1.0, 1.0, 0.0])
    _, (g,) = assert_same(torch, lambda m, x: m.clamp(x, -1.0, 1.0), [-1.0, 1.0, 2.0])
    assert list(g) == [1.0, 1.0, 0.0]  # clamp passes the gradient at the bounds


def test_T37_norm_at_zero(torch):
    _, (g,) = assert_same(torch, lambda m, x: x.norm(), [0.0, 0.0, 0.0])
    assert list(g) == [0.0, 0.0, 0.0]
    _, (g,) = assert_same(torch, lambda m, x: x.norm() ** 2, [0.0, 0.0, 0.0])
    assert list(g) == [0.0, 0.0, 0.0]
    assert_same(torch, lambda m, x: m.linalg.norm(x, dim=1), [[0.0, 0.0], [3.0, 4.0]])
    assert_same(torch, lambda m, x: m.linalg.vector_norm(x, 3), [0.0, 0.0], exact=False)


@pytest.mark.parametrize("p,expect", [(2, 0.0), (1, 1.0), (0.5, np.inf), (0, 0.0), (3, 0.0)])
def test_T40_pow_base_zero(torch, p, expect):
    _, (g,) = assert_same(torch, lambda m, x: x**p, [0.0])
    assert g[0] == expect


def test_T40_pow_exponent_grad_at_base_zero(torch):
    # base 0, exponent >= 0: the exponent's grad is 0, not 0 * log(0) = nan
    _, (gb, ge) = assert_same(torch, lambda m, b, e: b**e, [0.0, 0.0], [2.0, 0.0])
    assert list(ge) == [0.0, 0.0]
    # a negative base: the exponent grad is nan (log of a negative number), as in torch
    (_, (gb, ge)), _ = both(torch, lambda m, b, e: b**e, [-2.0], [2.0])
    assert np.isnan(ge[0]) and gb[0] == -4.0


def test_T40_pow_negative_base_integer_exponent(torch):
    _, (g,) = assert_same(torch, lambda m, x: x**2, [-2.0])
    assert g[0] == -4.0
    assert_same(torch, lambda m, x: x**3, [-2.0, 0.0])


def test_T39_amax_ties_share(torch):
    _, (g,) = assert_same(torch, lambda m, x: x.amax(), [0.6, 0.6, 0.3])
    assert list(g) == [0.5, 0.5, 0.0]
    _, (g,) = assert_same(torch, lambda m, x: x.max(), [0.6, 0.6, 0.3])
    assert g.sum() == 1.0
    assert_same(torch, lambda m, x: x.amax(1), [[1.0, 1.0, 0.0], [2.0, 2.0, 2.0]])
    assert_same(torch, lambda m, x: x.amin(0, keepdim=True), [[1.0, 1.0], [1.0, 0.0]])
    assert_same(torch, lambda m, x: x.min(), [1.0, 0.0, 0.0])


def test_T39_max_dim_routes_to_index(torch):
    (ro, (rg_g,)), (to, (t_g,)) = both(torch, lambda m, x: x.max(1).values, [[0.6, 0.6, 0.3]])
    np.testing.assert_array_equal(rg_g, t_g)
    assert rg_g.sum() == 1.0 and rg_g[0, 0] == 1.0
    x = rg.tensor([[0.6, 0.6, 0.3], [1.0, 2.0, 2.0]])
    tx = torch.tensor(x.numpy())
    assert x.max(1).indices.tolist() == tx.max(1).indices.tolist()
    assert x.min(1).indices.tolist() == tx.min(1).indices.tolist()


def test_T39_maximum_tie_and_stack(torch):
    _, (ga, gb) = assert_same(torch, lambda m, a, b: m.maximum(a, b), [1.0, 2.0], [1.0, 0.0])
    assert list(ga) == [0.5, 1.0] and list(gb) == [0.5, 0.0]
    assert_same(torch, lambda m, a, b: m.minimum(a, b), [1.0, 2.0], [1.0, 0.0])
    _, (g,) = assert_same(torch, lambda m, x: m.stack([x, x]).amax(0), [1.0, 2.0])
    assert list(g) == [1.0, 1.0]


def test_T39_max_nan(torch):
    x = rg.tensor([1.0, float("nan")])
    assert np.isnan(x.max().item())
    assert np.isnan(x.amax().item())
    v, i = rg.tensor([[1.0, float("nan"), 3.0]]).max(1)
    tv, ti = torch.tensor([[1.0, float("nan"), 3.0]]).max(1)
    assert np.isnan(v.item()) and i.item() == ti.item()
    assert np.isnan(rg.maximum(rg.tensor([1.0]), rg.tensor([float("nan")])).item())


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
def test_huge_logits(torch, op):
    """Logits of magnitude 1e4: finite, no RuntimeWarning, and torch's values and grads."""
    vals = [[1e4, 0.0, -1e4], [-1e4, -1e4, 5.0], [3.0, 1e4, 1e4]]
    w = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0], [1.0, 1.0, -1.0]], np.float32)
    if op == "logsumexp":
        fn = lambda m, x: m.logsumexp(x, -1)  # noqa: E731
        w = w[:, 0]
    else:
        fn = lambda m, x: getattr(m, op)(x, -1)  # noqa: E731
    (ro, (rg_g,)), (to, (t_g,)) = both(torch, fn, vals, weights=w)
    assert np.isfinite(ro).all() or op == "log_softmax"
    np.testing.assert_allclose(ro, to, rtol=1e-6, atol=1e-6)
    assert np.isfinite(rg_g).all()
    np.testing.assert_allclose(rg_g, t_g, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op", ["exp", "sigmoid", "softplus", "tanh", "silu", "logsigmoid"])
def test_large_magnitudes(torch, op):
    vals = [-1000.0, -80.0, -20.0, 0.0, 20.0, 80.0, 1000.0]
    if op == "exp":
        vals = [-1000.0, -100.0, 0.0, 80.0, 88.0, 89.0, 1000.0]  # overflow to inf like torch

    def fn(m, x):
        f = getattr(m, op, None) or getattr(m.nn.functional, op)
        return f(x)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (ro, (rg_g,)), (to, (t_g,)) = both(torch, fn, vals)
    np.testing.assert_allclose(ro, to, rtol=1e-6, atol=0)
    np.testing.assert_allclose(rg_g, t_g, rtol=1e-6, atol=1e-30)


def test_T30_masked_logits(torch):
    inf = float("inf")
    assert_same(torch, lambda m, x: m.log_softmax(x, -1)[..., :1], [[0.0, -inf]])
    (ro, (g,)), (to, (tg,)) = both(
        torch, lambda m, x: m.logsumexp(x, -1), [[-inf, -inf], [0.0, 0.0]]
    )
    np.testing.assert_array_equal(ro, to)
    np.testing.assert_array_equal(g[1], tg[1])
    # NOTE: a deliberate difference: PyTorch's gradient for an all -inf row is NaN; we give 0
    # (PITFALLS T30), so a fully masked row cannot poison the rest of the graph.
    assert ro[0] == -inf and list(g[0]) == [0.0, 0.0] and np.isnan(tg[0]).all()
    assert_same(torch, lambda m, x: m.softmax(x, -1), [[0.0, -inf, 1.0]], exact=False)


def test_T32_sigmoid_saturation():
    x = rg.tensor([-1000.0, 0.0, 1000.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x.sigmoid()
        y.sum().backward()
    assert y.tolist() == [0.0, 0.5, 1.0] and x.grad.tolist() == [0.0, 0.25, 0.0]


def test_T33_tanh_saturation():
    x = rg.tensor([1000.0, -1000.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x.tanh()
        y.sum().backward()
    assert y.tolist() == [1.0, -1.0] and x.grad.tolist() == [0.0, 0.0]


def test_T41_division_by_zero(torch):
    _, (g,) = assert_same(torch, lambda m, x: 1 / x, [0.0, 2.0])
    assert g[0] == -np.inf
    assert np.isnan((rg.tensor([0.0]) / rg.tensor([0.0])).item())
    r = rg.tensor([1, 0, -1]) / rg.tensor([0, 0, 0])
    t = torch.tensor([1, 0, -1]) / torch.tensor([0, 0, 0])
    assert r.dtype == rg.float32
    np.testing.assert_array_equal(r.numpy(), t.numpy())


def test_T42_log_at_and_below_zero(torch):
    _, (g,) = assert_same(torch, lambda m, x: x.log(), [0.0, 1.0])
    assert g[0] == np.inf
    assert np.isnan(rg.tensor([-1.0]).log().item())


def test_T45_std_var_constant_vector(torch):
    """std/var of a constant vector: gradient 0, as in PyTorch (no NaN)."""
    _, (g,) = assert_same(torch, lambda m, x: x.var(), [2.0, 2.0, 2.0])
    assert list(g) == [0.0, 0.0, 0.0]
    _, (g,) = assert_same(torch, lambda m, x: x.std(), [2.0, 2.0, 2.0])
    assert list(g) == [0.0, 0.0, 0.0]
    assert_same(torch, lambda m, x: x.std(1), [[2.0, 2.0], [1.0, 3.0]])


def test_zero_grad_rounding_ops(torch):
    for op in ("sign", "floor", "ceil", "round", "trunc"):
        _, (g,) = assert_same(torch, lambda m, x, op=op: getattr(x, op)(), [-1.5, 0.0, 0.5, 2.7])
        assert not g.any()


def test_cumprod_prod_with_zeros(torch):
    assert_same(torch, lambda m, x: x.prod(), [2.0, 0.0, 3.0])
    assert_same(torch, lambda m, x: x.prod(), [0.0, 0.0, 3.0])
    assert_same(torch, lambda m, x: x.cumprod(0), [2.0, 0.0, 3.0, 0.0], exact=False)
    assert_same(torch, lambda m, x: x.prod(1), [[0.0, 1.0], [2.0, 3.0]])


@pytest.mark.parametrize(
    ("eq", "shapes"),
    [
        ("ij,jk->ik", [(2, 1), (3, 4)]),
        ("bij,bjk->bik", [(1, 2, 3), (4, 3, 5)]),
        ("i,i->", [(1,), (5,)]),
        ("ij,ij->ij", [(3, 1), (1, 4)]),
        ("...ij,jk->...ik", [(2, 1, 3, 4), (4, 2)]),
        ("ij,jk", [(2, 3), (3, 1)]),
    ],
)
def test_einsum_size1_broadcast_grads_match_torch(eq, shapes, torch):
    rs = np.random.default_rng(0)
    arrs = [rs.standard_normal(s).astype(np.float32) for s in shapes]
    tt = [torch.tensor(a, requires_grad=True) for a in arrs]
    rr = [rg.tensor(a, requires_grad=True) for a in arrs]
    to, ro = torch.einsum(eq, *tt), rg.einsum(eq, *rr)
    (to * to).sum().backward()
    (ro * ro).sum().backward()
    np.testing.assert_allclose(ro.detach().numpy(), to.detach().numpy(), rtol=1e-5, atol=1e-6)
    for r, t in zip(rr, tt):
        assert r.grad.shape == r.shape
        np.testing.assert_allclose(r.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-5)
    dd = [rg.tensor(a.astype(np.float64), requires_grad=True) for a in arrs]
    assert rg.autograd.gradcheck(lambda *xs: rg.einsum(eq, *xs), dd)


def test_einsum_sublist_form_matches_torch(torch):
    rs = np.random.default_rng(1)
    a, b = rs.standard_normal((2, 3)), rs.standard_normal((3, 4))
    for args in ([0, 1], [1, 2], [0, 2]), ([Ellipsis, 1], [1, 2], None):
        sa, sb, out = args
        ra = [rg.tensor(a), sa, rg.tensor(b), sb] + ([out] if out else [])
        ta = [torch.tensor(a), sa, torch.tensor(b), sb] + ([out] if out else [])
        np.testing.assert_allclose(rg.einsum(*ra).numpy(), torch.einsum(*ta).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="subscript"):
        rg.einsum(rg.tensor(a), [0, -1])


@pytest.mark.parametrize("args", [(2,), ((2,),), ((2, 1),), (2, 1), (2, 1, 1), ((1, 2, 2),)])
def test_tile_method_and_function_forms_match_torch(args, torch):
    x = np.arange(6).reshape(2, 3)
    want = torch.tensor(x).tile(*args).numpy()
    np.testing.assert_array_equal(rg.tensor(x).tile(*args).numpy(), want)
    dims = args[0] if len(args) == 1 else args
    np.testing.assert_array_equal(
        rg.tile(rg.tensor(x), dims).numpy(),
        torch.tile(torch.tensor(x), dims if isinstance(dims, tuple) else (dims,)).numpy(),
    )


@pytest.mark.parametrize("shape", [(5, 3), (64, 32, 26, 26)])  # small, and the blocked path
@pytest.mark.parametrize("threaded", [False, True])
def test_relu_values_and_grads_match_torch_incl_nan(shape, threaded, torch, monkeypatch):
    from retrograd.ops import conv as conv_ops

    if threaded:  # share the blocks out among two Python threads whatever BLAS allows
        monkeypatch.setattr(conv_ops, "_mode", lambda: (2, True))
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    x.flat[:4] = [0.0, -0.0, np.nan, -np.nan]
    g = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    r, t = rg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yr, yt = r.relu(), t.relu()
    yr.backward(rg.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_array_equal(yr.detach().numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(r.grad.numpy(), t.grad.numpy())  # nan input: g passes
    r2 = rg.tensor(x, requires_grad=True)
    (gr,) = rg.autograd.grad(r2.relu(), r2, rg.tensor(g), create_graph=True)
    np.testing.assert_array_equal(gr.detach().numpy(), t.grad.numpy())

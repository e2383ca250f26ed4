"""rg.func transforms against torch.func."""

import numpy as np
import pytest

import retrograd as rg


def _f(lib):
    def f(x, y):
        return (lib.sin(x) * y).sum() + (x**3).sum()

    return f


def _vec(lib):
    def f(x):
        return lib.tanh(x) * x.sum()

    return f


@pytest.fixture
def xy(rng):
    return rng.standard_normal(4), rng.standard_normal(4)


def t64(torch, a):
    return torch.tensor(a, dtype=torch.float64)


def r64(a):
    return rg.tensor(a, dtype=rg.float64)


def test_grad_argnums_vs_torch(torch, xy):
    x, y = xy
    ours = rg.func.grad(_f(rg), argnums=(0, 1))(r64(x), r64(y))
    ref = torch.func.grad(_f(torch), argnums=(0, 1))(t64(torch, x), t64(torch, y))
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10)
        assert not a.requires_grad


def test_grad_and_value_has_aux(torch, xy):
    x, _ = xy

    def f(lib):
        return lambda t: ((t**2).sum(), t * 2)

    (g, (v, aux)) = rg.func.grad_and_value(f(rg), has_aux=True)(r64(x))
    (tg, (tv, taux)) = torch.func.grad_and_value(f(torch), has_aux=True)(t64(torch, x))
    np.testing.assert_allclose(g.numpy(), tg.numpy())
    np.testing.assert_allclose(v.item(), tv.item())
    np.testing.assert_allclose(aux.numpy(), taux.numpy())


@pytest.mark.parametrize("kind", ["jacrev", "jacfwd"])
def test_jacobians_vs_torch(torch, xy, kind):
    x, _ = xy
    ours = getattr(rg.func, kind)(_vec(rg))(r64(x))
    ref = getattr(torch.func, kind)(_vec(torch))(t64(torch, x))
    assert tuple(ours.shape) == tuple(ref.shape)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-10, atol=1e-12)


def test_hessian_vs_torch(torch, xy):
    x, y = xy

    def f(lib):
        return lambda t: (lib.sin(t) * t).sum() + (t.prod())

    ours = rg.func.hessian(f(rg))(r64(x))
    ref = torch.func.hessian(f(torch))(t64(torch, x))
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-9, atol=1e-12)


def test_vjp_and_jvp_vs_torch(torch, xy):
    x, v = xy
    out, fn = rg.func.vjp(_vec(rg), r64(x))
    tout, tfn = torch.func.vjp(_vec(torch), t64(torch, x))
    np.testing.assert_allclose(out.numpy(), tout.numpy())
    np.testing.assert_allclose(fn(r64(v))[0].numpy(), tfn(t64(torch, v))[0].numpy(), rtol=1e-10)
    o, j = rg.func.jvp(_vec(rg), (r64(x),), (r64(v),))
    to, tj = torch.func.jvp(_vec(torch), (t64(torch, x),), (t64(torch, v),))
    np.testing.assert_allclose(j.numpy(), tj.numpy(), rtol=1e-10)


def test_grad_requires_scalar():
    with pytest.raises(RuntimeError, match="scalar"):
        rg.func.grad(lambda t: t * 2)(rg.ones(3))


def test_unused_input_gives_zeros():
    g = rg.func.grad(lambda x, y: (x * 2).sum(), argnums=1)(rg.ones(2), rg.ones(3))
    assert g.tolist() == [0.0, 0.0, 0.0]


def test_vmap_matches_loop():
    x = rg.randn(5, 3)
    out = rg.func.vmap(lambda r: (r * r).sum())(x)
    np.testing.assert_allclose(out.numpy(), (x.numpy() ** 2).sum(1), rtol=1e-6)


def test_functional_call_uses_given_params():
    lin = rg.nn.Module()
    lin.w = rg.nn.Parameter(rg.ones(2))
    lin.forward = lambda x: (lin.w * x).sum()
    out = rg.func.functional_call(lin, {"w": rg.tensor([2.0, 3.0])}, (rg.ones(2),))
    assert out.item() == 5.0
    assert lin.w.tolist() == [1.0, 1.0]

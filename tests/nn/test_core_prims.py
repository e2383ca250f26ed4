"""gradcheck / gradgradcheck of the fused primitives and functional norms in float64."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg

F = rg.nn.functional


def _d(*shape, seed=0, scale=1.0):
    a = np.random.default_rng(seed).standard_normal(shape) * scale
    return rg.tensor(a, dtype=rg.float64, requires_grad=True)


@pytest.mark.parametrize("xshape", [(3, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck_gradgradcheck(xshape, bias):
    x, w = _d(*xshape), _d(5, 4, seed=1)
    args = (x, w, _d(5, seed=2)) if bias else (x, w)
    assert rg.autograd.gradcheck(F.linear, args)
    assert rg.autograd.gradgradcheck(F.linear, args)


def test_linear_errors():
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        F.linear(rg.randn(2, 3), rg.randn(4, 5))
    with pytest.raises(RuntimeError, match="dtype"):
        F.linear(rg.randn(2, 3), rg.randn(4, 3, dtype=rg.float64))


@pytest.mark.parametrize("shape,norm", [((3, 5), (5,)), ((2, 3, 4), (3, 4))])
@pytest.mark.parametrize("affine", ["none", "weight", "both"])
def test_layer_norm_gradcheck_gradgradcheck(shape, norm, affine):
    x = _d(*shape, scale=2.0)
    args = [x]
    if affine != "none":
        args.append(_d(*norm, seed=1))
    if affine == "both":
        args.append(_d(*norm, seed=2))

    def fn(x, *aff):
        return F.layer_norm(x, norm, *aff, eps=1e-3)

    assert rg.autograd.gradcheck(fn, tuple(args))
    assert rg.autograd.gradgradcheck(fn, tuple(args))


def test_layer_norm_bias_only_and_errors():
    x = _d(2, 3)
    b = _d(3, seed=1)
    assert rg.autograd.gradcheck(lambda x, b: F.layer_norm(x, (3,), None, b), (x, b))
    with pytest.raises(RuntimeError, match="normalized_shape"):
        F.layer_norm(rg.randn(2, 3), (4,))


def test_layer_norm_in_place_change_detected():
    w = rg.nn.Parameter(rg.ones(3))
    y = F.layer_norm(rg.randn(2, 3), (3,), w)
    with rg.no_grad():
        w.mul_(2)
    with pytest.raises(RuntimeError, match="inplace"):
        y.sum().backward()


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
def test_batch_norm_gradcheck(shape):
    x, w, b = _d(*shape, scale=2.0), _d(3, seed=1), _d(3, seed=2)

    def train(x, w, b):
        return F.batch_norm(x, None, None, w, b, training=True)

    rm, rv = rg.zeros(3, dtype=rg.float64), rg.ones(3, dtype=rg.float64) * 2

    def evaluate(x, w, b):
        return F.batch_norm(x, rm, rv, w, b, training=False)

    assert rg.autograd.gradcheck(train, (x, w, b))
    assert rg.autograd.gradgradcheck(train, (x, w, b))
    assert rg.autograd.gradcheck(evaluate, (x, w, b))


def test_group_rms_normalize_gradcheck():
    x = _d(2, 4, 3)
    assert rg.autograd.gradcheck(
        lambda x, w, b: F.group_norm(x, 2, w, b), (x, _d(4, seed=1), _d(4, seed=2))
    )
    assert rg.autograd.gradcheck(lambda x, w: F.rms_norm(x, (3,), w, eps=1e-6), (x, _d(3, seed=3)))
    assert rg.autograd.gradcheck(lambda x: F.normalize(x, dim=-1), (x,))


def test_functional_norms_match_torch(torch):
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    xr, xt = rg.tensor(x), torch.from_numpy(x)
    np.testing.assert_allclose(
        F.normalize(xr, p=1, dim=2).numpy(),
        torch.nn.functional.normalize(xt, p=1, dim=2).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        F.instance_norm(xr).numpy(),
        torch.nn.functional.instance_norm(xt).numpy(),
        rtol=1e-4,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        F.rms_norm(xr, (5,)).numpy(),
        torch.nn.functional.rms_norm(xt, (5,)).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        F.cosine_similarity(xr[0], xr[1]).numpy(),
        torch.nn.functional.cosine_similarity(xt[0], xt[1]).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        F.pairwise_distance(xr[0], xr[1]).numpy(),
        torch.nn.functional.pairwise_distance(xt[0], xt[1]).numpy(),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        F.pdist(xr[0]).numpy(), torch.nn.functional.pdist(xt[0]).numpy(), rtol=1e-5
    )


def test_functional_activation_extras_match_torch(torch):
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32) * 2
    xr, xt = rg.tensor(x), torch.from_numpy(x)
    tf = torch.nn.functional
    pairs = [
        (F.glu(xr, 1), tf.glu(xt, 1)),
        (F.threshold(xr, 0.5, -2.0), tf.threshold(xt, 0.5, -2.0)),
        (F.hardshrink(xr, 1.0), tf.hardshrink(xt, 1.0)),
        (F.softshrink(xr, 1.0), tf.softshrink(xt, 1.0)),
        (
            F.prelu(xr, rg.tensor([0.1, 0.2, 0.3, 0.4])),
            tf.prelu(xt, torch.tensor([0.1, 0.2, 0.3, 0.4])),
        ),
        (F.rrelu(xr, training=False), tf.rrelu(xt, training=False)),
    ]
    for a, b in pairs:
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="Halving"):
        F.glu(rg.randn(3, 3))

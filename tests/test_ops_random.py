"""Random shapes against PyTorch (float32): broadcasting pairs, and reductions with random
dims (int, negative, tuple, None), keepdim, empty and size-1 dimensions."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg

BINARY = {
    "add": lambda m, a, b: a + b,
    "sub": lambda m, a, b: a - b,
    "mul": lambda m, a, b: a * b,
    "div": lambda m, a, b: a / (b.abs() + 0.5),
    "pow": lambda m, a, b: (a.abs() + 0.5) ** b,
    "maximum": lambda m, a, b: m.maximum(a, b),
    "minimum": lambda m, a, b: m.minimum(a, b),
    "where": lambda m, a, b: m.where(a > b, a, b * 2),
    "lerp": lambda m, a, b: m.lerp(a, b, 0.25),
    "atan_like": lambda m, a, b: (a * b).tanh() + a.sigmoid() * b,
}

REDUCE = {
    "sum": lambda m, x, d, k: x.sum(d, keepdim=k) if d is not None else x.sum(),
    "mean": lambda m, x, d, k: x.mean(d, keepdim=k) if d is not None else x.mean(),
    "amax": lambda m, x, d, k: x.amax(d if d is not None else (), keepdim=k),
    "amin": lambda m, x, d, k: x.amin(d if d is not None else (), keepdim=k),
    "logsumexp": lambda m, x, d, k: m.logsumexp(
        x, d if d is not None else tuple(range(x.ndim)), keepdim=k
    ),
    "var": lambda m, x, d, k: x.var(d, keepdim=k, correction=0),
    "std": lambda m, x, d, k: x.std(d, keepdim=k, correction=0),
    "norm": lambda m, x, d, k: x.norm(dim=d, keepdim=k),
}


def _shape(rng, nd, allow_empty):
    lo = 0 if allow_empty else 1
    return tuple(int(s) for s in rng.integers(lo, 4, nd))


def _partner(rng, shape):
    """A shape broadcastable with ``shape``: some dims set to 1, some leading dims dropped."""
    s = [1 if rng.random() < 0.3 else n for n in shape]
    drop = int(rng.integers(0, len(s) + 1))
    return tuple(s[drop:])


def _run(torch, fn, arrays):
    res = []
    for lib in (rg, torch):
        xs = [
            rg.tensor(a, requires_grad=True) if lib is rg else torch.tensor(a, requires_grad=True)
            for a in arrays
        ]
        out = fn(lib, *xs)
        w = np.random.default_rng(5).standard_normal(tuple(out.shape)).astype(np.float32)
        (out * (rg.tensor(w) if lib is rg else torch.tensor(w))).sum().backward()
        res.append((out.detach().numpy(), [x.grad.numpy() for x in xs]))
    (ro, rgs), (to, tgs) = res
    assert ro.shape == to.shape and ro.dtype == to.dtype
    np.testing.assert_allclose(ro, to, rtol=1e-4, atol=1e-5)
    for a, b in zip(rgs, tgs):
        assert a.shape == b.shape and a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_random_broadcast(torch, name):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    for _ in range(8):
        shape = _shape(rng, int(rng.integers(0, 4)), allow_empty=True)
        other = _partner(rng, shape)
        if rng.random() < 0.5:
            shape, other = other, shape
        a = rng.standard_normal(shape).astype(np.float32)
        b = rng.standard_normal(other).astype(np.float32)
        _run(torch, BINARY[name], [a, b])


@pytest.mark.parametrize("name", sorted(REDUCE))
def test_reduction_random_dims(torch, name):
    rng = np.random.default_rng(sum(map(ord, name)))
    for _ in range(10):
        nd = int(rng.integers(1, 4))
        shape = _shape(rng, nd, allow_empty=False)
        kind = rng.integers(0, 4)
        if kind == 0:
            d = None
        elif kind == 1:
            d = int(rng.integers(0, nd))
        elif kind == 2:
            d = -int(rng.integers(1, nd + 1))
        else:
            k = int(rng.integers(1, nd + 1))
            d = tuple(
                int(v) - (nd if rng.random() < 0.5 else 0) for v in rng.choice(nd, k, replace=False)
            )
        keep = bool(rng.random() < 0.5)
        # distinct values: ties would make amax/amin's subgradient ambiguous
        x = (rng.permutation(int(np.prod(shape))) * 0.37 - 1.0).reshape(shape).astype(np.float32)
        if name in ("var", "std") and d is None:
            keep = False
        _run(torch, lambda m, t, d=d, k=keep: REDUCE[name](m, t, d, k), [x])


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "cumsum", "cumprod"])
def test_dim_ops_random(torch, op):
    rng = np.random.default_rng(sum(map(ord, op)))
    for _ in range(8):
        nd = int(rng.integers(1, 4))
        shape = _shape(rng, nd, allow_empty=True)
        d = int(rng.integers(-nd, nd))
        x = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        _run(torch, lambda m, t, d=d: getattr(t, op)(d), [x])


def test_empty_and_size_one_dims(torch):
    for shape in [(0,), (2, 0), (0, 3, 1), (1, 1), (1,)]:
        x = np.ones(shape, np.float32)
        _run(torch, lambda m, t: (t * 2).sum(-1, keepdim=True), [x])
        _run(torch, lambda m, t: t.exp().reshape(-1), [x])

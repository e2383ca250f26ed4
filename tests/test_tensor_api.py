"""Tensor API: factories, seeding, attributes, conversion methods and PyTorch's repr."""

from __future__ import annotations

import re

import numpy as np
import pytest

import retrograd as rg

FACTORIES = {
    "tensor_float": lambda m: m.tensor([[1.0, 2.0], [3.0, 4.0]]),
    "tensor_int": lambda m: m.tensor([1, 2, 3]),
    "tensor_bool": lambda m: m.tensor([True, False]),
    "tensor_scalar": lambda m: m.tensor(2.5),
    "tensor_dtype": lambda m: m.tensor([1, 2], dtype=m.float64),
    "as_tensor": lambda m: m.as_tensor([1.0, 2.0]),
    "zeros": lambda m: m.zeros(2, 3),
    "zeros_tuple": lambda m: m.zeros((2, 3), dtype=m.int64),
    "ones": lambda m: m.ones([3]),
    "zeros_size_kw": lambda m: m.zeros(size=(2, 3)),
    "ones_size_kw": lambda m: m.ones(size=[2], dtype=m.float64),
    "full": lambda m: m.full((2, 2), 1.5),
    "full_int": lambda m: m.full((2,), 7),
    "arange": lambda m: m.arange(5),
    "arange_float": lambda m: m.arange(1, 4, 0.5),
    "arange_neg_step": lambda m: m.arange(5, 0, -2),
    "linspace": lambda m: m.linspace(-1, 1, 5),
    "eye": lambda m: m.eye(3),
    "eye_rect": lambda m: m.eye(2, 3),
    "zeros_like": lambda m: m.zeros_like(m.ones(2, dtype=m.float64)),
    "ones_like": lambda m: m.ones_like(m.tensor([1, 2])),
    "full_like": lambda m: m.full_like(m.ones(2, 2), 3.0),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factories_match_torch(torch, name):
    r, t = FACTORIES[name](rg), FACTORIES[name](torch)
    assert tuple(r.shape) == tuple(t.shape)
    assert r.dtype.name == str(t.dtype).replace("torch.", "")
    np.testing.assert_allclose(r.numpy(), t.numpy(), rtol=1e-6)
    assert not r.requires_grad and r.is_leaf


def test_random_factories_shapes_dtypes_and_ranges():
    assert rg.empty(2, 3).shape == (2, 3)
    r = rg.rand(1000)
    assert r.dtype == rg.float32 and 0 <= r.min().item() and r.max().item() < 1
    n = rg.randn(4000, dtype=rg.float64)
    assert n.dtype == rg.float64 and abs(n.mean().item()) < 0.1 and abs(n.std().item() - 1) < 0.1
    i = rg.randint(2, 5, (100,))
    assert i.dtype == rg.int64 and i.min().item() >= 2 and i.max().item() <= 4
    assert rg.randint(3, (4, 2)).shape == (4, 2)
    x = rg.ones(2, 3, dtype=rg.float64)
    assert rg.rand_like(x).dtype == rg.float64 and rg.randn_like(x).shape == (2, 3)
    assert rg.zeros(2, requires_grad=True).requires_grad
    assert rg.rand(size=(2,)).shape == (2,) and rg.randn(size=(1, 2)).shape == (1, 2)
    with pytest.raises(RuntimeError, match="floating point"):
        rg.rand_like(rg.tensor([1, 2]))


def test_manual_seed_and_generator_determinism():
    rg.manual_seed(42)
    a = (rg.randn(3), rg.rand(2), rg.randint(0, 10, (4,)), rg.randperm(5))
    rg.manual_seed(42)
    b = (rg.randn(3), rg.rand(2), rg.randint(0, 10, (4,)), rg.randperm(5))
    for x, y in zip(a, b):
        assert x.tolist() == y.tolist()
    g1 = rg.Generator().manual_seed(7)
    g2 = rg.Generator().manual_seed(7)
    rg.manual_seed(0)
    u = rg.randn(5, generator=g1)
    rg.randn(3)  # the default generator does not disturb g2
    v = rg.randn(5, generator=g2)
    assert u.tolist() == v.tolist()
    assert rg.randn(5, generator=g1).tolist() != u.tolist()
    state = rg.get_rng_state()
    c = rg.rand(3)
    rg.set_rng_state(state)
    assert rg.rand(3).tolist() == c.tolist()


def test_from_numpy_is_zero_copy():
    a = np.zeros(3, np.float32)
    t = rg.from_numpy(a)
    a[0] = 5.0
    assert t[0].item() == 5.0
    t[1] = 2.0
    assert a[1] == 2.0
    assert t.numpy() is a
    assert rg.as_tensor(a).numpy() is a
    c = rg.tensor(a)
    a[2] = 9.0
    assert c[2].item() == 0.0  # tensor() copies
    with pytest.raises(TypeError):
        rg.from_numpy(np.array(["a"]))


def test_attributes():
    x = rg.ones(2, 3, requires_grad=True)
    assert x.shape == (2, 3) and x.shape == rg.Size([2, 3])
    assert x.dtype == rg.float32 and x.ndim == 2 and str(x.device) == "cpu"
    assert x.requires_grad and x.grad is None and x.grad_fn is None and x.is_leaf
    assert x.T.shape == (3, 2) and x.mT.shape == (3, 2)
    assert rg.ones(4, 2, 3).mT.shape == (4, 3, 2)
    y = x * 2
    assert y.grad_fn is not None and not y.is_leaf and y.grad_fn.name() == "MulBackward0"
    d = x.data
    assert not d.requires_grad and d.numpy() is x.detach().numpy()
    y.sum().backward()
    assert x.grad.shape == (2, 3)


def test_methods():
    x = rg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert x.size() == (2, 3) and x.size(-1) == 3 and x.size(0) == 2
    assert x.numel() == 6 and x.dim() == 2
    assert x.numpy().dtype == np.float32
    assert rg.tensor(2.5).item() == 2.5 and isinstance(rg.tensor(3).item(), int)
    assert x.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    c = x.clone()
    c[0, 0] = 9.0
    assert x[0, 0].item() == 1.0
    assert x.t().contiguous().is_contiguous() and not x.t().is_contiguous()
    assert x.contiguous() is x
    assert x.to(rg.float64).dtype == rg.float64 and x.to(rg.float32) is x
    assert x.to("cpu") is x and x.to(x) is x
    assert x.double().dtype == rg.float64 and x.long().dtype == rg.int64
    assert x.long().float().dtype == rg.float32
    w = rg.zeros(2).requires_grad_()
    assert w.requires_grad and w.requires_grad_(False) is w and not w.requires_grad
    h = rg.ones(2, requires_grad=True)
    y = h * 2
    y.retain_grad()
    handle = y.register_hook(lambda g: g * 3)
    y.sum().backward()
    assert y.grad.tolist() == [3.0, 3.0] and h.grad.tolist() == [6.0, 6.0]
    handle.remove()
    with pytest.raises(RuntimeError):
        rg.ones(2).register_hook(lambda g: g)


def test_detach_and_clone_graph_semantics():
    x = rg.ones(2, requires_grad=True)
    c = x.clone()
    assert c.requires_grad and c.grad_fn is not None
    (c * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]
    d = x.detach()
    assert not d.requires_grad and d.is_leaf


def test_array_protocol():
    x = rg.tensor([1.0, 2.0])
    a = np.asarray(x)
    assert a.dtype == np.float32 and a.tolist() == [1.0, 2.0]
    assert np.array(x, dtype=np.float64).dtype == np.float64
    assert np.add(np.ones(2, np.float32), np.asarray(x)).tolist() == [2.0, 3.0]
    assert float(rg.tensor([2.0])) == 2.0 and int(rg.tensor(3)) == 3
    assert [v.item() for v in x] == [1.0, 2.0] and len(x) == 2


REPRS = [
    lambda m: m.tensor([1.0, -2.5, 3.0]),
    lambda m: m.tensor([[1, -20], [3, 4]]),
    lambda m: m.tensor([1e-5, 1.0, 100.0]),
    lambda m: m.tensor([[1.5, -2.0], [300.25, 4.0]]),
    lambda m: m.tensor(3.5),
    lambda m: m.tensor(3),
    lambda m: m.tensor([True, False]),
    lambda m: m.tensor([1.0, 2.0], requires_grad=True),
    lambda m: m.tensor([1.0, 2.0], requires_grad=True) * 2,
    lambda m: m.tensor([1.0, 2.0], requires_grad=True).sum(),
    lambda m: m.tensor([[-1.0, 2.0], [3.0, -4.0]], dtype=m.float64, requires_grad=True),
    lambda m: m.tensor([1, 2], dtype=m.int32),
    lambda m: m.tensor([1.0, 2.0], dtype=m.float16),
    lambda m: m.zeros(0),
    lambda m: m.zeros(2, 0, dtype=m.float64),
    lambda m: m.tensor([float("nan"), float("inf"), -1.0]),
    lambda m: m.tensor([1e10, 1.0]),
    lambda m: m.tensor([-0.1, 0.25]),
    lambda m: m.tensor([123456.0, 1.5]),
    lambda m: m.arange(24.0).reshape(2, 3, 4) - 10,
    lambda m: m.tensor([1, 2], dtype=m.uint8),
    lambda m: m.tensor(-0.5, requires_grad=True),
    lambda m: m.arange(2000.0),
    lambda m: m.arange(30.0) / 7,
    lambda m: m.arange(3000).reshape(30, 100),
    lambda m: m.tensor([[True, False], [False, True]]),
    lambda m: m.tensor([1e8, 2e8]),
]


@pytest.mark.parametrize("i", range(len(REPRS)))
def test_repr_matches_torch(torch, i):
    r = repr(REPRS[i](rg)).replace("retrograd.", "torch.")
    t = re.sub(r" object at 0x[0-9a-f]+", "", repr(REPRS[i](torch)))
    assert r == t
    assert str(REPRS[i](rg)) == repr(REPRS[i](rg))


GRAD_FN_NAMES = {
    "mul": lambda m, x: x * x,
    "t": lambda m, x: x.t(),
    "transpose": lambda m, x: x.transpose(0, 1),
    "mT": lambda m, x: x.mT,
    "select": lambda m, x: x[0],
    "slice": lambda m, x: x[1:],
    "unsqueeze": lambda m, x: x.unsqueeze(0),
    "gather": lambda m, x: x.gather(0, m.tensor([[0, 1]])),
    "permute": lambda m, x: x.permute(1, 0),
    "sum": lambda m, x: x.sum(),
    "mean": lambda m, x: x.mean(),
    "pow": lambda m, x: x**2,
    "exp": lambda m, x: x.exp(),
    "clone": lambda m, x: x.clone(),
    "softmax": lambda m, x: x.softmax(0),
    "logsumexp": lambda m, x: x.logsumexp(0),
    "norm": lambda m, x: x.norm(),
    "cat": lambda m, x: m.cat([x, x]),
    "where": lambda m, x: m.where(x > 0, x, 0.0),
    "to_double": lambda m, x: x.double(),
}


@pytest.mark.parametrize("name", sorted(GRAD_FN_NAMES))
def test_grad_fn_names_match_torch(torch, name):
    f = GRAD_FN_NAMES[name]
    r = f(rg, rg.ones(3, 2, requires_grad=True)).grad_fn.name()
    t = type(f(torch, torch.ones(3, 2, requires_grad=True)).grad_fn).__name__
    assert r == t

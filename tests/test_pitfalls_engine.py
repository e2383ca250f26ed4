"""PITFALLS cases at the engine level (the rest live in test_autograd.py, test_ops_edge.py,
test_tensor_dtype.py and test_errors.py, each named by its T-number), and memory: graphs are
freed by reference counting, and training or evaluating does not leak."""

from __future__ import annotations

import gc
import tracemalloc
import warnings
import weakref

import numpy as np
import pytest

import retrograd as rg


def test_T01_leaf_reuse():
    x = rg.tensor(3.0, requires_grad=True)
    (x * x).backward()
    assert x.grad.item() == 6.0
    x = rg.tensor(2.0, requires_grad=True)
    (x * x * x).backward()
    assert x.grad.item() == 12.0


def test_T06_backward_twice():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    h = x * x
    h.retain_grad()
    loss = (h * 3).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()
    x.grad = None
    h = x * x
    h.retain_grad()
    loss = (h.exp()).sum()
    loss.backward(retain_graph=True)
    g1, h1 = x.grad.numpy().copy(), h.grad.numpy().copy()
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * g1)
    np.testing.assert_allclose(h.grad.numpy(), 2 * h1)  # accumulated once per pass, not more


def test_T09_T10_accumulation_and_reset():
    w = rg.tensor([1.0, -2.0], requires_grad=True)
    for _ in range(2):
        (w * w).sum().backward()
    assert w.grad.tolist() == [4.0, -8.0]
    w.grad = None  # zero_grad's default (set_to_none)
    (w * w).sum().backward()
    assert w.grad.tolist() == [2.0, -4.0]
    w.grad.zero_()  # zero_grad(set_to_none=False)
    (w * w).sum().backward()
    assert w.grad.tolist() == [2.0, -4.0]


def test_T20_scalar_times_matrix_grad_shape():
    for shape in [(), (1,), (1, 1)]:
        a = rg.ones(*shape, requires_grad=True)
        b = rg.arange(20.0).reshape(5, 4)
        (a * b).sum().backward()
        assert a.grad.shape == shape and a.grad.sum().item() == 190.0


def test_T21_rank_extending_broadcast():
    v = rg.ones(4, requires_grad=True)
    (v + rg.ones(3, 4)).sum().backward()
    assert v.grad.shape == (4,) and v.grad.tolist() == [3.0] * 4
    a = rg.randn(2, 1, 3, 4, requires_grad=True)
    m = rg.randn(2, 1, 3, 1, requires_grad=True)
    (a * m).sum().backward()
    assert m.grad.shape == (2, 1, 3, 1)
    np.testing.assert_allclose(m.grad.numpy(), a.detach().numpy().sum(-1, keepdims=True), rtol=1e-5)


def test_T22_keepdim_reductions():
    x = rg.randn(3, 4, requires_grad=True)
    for keep in (True, False):
        x.grad = None
        x.sum(1, keepdim=keep).sum().backward()
        assert x.grad.shape == (3, 4) and (x.grad == 1).all()
    x.grad = None
    x.mean().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full((3, 4), 1 / 12), rtol=1e-6)


def test_T23_matmul_grad_shapes_and_fd():
    a = rg.randn(2, 3, dtype=rg.float64, requires_grad=True)
    b = rg.randn(3, 4, dtype=rg.float64, requires_grad=True)
    (a @ b).sum().backward()
    assert a.grad.shape == (2, 3) and b.grad.shape == (3, 4)
    z = rg.randn(5, 2, 3, dtype=rg.float64, requires_grad=True)
    assert rg.autograd.gradcheck(lambda z, b: z @ b, (z, b))
    b.grad = None
    (z @ b).sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), z.detach().numpy().sum((0, 1))[:, None].repeat(4, 1))


def test_T28_huge_logits_through_log_softmax():
    """The CE path (log_softmax, then pick) is exact at |logits| = 1000; log(softmax) is not."""
    logits = rg.tensor([1000.0, 0.0, -1000.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = -rg.log_softmax(logits, 0)[0]
        loss.backward()
    assert loss.item() == 0.0 and logits.grad.tolist() == [0.0, 0.0, 0.0]
    logits.grad = None
    loss = -rg.log_softmax(logits, 0)[2]
    loss.backward()
    assert loss.item() == 2000.0 and logits.grad.tolist() == [1.0, 0.0, -1.0]


def test_T29_log_softmax_versus_log_of_softmax():
    x = rg.tensor([0.0, 50.0, -50.0], requires_grad=True)
    (-rg.log_softmax(x, 0)[2]).backward()
    assert rg.isfinite(x.grad).all()
    assert rg.isinf(rg.softmax(rg.tensor([0.0, 200.0, -200.0]), 0).log()).any()  # the pitfall


def test_T35_exp_overflow_is_inf():
    x = rg.tensor([1000.0], dtype=rg.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x.exp()
    assert y.item() == np.inf
    y.sum().backward()
    assert x.grad.item() == np.inf


def test_T50_gradcheck_precision():
    x = rg.randn(4, dtype=rg.float64, requires_grad=True)
    assert rg.autograd.gradcheck(lambda t: (t.sin() * t).exp(), (x,))
    assert rg.autograd.gradgradcheck(lambda t: (t.sin() * t).exp(), (x,))
    x32 = rg.randn(4, requires_grad=True)
    with pytest.warns(UserWarning, match="double precision|float64"):
        rg.autograd.gradcheck(lambda t: t * 2, (x32,), eps=1e-3, atol=1e-2)
    # a wrong vjp is caught
    bad = rg.randn(3, dtype=rg.float64, requires_grad=True)

    class Wrong(rg.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * t

        @staticmethod
        def backward(ctx, g):
            return g

    assert not rg.autograd.gradcheck(Wrong.apply, (bad,), raise_exception=False)
    with pytest.raises(RuntimeError, match="Jacobian mismatch"):
        rg.autograd.gradcheck(Wrong.apply, (bad,))


# --- memory ------------------------------------------------------------------------------------


def test_T67_graph_freed_after_backward():
    x = rg.randn(4, requires_grad=True)
    h = x * 2
    out = h.exp()
    loss = out.sum()
    refs = [weakref.ref(h), weakref.ref(out), weakref.ref(loss.grad_fn), weakref.ref(out.grad_fn)]
    del h, out
    loss.backward()
    del loss
    assert all(r() is None for r in refs)
    assert x.grad is not None


def _mlp_params(seed=0):
    g = rg.Generator().manual_seed(seed)
    return [
        rg.randn(8, 16, generator=g).mul_(0.3).requires_grad_(),
        rg.zeros(16, requires_grad=True),
        rg.randn(16, 3, generator=g).mul_(0.3).requires_grad_(),
        rg.zeros(3, requires_grad=True),
    ]


def _step(params, x, y, lr=0.05):
    w1, b1, w2, b2 = params
    h = (x @ w1 + b1).tanh()
    logits = h @ w2 + b2
    loss = -rg.log_softmax(logits, -1)[rg.arange(x.shape[0]), y].mean()
    for p in params:
        p.grad = None
    loss.backward()
    with rg.no_grad():
        for p in params:
            p -= lr * p.grad
    return loss


def test_T70_no_reference_cycles():
    params = _mlp_params()
    x, y = rg.randn(5, 8), rg.randint(0, 3, (5,))
    gc.collect()
    gc.disable()
    try:
        loss = _step(params, x, y)
        refs = [weakref.ref(loss), weakref.ref(loss.grad_fn)]
        node = loss.grad_fn
        while node is not None and node.next:
            nxt = [e[0] for e in node.next if e is not None and isinstance(e[0], rg.autograd.Node)]
            refs.append(weakref.ref(node))
            node = nxt[0] if nxt else None
        del loss, node, nxt
        dead = [r() is None for r in refs]
    finally:
        gc.enable()
    assert all(dead), f"{dead.count(False)} graph objects survived without the cycle collector"


@pytest.mark.slow
def test_T68_T69_no_leak_over_1000_steps():
    params = _mlp_params()
    x, y = rg.randn(16, 8), rg.randint(0, 3, (16,))
    total = 0.0
    for _ in range(50):  # warm-up
        total += _step(params, x, y).item()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        losses = []
        for i in range(1000):
            loss = _step(params, x, y)
            total += loss.item()  # T69: log with .item(), never the tensor
            if i % 100 == 0:
                losses.append(weakref.ref(loss.grad_fn))
        del loss
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 1_000_000, f"grew by {after - before} bytes"
    assert all(r() is None for r in losses)  # the graph count stays constant
    assert np.isfinite(total)


def test_T69_accumulating_the_tensor_keeps_graphs_alive():
    """The pitfall itself: ``total += loss`` (a Tensor) keeps every step's graph alive."""
    params = _mlp_params()
    x = rg.randn(4, 8)
    w1, b1, w2, b2 = params
    total = 0
    refs = []
    for _ in range(3):
        loss = ((x @ w1 + b1).tanh() @ w2 + b2).square().mean()
        refs.append(weakref.ref(loss.grad_fn))
        total = total + loss
    del loss
    assert all(r() is not None for r in refs)
    del total
    assert all(r() is None for r in refs)


def test_T71_eval_under_no_grad_is_flat():
    params = _mlp_params()
    w1, b1, w2, b2 = params
    x = rg.randn(32, 8)
    with rg.no_grad():
        for _ in range(20):
            (x @ w1 + b1).tanh() @ w2 + b2
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(300):
                out = (x @ w1 + b1).tanh() @ w2 + b2
                assert out.grad_fn is None and not out.requires_grad
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
    assert after - before < 200_000

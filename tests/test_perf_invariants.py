"""Invariants that keep retrograd fast and lean (no timing assertions here: see benchmarks/).

* after one training step of each benchmark model, every parameter, gradient and optimizer
  state array is float32 (no silent float64);
* ops on tensors that don't require grad (or under ``no_grad``) record no graph node;
* the arrays a node keeps for its vjp are released by backward (unless ``retain_graph``);
* gradient accumulation never writes into an array another gradient still needs.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import retrograd as rg
from benchmarks import WORKLOADS
from retrograd.autograd.node import Node

F = rg.nn.functional


def _one_step(name):
    import importlib

    mod = importlib.import_module(f"benchmarks.{name}")
    step, model, opt = mod.build(rg, mod.make_params(), mod.make_data())
    loss = step()
    return loss, model, opt


def _state_arrays(opt):
    for st in opt.state.values():
        for k, v in st.items():
            if isinstance(v, rg.Tensor):
                yield k, v._data
            elif isinstance(v, np.ndarray):
                yield k, v


@pytest.mark.parametrize("name", WORKLOADS)
def test_benchmark_step_stays_float32(name):
    loss, model, opt = _one_step(name)
    assert np.isfinite(loss)
    params = list(model.parameters())
    assert params
    for p in params:
        assert p._data.dtype == np.float32, p.shape
        assert p.grad is not None, p.shape
        assert p.grad._data.dtype == np.float32, p.shape
        assert p.grad.shape == p.shape
    states = list(_state_arrays(opt))
    if name in ("mlp", "cnn", "gpt"):  # Adam / AdamW keep exp_avg, exp_avg_sq, step
        assert len(states) >= 2 * len(params)
    for key, arr in states:
        assert arr.dtype == np.float32, key


def _ops(x, w, idx):
    """A spread of ops (elementwise, reductions, views, fused nn ops)."""
    yield x + 1.0
    yield x * x
    yield (x - 2) / 3
    yield x @ w
    yield x.sum()
    yield x.mean(1)
    yield x.reshape(-1)
    yield x.t()
    yield x[1:]
    yield rg.relu(x)
    yield F.softmax(x, dim=-1)
    yield F.linear(x, w.t(), None)
    yield F.layer_norm(x, (4,))
    yield F.cross_entropy(x, idx)
    yield F.gelu(x, approximate="tanh")


def _inputs(requires_grad):
    rng = np.random.default_rng(0)
    x = rg.tensor(rng.standard_normal((3, 4), dtype=np.float32), requires_grad=requires_grad)
    w = rg.tensor(rng.standard_normal((4, 4), dtype=np.float32), requires_grad=requires_grad)
    return x, w, rg.tensor([0, 1, 3])


def test_no_graph_without_requires_grad():
    for out in _ops(*_inputs(False)):
        assert out.grad_fn is None and not out.requires_grad


def test_no_graph_under_no_grad():
    x, w, idx = _inputs(True)
    with rg.no_grad():
        for out in _ops(x, w, idx):
            assert out.grad_fn is None and not out.requires_grad


def test_graph_recorded_when_needed():
    # the counterpart of the two tests above: the same ops do record with grad
    for out in _ops(*_inputs(True)):
        assert isinstance(out.grad_fn, Node)


def _graph_nodes(t):
    seen, stack = [], [t.grad_fn]
    while stack:
        n = stack.pop()
        if n is None or not isinstance(n, Node) or any(n is s for s in seen):
            continue
        seen.append(n)
        stack.extend(e[0] for e in n.next if e is not None)
    return seen


def _held_arrays(node):
    names = {
        n
        for k in type(node).__mro__
        for n in (
            (k.__dict__.get("__slots__", ()),)
            if isinstance(k.__dict__.get("__slots__"), str)
            else k.__dict__.get("__slots__", ())
        )
        if k is not Node and n not in ("__dict__", "__weakref__")
    }
    held = [getattr(node, s, None) for s in names]
    held += [node.out_data]
    held += [t for t in (node.saved or ())]
    return [h for h in held if isinstance(h, np.ndarray | rg.Tensor)]


@pytest.mark.parametrize("name", ["mlp", "gpt", "deep", "tiny"])
def test_saved_arrays_released_after_backward(name):
    import importlib

    mod = importlib.import_module(f"benchmarks.{name}")
    step, model, opt = mod.build(rg, mod.make_params(), mod.make_data())
    loss = _loss_of(name, mod, model)  # forward + loss only, so the graph can be inspected
    nodes = _graph_nodes(loss)
    assert nodes
    assert any(_held_arrays(n) for n in nodes)  # the forward did keep what the vjps need
    loss.backward()
    for n in nodes:
        assert n.freed
        assert not _held_arrays(n), (n.name(), _held_arrays(n))


def _loss_of(name, mod, model):
    data = mod.make_data()
    if name == "gpt":
        idx, tgt = rg.from_numpy(data["idx"]), rg.from_numpy(data["targets"])
        return F.cross_entropy(model(idx).view(-1, mod.VOCAB), tgt.view(-1))
    x, y = rg.from_numpy(data["x"]), rg.from_numpy(data["y"])
    if name == "tiny":
        return F.relu(1 - y * model(x)).mean()
    return F.cross_entropy(model(x), y)


def test_retain_graph_keeps_saved_arrays():
    x = rg.randn(4, 3, requires_grad=True)
    y = F.layer_norm(x, (3,)).tanh().sum()
    nodes = _graph_nodes(y)
    y.backward(retain_graph=True)
    assert all(not n.freed for n in nodes)
    g1 = x.grad.clone()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * g1.numpy(), rtol=1e-6)


def test_graph_freed_with_loss():
    x = rg.randn(8, 8, requires_grad=True)
    loss = (x.relu() * 2).sum()
    ref = weakref.ref(loss.grad_fn)
    loss.backward()
    del loss
    gc.collect()
    assert ref() is None


def test_accumulation_never_corrupts_a_pending_gradient():
    # a.grad takes the array that Add also hands to a pending vjp; a later in-place
    # accumulation into a.grad must not change it (d/da of 13*a is 13).
    def grad(lib, order):
        a = lib.tensor([1.0, 2.0], requires_grad=True)
        e = a * 5.0
        b = a * 7.0
        s = a + b
        loss = (e + s) if order else (s + e)
        loss.backward(lib.tensor([1.0, 1.0]))
        return np.asarray(a.grad.tolist())

    for order in (0, 1):
        np.testing.assert_allclose(grad(rg, order), [13.0, 13.0])


def test_gradient_seed_is_not_aliased_into_grad():
    a = rg.tensor([1.0, 2.0], requires_grad=True)
    seed = rg.tensor([1.0, 1.0])
    (a + 0.0).backward(seed)
    a.grad.mul_(3.0)
    np.testing.assert_array_equal(seed.numpy(), [1.0, 1.0])


def test_shared_gradient_not_stored_twice():
    a = rg.tensor([1.0], requires_grad=True)
    b = rg.tensor([2.0], requires_grad=True)
    (a + b).sum().backward()
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
    a.grad.add_(1.0)
    np.testing.assert_array_equal(b.grad.numpy(), [1.0])


def test_scalar_operand_keeps_float32():
    x = rg.ones(3, requires_grad=True)
    y = (x * 1.0001 + 0.5 - 2) / 3.0
    assert y.dtype == rg.float32
    y.sum().backward()
    assert x.grad.dtype == rg.float32
    assert (2.0 * x).dtype == rg.float32 and (1 - x).dtype == rg.float32


# --- per-op fast paths (issue #2's overhead work): each must keep the exact semantics ---


def test_shared_scalar_constants_keep_signed_zero_and_nan():
    x = rg.tensor([-0.0, 1.0, -2.0])
    # -0.0 + 0.0 is +0.0 but -0.0 + -0.0 is -0.0: the two constants must not be shared
    assert np.signbit((x + -0.0)._data[0])
    assert not np.signbit((x + 0.0)._data[0])
    assert np.isnan((x * float("nan"))._data).all()
    for _ in range(3):  # found in the cache from the second call on
        np.testing.assert_array_equal((x * 2.5)._data, np.array([-0.0, 2.5, -5.0], np.float32))
    assert (x * 2.5).dtype == rg.float32 and (x.double() * 2.5).dtype == rg.float64


def test_shared_scalar_constant_cannot_be_changed_by_an_op():
    x = rg.ones(3)
    y = x * 3.0
    x.add_(3.0)
    x.mul_(3.0)  # in-place ops write into x, never into the shared 0-d operand
    np.testing.assert_array_equal((rg.ones(2) * 3.0)._data, [3.0, 3.0])
    np.testing.assert_array_equal(x._data, [12.0, 12.0, 12.0])
    np.testing.assert_array_equal(y._data, [3.0, 3.0, 3.0])


def test_many_distinct_scalars_do_not_grow_the_cache_without_bound():
    from retrograd.ops import _util

    x = rg.ones(2)
    for i in range(2000):
        x * (i + 0.5)
    assert all(len(c) <= 256 for c in _util._CONSTANTS.values())


def test_quiet_ops_warn_nothing_and_propagate_inf_nan():
    import warnings

    a = rg.tensor([0.0, 1.0, -1.0, 3e38], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = a * float("inf")
        z = a / 0.0
        w = (a * 10.0).exp().log()
        (y.sum() + z.sum() + w.sum()).backward()
    assert np.isnan(y._data[0]) and np.isinf(z._data[1]) and np.isinf(w._data[3])


def test_version_check_without_a_versions_tuple():
    # a node that saved tensors at version 0 keeps no tuple of versions; a later in-place
    # write must still be caught, and a write before the save must not be
    a = rg.ones(3, requires_grad=True)
    b = a * 1.0
    c = b * b
    b.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        c.sum().backward()
    d = a * 1.0
    d.mul_(2.0)  # version 1 before the save: fine
    e = d * d
    e.sum().backward()
    np.testing.assert_allclose(a.grad._data, [8.0, 8.0, 8.0])


def test_node_defaults_and_freed_flag():
    a = rg.ones(2, requires_grad=True)
    y = a * 2.0
    fn = y.grad_fn
    assert fn.pre_hooks is None and fn.retained is None and fn.trace is None
    assert not fn.freed
    y.sum().backward()
    assert fn.freed
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()


def test_views_registered_on_a_long_lived_base_do_not_accumulate():
    # x.T / x[i] on a parameter every step: the base's list of weak view references is pruned
    w = rg.ones(4, 4, requires_grad=True)
    for _ in range(1000):
        _ = w.T, w[0]
    assert len(w.__dict__["_views"]) < 64
    keep = [w.T for _ in range(100)]  # live views all stay registered
    assert sum(r() is not None for r in w.__dict__["_views"]) >= 100
    with rg.no_grad():
        w.mul_(2.0)  # an in-place write to the base reaches its live views
    assert all(float(v[0, 0]) == 2.0 for v in keep)

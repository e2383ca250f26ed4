"""Reuse of large freed arrays (retrograd/autograd/recycle.py): only arrays nothing else can
see are reused, results are unchanged, and user-visible arrays are never overwritten."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg
from retrograd.autograd import recycle

BIG = (64, 32, 26, 26)  # 5.5 MB of float32: above recycle.MIN_BYTES


@pytest.fixture(autouse=True)
def _fresh_pool():
    recycle.clear()
    yield
    recycle.clear()


def test_give_keeps_only_unreferenced_large_arrays():
    a = np.ones(BIG, np.float32)
    keep = a[0]  # a view holds a reference
    recycle.give(a)
    assert recycle.pool_bytes() == 0
    del keep
    recycle.give(a)
    nbytes, a_id = a.nbytes, id(a)
    del a  # (the caller drops the reference it gave)
    assert recycle.pool_bytes() == nbytes and recycle.idle_bytes() == nbytes
    b = recycle.empty(BIG, np.float32)
    assert id(b.base) == a_id and recycle.idle_bytes() == 0  # handed out: no longer idle
    del b
    assert recycle.idle_bytes() == nbytes  # idle once no array refers to it
    small = np.ones(10, np.float32)
    recycle.give(small)  # small arrays come cheaply from malloc: not kept
    assert recycle.pool_bytes() == nbytes
    user = np.ones(BIG, np.float32)
    alias = user  # noqa: F841 - a second name is a second reference
    recycle.give(user)
    assert recycle.pool_bytes() == nbytes


def test_pool_is_bounded():
    for _ in range(3):
        recycle.give(np.empty((recycle.CAP_BYTES // 2 // 4 + 1,), np.float32))
    assert recycle.pool_bytes() <= recycle.CAP_BYTES


def _train(enabled, monkeypatch, steps=3):
    monkeypatch.setattr(recycle, "_ENABLED", enabled)
    recycle.clear()
    rg.manual_seed(0)
    net = rg.nn.Sequential(
        rg.nn.Conv2d(1, 32, 3),
        rg.nn.ReLU(),
        rg.nn.Conv2d(32, 64, 3),
        rg.nn.ReLU(),
        rg.nn.MaxPool2d(2),
        rg.nn.Flatten(),
        rg.nn.Linear(64 * 12 * 12, 10),
    )
    opt = rg.optim.Adam(net.parameters(), lr=1e-3)
    x = rg.randn(64, 1, 28, 28)
    y = rg.randint(0, 10, (64,))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = rg.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [p.detach().numpy().copy() for p in net.parameters()]


def test_training_is_identical_with_and_without_reuse(monkeypatch):
    from retrograd.ops import conv as conv_ops

    # one fixed conv schedule for both runs: whether blocks go to threads depends on the
    # threads alive at that moment, and the summation order with it
    monkeypatch.setattr(conv_ops, "_mode", lambda: (1, False))
    l_on, p_on = _train(True, monkeypatch)
    l_off, p_off = _train(False, monkeypatch)
    assert l_on == l_off
    for a, b in zip(p_on, p_off):
        np.testing.assert_array_equal(a, b)


def test_arrays_the_user_holds_are_never_reused(monkeypatch):
    monkeypatch.setattr(recycle, "_ENABLED", True)
    x = rg.randn(*BIG, requires_grad=True)
    h = x.relu()  # kept by the user
    view = h[0]  # and a view of it
    g = rg.ones(*BIG)  # the user's seed gradient
    (h * 2.0).relu().sum().backward()
    before = (h.detach().numpy().copy(), view.detach().numpy().copy())
    seed = g.numpy().copy()
    for _ in range(3):  # ops that would take freed arrays of this shape
        y = rg.randn(*BIG, requires_grad=True).relu()
        y.backward(g)
    np.testing.assert_array_equal(h.detach().numpy(), before[0])
    np.testing.assert_array_equal(view.detach().numpy(), before[1])
    np.testing.assert_array_equal(g.numpy(), seed)  # a user's gradient is not overwritten


def test_hooked_and_retained_gradients_are_not_overwritten(monkeypatch):
    monkeypatch.setattr(recycle, "_ENABLED", True)
    x = rg.randn(*BIG, requires_grad=True)
    h = x * 3.0
    h.retain_grad()
    seen = []
    h.register_hook(lambda g: seen.append(g))
    h.relu().sum().backward()
    want = (h.detach().numpy() > 0).astype(np.float32)
    np.testing.assert_array_equal(h.grad.numpy(), want)
    np.testing.assert_array_equal(seen[0].numpy(), want)
    for _ in range(3):
        rg.randn(*BIG, requires_grad=True).relu().sum().backward()
    np.testing.assert_array_equal(h.grad.numpy(), want)
    np.testing.assert_array_equal(seen[0].numpy(), want)


def test_switch_off_by_environment(monkeypatch):
    monkeypatch.setattr(recycle, "_ENABLED", False)
    a = np.ones(BIG, np.float32)
    recycle.give(a)
    assert recycle.pool_bytes() == 0
    assert recycle.empty(BIG, np.float32).base is None  # plain np.empty when off


def test_lent_buffer_reused_only_when_no_array_refers_to_it(monkeypatch):
    monkeypatch.setattr(recycle, "_ENABLED", True)
    a = recycle.empty(BIG, np.float32)
    a.fill(1.0)
    part = a[3:5].reshape(-1)  # a view of a view: refers to the same buffer
    del a
    b = recycle.empty(BIG, np.float32)
    assert not np.shares_memory(b, part)  # the buffer is still visible through `part`
    del b
    del part
    c = recycle.empty(BIG, np.float32)
    d = recycle.empty(BIG, np.float32)
    assert np.shares_memory(c, d) is False  # two live arrays never share a buffer
    held = recycle.empty(BIG, np.float32)
    mv = memoryview(held)  # a buffer export also keeps it
    del held
    e = recycle.empty(BIG, np.float32)
    assert not np.shares_memory(e, np.asarray(mv))


def test_lent_buffers_are_bounded(monkeypatch):
    monkeypatch.setattr(recycle, "_ENABLED", True)
    monkeypatch.setattr(recycle, "CAP_BYTES", 3 * int(np.prod(BIG)) * 4)
    live = [recycle.empty(BIG, np.float32) for _ in range(5)]  # more than the cap
    assert recycle.pool_bytes() <= recycle.CAP_BYTES
    assert len({id(x.base) if x.base is not None else id(x) for x in live}) == 5

"""rg.compile: replayed training steps must match eager steps bit for bit, guards must
re-trace, and anything the replay cannot reproduce must fall back to eager (never be wrong)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import retrograd as rg
from retrograd.compile import compile as rg_compile

nn = rg.nn
F = rg.nn.functional


def _twins(make):
    """Two identically initialised (model, optimizer) pairs."""
    rg.manual_seed(0)
    a = make()
    rg.manual_seed(0)
    b = make()
    for (n1, p1), (n2, p2) in zip(a[0].named_parameters(), b[0].named_parameters()):
        assert n1 == n2 and np.array_equal(p1._data, p2._data)
    return a, b


def _train_step(model, opt, loss_fn):
    def step(*args):
        opt.zero_grad()
        loss = loss_fn(model, *args)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def _assert_same_params(m1, m2):
    for (n1, p1), (_, p2) in zip(m1.named_parameters(), m2.named_parameters()):
        np.testing.assert_array_equal(p1._data, p2._data, err_msg=n1)
        if p1.grad is None:
            assert p2.grad is None, n1
        else:
            np.testing.assert_array_equal(p1.grad._data, p2.grad._data, err_msg=n1)


def _check(make, loss_fn, batches, expect_replays=None):
    (m1, o1), (m2, o2) = _twins(make)
    eager = _train_step(m1, o1, loss_fn)
    fast = rg_compile(_train_step(m2, o2, loss_fn))
    for args in batches:
        l1, l2 = eager(*args), fast(*args)
        assert l1 == l2
    _assert_same_params(m1, m2)
    if expect_replays is not None:
        assert fast.replays == expect_replays, fast.disabled
    return fast


# --- models -----------------------------------------------------------------------------


class _Moons(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(2, 16), nn.Linear(16, 16), nn.Linear(16, 1)

    def forward(self, x):
        return self.l3(F.relu(self.l2(F.relu(self.l1(x)))))


class _Deep(nn.Module):
    def __init__(self, depth=4, width=16):
        super().__init__()
        self.lns = nn.ModuleList([nn.LayerNorm(width) for _ in range(depth)])
        self.fcs = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, 5)

    def forward(self, h):
        for ln, fc in zip(self.lns, self.fcs):
            h = h + F.relu(fc(ln(h)))
        return self.head(self.ln_f(h))


class _CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(F.relu(self.c1(x)).flatten(1))


def _rand(*shape, seed=0):
    return rg.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def test_tiny_mlp_hinge_l2_sgd_matches_eager_bitwise():
    x = _rand(20, 2)
    y = rg.from_numpy(np.where(np.arange(20) % 2, 1.0, -1.0).astype(np.float32).reshape(20, 1))

    def make():
        m = _Moons()
        return m, rg.optim.SGD(m.parameters(), lr=0.05)

    def loss_fn(m):
        ps = list(m.parameters())
        return F.relu(1 - y * m(x)).mean() + 1e-4 * sum((p * p).sum() for p in ps)

    _check(make, loss_fn, [()] * 8, expect_replays=6)


def test_deep_residual_layernorm_matches_eager_bitwise():
    x = _rand(8, 16)
    y = rg.from_numpy(np.arange(8) % 5)

    def make():
        m = _Deep()
        return m, rg.optim.SGD(m.parameters(), lr=1e-2)

    _check(make, lambda m: F.cross_entropy(m(x), y), [()] * 6, expect_replays=4)


def test_batches_passed_as_arguments_are_read_on_every_call():
    """Data and integer targets are arguments: each replay must use the new ones (the
    first two traced calls see the *same* batch, so nothing may be baked in as constant)."""

    def make():
        m = _Deep(depth=2)
        return m, rg.optim.Adam(m.parameters(), lr=1e-2)

    rng = np.random.default_rng(1)
    same = (_rand(8, 16, seed=3), rg.from_numpy(rng.integers(0, 5, 8)))
    batches = [same, same] + [
        (_rand(8, 16, seed=10 + i), rg.from_numpy(rng.integers(0, 5, 8))) for i in range(5)
    ]
    _check(make, lambda m, x, y: F.cross_entropy(m(x), y), batches, expect_replays=5)


def test_small_cnn_momentum_matches_eager_bitwise():
    x = _rand(4, 1, 8, 8)
    y = rg.from_numpy(np.array([0, 1, 2, 1]))

    def make():
        m = _CNN()
        return m, rg.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)

    _check(make, lambda m: F.cross_entropy(m(x), y), [()] * 6, expect_replays=4)


# --- guards and fallbacks ------------------------------------------------------------------


def test_new_input_shape_retraces_and_stays_correct():
    def make():
        m = _Moons()
        return m, rg.optim.SGD(m.parameters(), lr=0.1)

    loss_fn = lambda m, x: m(x).pow(2).mean()  # noqa: E731
    batches = [(_rand(5, 2, seed=i),) for i in range(4)] + [
        (_rand(7, 2, seed=9 + i),) for i in range(4)
    ]
    fast = _check(make, loss_fn, batches)
    assert fast.replays == 4 and len(fast.plans) == 2


def test_train_eval_switch_is_guarded():
    x = _rand(4, 1, 8, 8)
    y = rg.from_numpy(np.array([0, 1, 2, 1]))

    def make():
        m = _CNN()
        return m, rg.optim.SGD(m.parameters(), lr=0.05)

    (m1, o1), (m2, o2) = _twins(make)
    eager = _train_step(m1, o1, lambda m: F.cross_entropy(m(x), y))
    fast = rg_compile(_train_step(m2, o2, lambda m: F.cross_entropy(m(x), y)))
    for i in range(8):
        if i == 4:
            m1.eval(), m2.eval()
        assert eager() == fast()
    _assert_same_params(m1, m2)
    assert fast.replays == 4  # 2 traces + 2 replays in train mode, the same in eval mode


def test_returned_tensor_and_grad_mode_guard():
    lin = nn.Linear(3, 2)
    x = _rand(4, 3)

    def fwd():
        return (lin(x) * 2).sum()

    fast = rg_compile(fwd)
    outs = [fast() for _ in range(4)]
    assert fast.replays == 2
    assert all(isinstance(o, rg.Tensor) and o.item() == outs[0].item() for o in outs)
    with rg.no_grad():
        assert fast().item() == outs[0].item()  # another grad mode: traced, not replayed
    assert fast.replays == 2


def _fallback(step_factory, match):
    """``step_factory()`` -> (step, state); compiled and eager must agree, with a warning."""
    rg.manual_seed(0)
    s1, st1 = step_factory()
    rg.manual_seed(0)
    s2, st2 = step_factory()
    fast = rg_compile(s2)
    rg.manual_seed(1)
    ref = [s1() for _ in range(5)]
    rg.manual_seed(1)
    with pytest.warns(RuntimeWarning, match=match):
        got = [fast() for _ in range(5)]
    assert got == ref
    assert fast.replays == 0 and fast.disabled
    for a, b in zip(st1, st2):
        np.testing.assert_array_equal(a._data, b._data)


def test_dropout_mask_made_outside_an_op_falls_back_to_eager():
    def factory():
        m = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 1))
        opt = rg.optim.SGD(m.parameters(), lr=0.1)
        x = _rand(6, 3)
        return _train_step(m, opt, lambda mm: mm(x).pow(2).mean()), list(m.parameters())

    _fallback(factory, "outside the traced ops")


def test_batchnorm_running_stats_update_falls_back_to_eager():
    """Running statistics are updated in place: not replayed, so the step stays eager and
    buffers follow eager exactly."""

    def factory():
        m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(72, 1))
        opt = rg.optim.SGD(m.parameters(), lr=0.1)
        x = _rand(3, 1, 8, 8)
        step = _train_step(m, opt, lambda mm: mm(x).pow(2).mean())
        return step, list(m.parameters()) + [m[1].running_mean, m[1].running_var]

    _fallback(factory, "in-place")


def test_gpt_causal_mask_built_outside_ops_falls_back_to_eager():
    """nanoGPT's causal mask is a NumPy array made on each call outside the ops: it cannot be
    told apart from data, so the step stays eager (and exact)."""
    from retrograd.models.gpt import GPT, GPTConfig

    cfg = GPTConfig(block_size=8, vocab_size=13, n_layer=1, n_head=2, n_embd=16, dropout=0.0)
    rng = np.random.default_rng(2)
    idx = rg.from_numpy(rng.integers(0, 13, (2, 8)))
    tgt = rg.from_numpy(rng.integers(0, 13, (2, 8)))

    def factory():
        m = GPT(cfg)
        opt = rg.optim.AdamW(m.parameters(), lr=1e-3)
        return _train_step(m, opt, lambda mm: mm(idx, tgt)[1]), list(m.parameters())

    _fallback(factory, "ScaledDotProductAttention")


def test_value_read_before_backward_falls_back_to_eager():
    def factory():
        lin = nn.Linear(3, 1)
        opt = rg.optim.SGD(lin.parameters(), lr=0.1)
        x = _rand(6, 3)

        def step():
            opt.zero_grad()
            loss = lin(x).pow(2).mean()
            if loss.item() > 1e9:  # data-dependent control flow
                loss = loss * 0
            loss.backward()
            opt.step()
            return loss.item()

        return step, list(lin.parameters())

    _fallback(factory, "data-dependent")


def test_inplace_op_in_step_falls_back_to_eager():
    def factory():
        lin = nn.Linear(3, 2)
        opt = rg.optim.SGD(lin.parameters(), lr=0.1)
        x = _rand(6, 3)

        def step():
            opt.zero_grad()
            h = lin(x)
            h.mul_(2)
            loss = h.pow(2).mean()
            loss.backward()
            opt.step()
            return loss.item()

        return step, list(lin.parameters())

    _fallback(factory, "in-place|outside the traced ops")


def test_retain_graph_falls_back_to_eager():
    def factory():
        lin = nn.Linear(3, 1)
        opt = rg.optim.SGD(lin.parameters(), lr=0.1)
        x = _rand(6, 3)

        def step():
            opt.zero_grad()
            loss = lin(x).pow(2).mean()
            loss.backward(retain_graph=True)
            opt.step()
            return loss.item()

        return step, list(lin.parameters())

    _fallback(factory, "retain_graph")


def test_custom_function_falls_back_to_eager():
    class Twice(rg.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    def factory():
        lin = nn.Linear(3, 1)
        opt = rg.optim.SGD(lin.parameters(), lr=0.1)
        x = _rand(6, 3)
        return _train_step(lin, opt, lambda m: Twice.apply(m(x)).pow(2).mean()), list(
            lin.parameters()
        )

    _fallback(factory, "")


def test_grads_accumulate_like_eager_without_zero_grad():
    """No zero_grad in the step: replayed backward must accumulate into .grad as eager."""
    lin1, lin2 = nn.Linear(3, 2), nn.Linear(3, 2)
    lin2.load_state_dict(lin1.state_dict())
    x = _rand(5, 3)

    def mk(lin):
        def step():
            loss = (lin(x) * lin(x)).sum()  # the weight reaches the loss by two paths
            loss.backward()
            return loss

        return step

    e, f = mk(lin1), rg_compile(mk(lin2))
    for _ in range(5):
        assert e().item() == f().item()
    assert f.replays == 3
    np.testing.assert_array_equal(lin1.weight.grad._data, lin2.weight.grad._data)
    # the stored gradients never alias each other
    assert not np.shares_memory(lin2.weight.grad._data, lin2.bias.grad._data)


def test_reset_forgets_plans():
    lin = nn.Linear(2, 1)
    x = _rand(3, 2)
    fast = rg_compile(lambda: lin(x).sum())
    for _ in range(3):
        fast()
    assert fast.replays == 1
    fast.reset()
    fast()
    assert fast.replays == 1 and not fast.plans


def test_compile_warns_nothing_on_a_replayable_step():
    lin = nn.Linear(2, 1)
    opt = rg.optim.SGD(lin.parameters(), lr=0.1)
    x = _rand(3, 2)
    fast = rg_compile(_train_step(lin, opt, lambda m: m(x).sum()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):
            fast()
    assert fast.replays == 2

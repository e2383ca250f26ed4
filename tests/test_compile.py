"""rg.compile: replayed training steps must match eager steps (bit for bit where the replay
runs the node's own arithmetic; within float32 rounding where a fused rule computes LayerNorm
row statistics with np.dot or sum(p * p) with np.vdot), guards must re-trace, and anything the
replay cannot reproduce must fall back to eager (never be wrong)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import retrograd as rg
from retrograd.compile import compile as rg_compile


@pytest.fixture(autouse=True)
def _fixed_conv_schedule(monkeypatch):
    """Bitwise comparisons need one summation order: whether conv blocks go to threads
    depends on the threads alive at each call (ops/conv.py), so pin it to one thread."""
    from retrograd.ops import conv as conv_ops

    monkeypatch.setattr(conv_ops, "_mode", lambda: (1, False))

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


def _assert_same_params(m1, m2, exact=True):
    for (n1, p1), (_, p2) in zip(m1.named_parameters(), m2.named_parameters()):
        if exact:
            np.testing.assert_array_equal(p1._data, p2._data, err_msg=n1)
        else:
            np.testing.assert_allclose(p2._data, p1._data, rtol=1e-5, atol=1e-7, err_msg=n1)
        if p1.grad is None:
            assert p2.grad is None, n1
        elif exact:
            np.testing.assert_array_equal(p1.grad._data, p2.grad._data, err_msg=n1)
        else:
            np.testing.assert_allclose(
                p2.grad._data, p1.grad._data, rtol=1e-4, atol=1e-6, err_msg=n1
            )


def _same_loss(l1, l2, exact=True):
    assert l1 == l2 if exact else abs(l1 - l2) <= 1e-5 * abs(l1), (l1, l2)


def _check(make, loss_fn, batches, expect_replays=None, exact=True):
    (m1, o1), (m2, o2) = _twins(make)
    eager = _train_step(m1, o1, loss_fn)
    fast = rg_compile(_train_step(m2, o2, loss_fn))
    for args in batches:
        l1, l2 = eager(*args), fast(*args)
        _same_loss(l1, l2, exact)
    _assert_same_params(m1, m2, exact)
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


def test_tiny_mlp_hinge_l2_sgd_matches_eager():
    x = _rand(20, 2)
    y = rg.from_numpy(np.where(np.arange(20) % 2, 1.0, -1.0).astype(np.float32).reshape(20, 1))

    def make():
        m = _Moons()
        return m, rg.optim.SGD(m.parameters(), lr=0.05)

    def loss_fn(m):
        ps = list(m.parameters())
        return F.relu(1 - y * m(x)).mean() + 1e-4 * sum((p * p).sum() for p in ps)

    # (sum(p * p) replays as one np.vdot: float32 rounding, not bit-identity)
    _check(make, loss_fn, [()] * 20, expect_replays=18, exact=False)


def test_deep_residual_layernorm_matches_eager_within_rounding():
    x = _rand(8, 16)
    y = rg.from_numpy(np.arange(8) % 5)

    def make():
        m = _Deep()
        return m, rg.optim.SGD(m.parameters(), lr=1e-2)

    # 20 steps: LayerNorm's row statistics replay as np.dot (float32 rounding)
    _check(make, lambda m: F.cross_entropy(m(x), y), [()] * 20, expect_replays=18, exact=False)


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
    _check(make, lambda m, x, y: F.cross_entropy(m(x), y), batches, expect_replays=5, exact=False)


def test_small_cnn_momentum_matches_eager():
    x = _rand(4, 1, 8, 8)
    y = rg.from_numpy(np.array([0, 1, 2, 1]))

    def make():
        m = _CNN()
        return m, rg.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)

    # (Linear's bias gradient replays as a ones-vector product: float32 rounding)
    fast = _check(make, lambda m: F.cross_entropy(m(x), y), [()] * 6, expect_replays=4, exact=False)
    flat = fast.plans[0][1].fast.flat  # momentum buffers live in a flat buffer too
    assert flat is not None and "momentum_buffer" in flat.sbufs


# --- guards and fallbacks ------------------------------------------------------------------


def test_new_input_shape_retraces_and_stays_correct():
    def make():
        m = _Moons()
        return m, rg.optim.SGD(m.parameters(), lr=0.1)

    loss_fn = lambda m, x: m(x).pow(2).mean()  # noqa: E731
    batches = [(_rand(5, 2, seed=i),) for i in range(4)] + [
        (_rand(7, 2, seed=9 + i),) for i in range(4)
    ]
    # then alternating shapes (a last partial batch): both plans replay, sharing one flat
    # parameter buffer, with no re-trace
    batches += [(_rand(5 + 2 * (i % 2), 2, seed=20 + i),) for i in range(6)]
    fast = _check(make, loss_fn, batches, exact=False)
    assert fast.replays == 10 and len(fast.plans) == 2
    f1, f2 = (p.fast.flat for _, p in fast.plans)
    assert f1 is f2 and f1 is not None


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
        _same_loss(eager(), fast(), exact=False)
    _assert_same_params(m1, m2, exact=False)
    assert fast.replays == 4  # 2 traces + 2 replays in train mode, the same in eval mode


def test_returned_tensor_and_grad_mode_guard():
    lin = nn.Linear(3, 2)
    x = _rand(4, 3)

    def fwd():
        return (lin(x) * 2).sum()

    fast = rg_compile(fwd)
    with rg.no_grad():
        outs = [fast() for _ in range(4)]
    assert fast.replays == 2
    assert all(isinstance(o, rg.Tensor) and o.item() == outs[0].item() for o in outs)
    # with grad on, the output could be backpropagated: a plan returns no graph, so the
    # function stays eager (after the traces disagree to build a plan) and keeps its graph
    with pytest.warns(RuntimeWarning, match="requires grad"):
        got = [fast() for _ in range(4)]
    assert fast.replays == 2 and fast.disabled
    got[-1].backward()
    assert lin.weight.grad is not None


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
    with rg.no_grad():
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


def test_closure_data_rebound_with_data_setter_is_read_live():
    """``x.data = new`` / ``y.data = new`` between calls (a loop reusing closure tensors):
    the replay reads the new arrays, including the integer targets cross_entropy takes."""
    rng = np.random.default_rng(4)

    def make():
        m = _Deep(depth=2)
        return m, rg.optim.SGD(m.parameters(), lr=0.05)

    (m1, o1), (m2, o2) = _twins(make)
    x1, y1 = _rand(8, 16), rg.from_numpy(rng.integers(0, 5, 8))
    x2, y2 = rg.from_numpy(x1.numpy().copy()), rg.from_numpy(y1.numpy().copy())
    eager = _train_step(m1, o1, lambda m: F.cross_entropy(m(x1), y1))
    fast = rg_compile(_train_step(m2, o2, lambda m: F.cross_entropy(m(x2), y2)))
    for i in range(7):
        if i >= 2:  # same data on the two traced calls, new data afterwards
            xn = np.random.default_rng(i).standard_normal((8, 16)).astype(np.float32)
            yn = rng.integers(0, 5, 8)
            x1.data, x2.data = rg.from_numpy(xn.copy()), rg.from_numpy(xn.copy())
            y1.data, y2.data = rg.from_numpy(yn.copy()), rg.from_numpy(yn.copy())
        _same_loss(eager(), fast(), exact=False)
    assert fast.replays == 5
    _assert_same_params(m1, m2, exact=False)


def test_lr_scheduler_and_zero_grad_to_zeros_are_replayed():
    x = _rand(6, 2)

    def make():
        m = _Moons()
        return m, rg.optim.SGD(m.parameters(), lr=0.1, momentum=0.5)

    (m1, o1), (m2, o2) = _twins(make)

    def mk(m, o):
        sched = rg.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5)

        def step():
            o.zero_grad(set_to_none=False)
            loss = m(x).pow(2).mean()
            loss.backward()
            o.step()
            sched.step()
            return loss.item()

        return step

    eager, fast = mk(m1, o1), rg_compile(mk(m2, o2))
    for _ in range(8):
        _same_loss(eager(), fast(), exact=False)
    assert fast.replays == 6
    assert o1.param_groups[0]["lr"] == o2.param_groups[0]["lr"] < 0.1
    _assert_same_params(m1, m2, exact=False)


def test_lr_scheduler_inside_a_flat_sgd_step():
    x = _rand(6, 2)

    def make():
        m = _Moons()
        return m, rg.optim.SGD(m.parameters(), lr=0.1)

    (m1, o1), (m2, o2) = _twins(make)

    def mk(m, o):
        sched = rg.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5)

        def step():
            o.zero_grad()
            loss = m(x).pow(2).mean()
            loss.backward()
            o.step()
            sched.step()
            return loss.item()

        return step

    eager, fast = mk(m1, o1), rg_compile(mk(m2, o2))
    for _ in range(8):
        _same_loss(eager(), fast(), exact=False)
    assert fast.replays == 6 and fast.plans[0][1].fast.flat is not None
    assert o1.param_groups[0]["lr"] == o2.param_groups[0]["lr"] == 0.1 * 0.5**4
    _assert_same_params(m1, m2, exact=False)


def test_lazy_first_call_is_retraced_not_disabled():
    """A first call that differs from the next ones (lazy setup) only delays the plan."""
    lin = nn.Linear(3, 2)
    x = _rand(4, 3)
    calls = []

    def step():
        h = lin(x)
        if not calls:
            h = h * 1.0  # an extra op on the very first call only
        calls.append(1)
        return h.sum()

    fast = rg_compile(step)
    with warnings.catch_warnings(), rg.no_grad():
        warnings.simplefilter("error")
        outs = [fast().item() for _ in range(6)]
    assert fast.replays == 3 and fast.disabled is None
    assert len(set(outs)) == 1


def test_fullgraph_raises_disable_returns_model_and_decorator_form():
    lin = nn.Linear(3, 2)
    x = _rand(4, 3)

    def inplace_step():
        h = lin(x)
        h.mul_(2)
        return h.sum()

    strict = rg.compile(inplace_step, fullgraph=True)
    with pytest.raises(RuntimeError, match="fullgraph"):
        strict()
    assert rg.compile(inplace_step, disable=True) is inplace_step
    with pytest.raises(ValueError, match="recompile_limit"):
        rg.compile(inplace_step, recompile_limit=0)
    with pytest.raises(TypeError, match="callable"):
        rg.compile(3)

    @rg.compile(recompile_limit=1)
    def fwd(inp):
        return lin(inp).sum()

    with rg.no_grad():
        for n in (4, 4, 4, 5, 5, 5, 4):
            assert fwd(_rand(n, 3)).item() == lin(_rand(n, 3)).sum().item()
    assert len(fwd.plans) == 1  # the limit: the newest shape's plan only


def test_compiled_module_forward_matches_eager():
    m = _Deep(depth=2).eval()
    fast = rg.compile(m)
    with rg.no_grad():
        for i in range(4):
            x = _rand(3, 16, seed=i)
            np.testing.assert_array_equal(fast(x).numpy(), m(x).numpy())
    assert fast.replays == 2


def test_replacing_a_parameter_or_submodule_retraces():
    x = _rand(4, 2)

    def make():
        m = _Moons()
        return m, rg.optim.SGD(m.parameters(), lr=0.1)

    (m1, o1), (m2, o2) = _twins(make)
    eager = _train_step(m1, o1, lambda m: m(x).pow(2).mean())
    fast = rg_compile(_train_step(m2, o2, lambda m: m(x).pow(2).mean()))
    for i in range(9):
        if i == 3:  # a new Parameter object (not in the optimizer: it stays fixed)
            w = np.full((16, 16), 0.01, np.float32)
            m1.l2.weight = nn.Parameter(rg.from_numpy(w.copy()))
            m2.l2.weight = nn.Parameter(rg.from_numpy(w.copy()))
        if i == 6:  # a new submodule
            rg.manual_seed(3)
            m1.l3 = nn.Linear(16, 1)
            rg.manual_seed(3)
            m2.l3 = nn.Linear(16, 1)
        _same_loss(eager(), fast(), exact=False)
    _assert_same_params(m1, m2, exact=False)
    assert fast.replays == 3  # 1 replay per phase, after its 2 traced calls


def test_module_hooks_fall_back_to_eager():
    def factory():
        lin = nn.Linear(3, 1)
        seen = []
        lin.register_forward_hook(lambda mod, args, out: seen.append(1))
        opt = rg.optim.SGD(lin.parameters(), lr=0.1)
        x = _rand(6, 3)
        return _train_step(lin, opt, lambda m: m(x).pow(2).mean()), list(lin.parameters())

    _fallback(factory, "hooks on a module")


def test_compiled_step_called_inside_another_trace_runs_eagerly():
    lin = nn.Linear(3, 2)
    x = _rand(4, 3)
    inner = rg_compile(lambda: lin(x) * 2)
    outer = rg_compile(lambda: inner().sum())
    with rg.no_grad():
        vals = [outer().item() for _ in range(5)]
    assert len(set(vals)) == 1 and outer.replays == 3 and inner.replays == 0


@pytest.mark.parametrize("wl", ["tiny", "deep"])
def test_benchmark_workloads_compiled_match_eager(wl):
    """The benchmark's own tiny and deep steps (64 residual LayerNorm blocks): compiled and
    plain retrograd give the same losses and parameters (within float32 rounding), step for
    step, and the replay is the generated one with flat SGD buffers."""
    import importlib

    mod = importlib.import_module(f"benchmarks.{wl}")
    params, data = mod.make_params(), mod.make_data()
    s1, m1, _ = mod.build(rg, params, data)
    s2, m2, _ = mod.build(rg, params, data, compiled=True)
    assert isinstance(s2, rg.compile(lambda: None).__class__)
    for _ in range(6):
        _same_loss(s1(), s2(), exact=False)
    assert s2.replays == 4, s2.disabled
    fast = s2.plans[0][1].fast
    assert fast is not None and fast.flat is not None
    _assert_same_params(m1, m2, exact=False)


def test_tracing_restores_every_patched_entry_point_even_on_error():
    import sys

    from retrograd.autograd import engine, node
    from retrograd.ops import elementwise

    before = (
        node.apply,
        elementwise.apply,
        engine._call,
        engine.run_backward,
        rg.Tensor.__dict__["_data"],
        rg.Tensor.__dict__["item"],
        rg.optim.SGD.__dict__["step"],
        rg.arange,
    )

    def boom():
        rg.ones(2) * 2
        raise KeyError("inside the step")

    with pytest.raises(KeyError):
        rg.compile(boom)()
    after = (
        node.apply,
        elementwise.apply,
        engine._call,
        engine.run_backward,
        rg.Tensor.__dict__["_data"],
        rg.Tensor.__dict__["item"],
        rg.optim.SGD.__dict__["step"],
        rg.arange,
    )
    assert all(a is b for a, b in zip(before, after))
    assert not any(
        getattr(m, "apply", None) is not None
        and getattr(m.apply, "__name__", "") == "_traced_apply"
        for n, m in list(sys.modules.items())
        if n.startswith("retrograd")
    )


class _Mixed(nn.Module):
    """Many generic (rule-less) nodes: embedding, gelu, tanh, sigmoid, matmul, softmax, cat,
    slicing, exp/abs/div/pow, var, stack, max, log_softmax."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 8)
        self.l = nn.Linear(8, 8)
        self.l2 = nn.Linear(16, 3, bias=False)
        self.ln = nn.LayerNorm(8)

    def forward(self, idx):
        h = self.emb(idx)
        h = F.gelu(self.l(self.ln(h))) + h.tanh() * h.sigmoid()
        a = (h @ h.transpose(1, 2)).softmax(-1) @ h
        z = rg.cat([a, h.exp() / (1 + h.abs())], -1)[:, 1:, :].reshape(-1, 16)
        extra = (z**2).mean() - z.var() + rg.stack([z.sum(), z.max()]).sum() * 1e-3
        return F.log_softmax(self.l2(z), -1), extra


def test_mixed_generic_ops_with_adam_match_eager_bitwise():
    def make():
        m = _Mixed()
        return m, rg.optim.Adam(m.parameters(), lr=1e-2, weight_decay=1e-3)

    def loss_fn(m, idx, t):
        lp, extra = m(idx)
        return (
            F.cross_entropy(lp, t.reshape(-1))
            + 0.1 * extra
            + F.mse_loss(lp.exp(), rg.zeros_like(lp))
        )

    rng = np.random.default_rng(0)
    batches = [
        (rg.from_numpy(rng.integers(0, 11, (2, 5))), rg.from_numpy(rng.integers(0, 3, (2, 4))))
        for _ in range(7)
    ]
    _check(make, loss_fn, batches, expect_replays=5)


def test_index_arrays_derived_from_targets_are_never_baked_in():
    """nll_loss builds its advanced index from the targets with NumPy, outside the ops. Even
    when the two traced calls see the same targets, later targets must be honoured: the step
    stays eager rather than replaying stale indices."""
    x = _rand(6, 4)

    def make():
        m = nn.Linear(4, 3)
        return m, rg.optim.SGD(m.parameters(), lr=0.1)

    (m1, o1), (m2, o2) = _twins(make)
    y1, y2 = (rg.from_numpy(np.array([0, 1, 2, 0, 1, 2])) for _ in range(2))
    eager = _train_step(m1, o1, lambda m: F.nll_loss(F.log_softmax(m(x), -1), y1))
    fast = rg_compile(_train_step(m2, o2, lambda m: F.nll_loss(F.log_softmax(m(x), -1), y2)))
    with pytest.warns(RuntimeWarning, match="outside the traced ops|differ at op GetItem"):
        for i in range(6):
            if i >= 2:  # new targets, written in place, after the two traced calls
                new = np.random.default_rng(i).integers(0, 3, 6)
                y1.copy_(rg.from_numpy(new.copy()))
                y2.copy_(rg.from_numpy(new.copy()))
            assert eager() == fast()
    assert fast.replays == 0 and fast.disabled
    _assert_same_params(m1, m2)


def test_grad_clipping_inside_the_step_is_replayed():
    x = _rand(8, 16)
    y = rg.from_numpy(np.arange(8) % 5)

    def make():
        m = _Deep(depth=2)
        return m, rg.optim.SGD(m.parameters(), lr=0.5)

    (m1, o1), (m2, o2) = _twins(make)

    def mk(m, o):
        def step():
            o.zero_grad()
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            rg.nn.utils.clip_grad_norm_(m.parameters(), 0.05)  # a generator of parameters
            rg.nn.utils.clip_grad_value_(m.parameters(), 0.01)
            o.step()
            return loss.item()

        return step

    eager, fast = mk(m1, o1), rg_compile(mk(m2, o2))
    for _ in range(6):
        _same_loss(eager(), fast(), exact=False)
    assert fast.replays == 4, fast.disabled
    _assert_same_params(m1, m2, exact=False)


# --- generated replay: flat SGD buffers and fused rules -------------------------------------


def _moons_pair(lr=0.05, **kw):
    x = _rand(20, 2)
    y = rg.from_numpy(np.where(np.arange(20) % 2, 1.0, -1.0).astype(np.float32).reshape(20, 1))

    def make():
        m = _Moons()
        return m, rg.optim.SGD(m.parameters(), lr=lr, **kw)

    def loss_fn(m):
        return F.relu(1 - y * m(x)).mean() + 1e-4 * sum((p * p).sum() for p in m.parameters())

    (m1, o1), (m2, o2) = _twins(make)
    return (m1, o1, _train_step(m1, o1, loss_fn)), (
        m2,
        o2,
        rg_compile(_train_step(m2, o2, loss_fn)),
    )


def test_flat_sgd_buffers_keep_grads_visible_and_zero_grad_semantics():
    (m1, o1, eager), (m2, o2, fast) = _moons_pair()
    for _ in range(4):
        _same_loss(eager(), fast(), exact=False)
    flat = fast.plans[0][1].fast.flat
    assert flat is not None  # parameters are views of one buffer, .grad views of another
    for p in m2.parameters():
        assert np.shares_memory(p._data, flat.pbuf) and np.shares_memory(p.grad._data, flat.gbuf)
    _assert_same_params(m1, m2, exact=False)
    o1.zero_grad(), o2.zero_grad()  # outside the step: the user sees None, as in eager
    assert all(p.grad is None for p in m2.parameters())
    for _ in range(3):
        _same_loss(eager(), fast(), exact=False)
    assert fast.replays == 5
    _assert_same_params(m1, m2, exact=False)


def test_flat_sgd_reads_lr_live_and_defers_to_the_real_step_when_it_must():
    (m1, o1, eager), (m2, o2, fast) = _moons_pair()
    calls = []
    for i in range(12):
        if i == 4:  # an LR change made outside the step (a scheduler, by hand)
            o1.param_groups[0]["lr"] = o2.param_groups[0]["lr"] = 0.2
        if i == 6:  # a step hook: the replay must run the optimizer's own step
            o2.register_step_pre_hook(lambda opt, a, k: calls.append(1))
        if i == 8:  # momentum switched on: no longer the plain update
            o1.param_groups[0]["momentum"] = o2.param_groups[0]["momentum"] = 0.9
        _same_loss(eager(), fast(), exact=False)
    # momentum's first step made new state: the two calls after it re-trace, and the new
    # flat layout adopts the momentum buffers
    assert fast.replays == 8 and len(calls) == 6
    assert "momentum_buffer" in fast.plans[0][1].fast.flat.sbufs
    _assert_same_params(m1, m2, exact=False)


def test_rebinding_a_flat_parameter_retraces():
    (m1, o1, eager), (m2, o2, fast) = _moons_pair()
    for _ in range(3):
        _same_loss(eager(), fast(), exact=False)
    new = np.full((16, 2), 0.1, np.float32)
    m1.l1.weight.data = rg.from_numpy(new.copy())
    m2.l1.weight.data = rg.from_numpy(new.copy())
    for _ in range(4):
        _same_loss(eager(), fast(), exact=False)
    _assert_same_params(m1, m2, exact=False)
    assert fast.replays == 3 and fast.plans[0][1].fast.flat is not None


def test_interpreted_plan_still_matches_eager_bitwise(monkeypatch):
    """Where the generator declines a plan, the plan interpreter replays it, bit for bit."""
    from retrograd._compile import codegen

    monkeypatch.setattr(codegen, "build", lambda plan: None)
    x = _rand(8, 16)
    y = rg.from_numpy(np.arange(8) % 5)

    def make():
        m = _Deep()
        return m, rg.optim.SGD(m.parameters(), lr=1e-2)

    fast = _check(make, lambda m: F.cross_entropy(m(x), y), [()] * 5, expect_replays=3)
    assert fast.plans[0][1].fast is None


class _Fused(nn.Module):
    """Every fused replay rule: LayerNorm on rows (np.dot statistics), over two trailing dims
    and without affine (reduce path), Linear + ReLU in place, residual add, mean/sum with
    dims and keepdim, subtraction from a constant."""

    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm(6)
        self.ln2 = nn.LayerNorm([2, 3], elementwise_affine=False)
        self.fc = nn.Linear(6, 6)
        self.out = nn.Linear(6, 1)

    def forward(self, x):
        h = x + F.relu(self.fc(self.ln(x)))
        h = self.ln2(h.reshape(-1, 2, 3)).reshape(-1, 6) * 0.5 + h
        s = h.sum(1, keepdim=True) - h.mean(1, keepdim=True)
        return self.out(h) + 0.1 * s


def test_fused_rules_match_eager_and_torch(torch):
    """Compiled retrograd vs eager retrograd vs PyTorch over 20 steps (float32)."""
    rng = np.random.default_rng(3)
    xn = rng.standard_normal((10, 6)).astype(np.float32)
    yn = np.where(rng.random((10, 1)) > 0.5, 1.0, -1.0).astype(np.float32)

    def step_for(lib, m, opt, x, y):
        Fl = lib.nn.functional

        def step():
            opt.zero_grad()
            score = m(x)
            loss = Fl.relu(1 - y * score).mean() + 1e-3 * sum((p * p).sum() for p in m.parameters())
            loss.backward()
            opt.step()
            return loss.item()

        return step

    (m1, o1), (m2, o2) = _twins(
        lambda: (lambda m: (m, rg.optim.SGD(m.parameters(), lr=0.1)))(_Fused())
    )
    x, y = rg.from_numpy(xn), rg.from_numpy(yn)
    eager, fast = step_for(rg, m1, o1, x, y), rg_compile(step_for(rg, m2, o2, x, y))

    class TFused(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln = torch.nn.LayerNorm(6)
            self.ln2 = torch.nn.LayerNorm([2, 3], elementwise_affine=False)
            self.fc = torch.nn.Linear(6, 6)
            self.out = torch.nn.Linear(6, 1)

        def forward(self, x):
            h = x + torch.relu(self.fc(self.ln(x)))
            h = self.ln2(h.reshape(-1, 2, 3)).reshape(-1, 6) * 0.5 + h
            s = h.sum(1, keepdim=True) - h.mean(1, keepdim=True)
            return self.out(h) + 0.1 * s

    tm = TFused()
    tm.load_state_dict({k: torch.from_numpy(v._data.copy()) for k, v in m1.state_dict().items()})
    to = torch.optim.SGD(tm.parameters(), lr=0.1)
    import torch.nn.functional as TF

    def tstep():
        to.zero_grad()
        score = tm(torch.from_numpy(xn))
        loss = TF.relu(1 - torch.from_numpy(yn) * score).mean() + 1e-3 * sum(
            (p * p).sum() for p in tm.parameters()
        )
        loss.backward()
        to.step()
        return loss.item()

    for _ in range(20):
        lt, l1, l2 = tstep(), eager(), fast()
        _same_loss(l1, l2, exact=False)
        assert abs(lt - l2) <= 1e-5 * abs(lt), (lt, l2)
    assert fast.replays == 18, fast.disabled
    src = fast.plans[0][1].fast.src
    assert "np.vdot" in src and "np.dot(" in src and "out=" in src  # the fused rules ran
    _assert_same_params(m1, m2, exact=False)
    for (n, p), tp in zip(m2.named_parameters(), tm.parameters()):
        np.testing.assert_allclose(p._data, tp.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=n)


@pytest.mark.parametrize("opt_cls", ["SGD", "Adam"])
def test_one_gradient_array_reaching_two_leaves_is_stored_twice(opt_cls):
    """``(a + b).sum()`` hands the same upstream array to both leaves: their ``.grad`` must
    not share memory (the engine's ownership rule), flat buffers or not."""

    def make():
        a = nn.Parameter(rg.ones(3, 4))
        b = nn.Parameter(rg.full((3, 4), 2.0))
        m = nn.Module()
        m.a, m.b = a, b
        return m, getattr(rg.optim, opt_cls)([a, b], lr=0.1)

    loss_fn = lambda m: (m.a + m.b).sum() * 0.5  # noqa: E731
    _check(make, loss_fn, [()] * 5, expect_replays=3)
    m, opt = make()
    fast = rg_compile(_train_step(m, opt, loss_fn))
    for _ in range(4):
        fast()
    assert fast.replays == 2
    a, b = m.a, m.b
    assert not np.shares_memory(a.grad._data, b.grad._data)
    a.grad._data[...] = 7.0
    assert (b.grad._data == 0.5).all()


def test_parameters_sharing_one_array_keep_their_own_memory():
    """Two Parameters over one array (tied by hand): eager updates the memory twice per step;
    the replay must too, so no flat buffer may separate them."""

    def make():
        base = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
        a = nn.Parameter(rg.from_numpy(base))
        b = nn.Parameter(rg.from_numpy(base))
        m = nn.Module()
        m.a, m.b = a, b
        return m, rg.optim.SGD([a, b], lr=0.1)

    x = _rand(3, 4)
    fast = _check(make, lambda m: ((x @ m.a.t()) * (x @ m.b.t())).sum(), [()] * 5)
    assert fast.plans[0][1].fast.flat is None


def test_tensor_hook_added_after_compiling_is_honoured():
    """A hook registered on a (flat) parameter after the plan was built, and one registered
    again after an earlier hook was removed (an empty hook dict), must reach eager."""
    (m1, o1, eager), (m2, o2, fast) = _moons_pair()
    for _ in range(3):
        _same_loss(eager(), fast(), exact=False)
    for m in (m1, m2):
        m.l1.weight.register_hook(lambda g: g * 0).remove()
    for _ in range(3):
        _same_loss(eager(), fast(), exact=False)
    for m in (m1, m2):
        m.l1.weight.register_hook(lambda g: g * 3)
    with pytest.warns(RuntimeWarning, match="hook"):
        for _ in range(3):
            _same_loss(eager(), fast(), exact=False)
    assert fast.disabled
    _assert_same_params(m1, m2, exact=False)


def test_a_generator_failure_falls_back_to_the_interpreter(monkeypatch):
    from retrograd._compile import codegen

    def broken(self, plan, G):
        raise KeyError("boom")

    monkeypatch.setattr(codegen._Fast, "_gen", broken)
    (m1, o1, eager), (m2, o2, fast) = _moons_pair()
    with pytest.warns(RuntimeWarning, match="code generation failed"):
        for _ in range(5):
            _same_loss(eager(), fast(), exact=False)
    assert fast.replays == 3 and fast.plans[0][1].fast is None
    _assert_same_params(m1, m2, exact=False)


class _NoBias(nn.Module):
    """Only nodes whose replay is bit-identical to eager (no bias: no ones-vector sums)."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(3, 8, bias=False)
        self.l2 = nn.Linear(8, 2, bias=False)

    def forward(self, x):
        return self.l2(F.relu(self.l1(x)))


@pytest.mark.parametrize(
    "opt_cls, kw",
    [
        ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-2)),
        ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True)),
        ("Adam", dict(lr=1e-2, weight_decay=1e-2)),
        ("Adam", dict(lr=1e-2, amsgrad=True, maximize=True)),
        ("AdamW", dict(lr=1e-2, weight_decay=0.1)),
    ],
)
def test_flat_optimizer_state_matches_eager_bitwise(opt_cls, kw):
    """Momentum SGD, Adam, AdamW over flat buffers: one update per group on the whole buffer
    gives the per-parameter loop's bits, and the state (steps, moments, buffers) stays per
    parameter, equal to eager's, also when the optimizer's own step runs in between."""
    x = _rand(6, 3)

    def make():
        m = _NoBias()
        groups = [{"params": [m.l1.weight]}, {"params": [m.l2.weight], "lr": 3e-3}]
        return m, getattr(rg.optim, opt_cls)(groups, **kw)

    (m1, o1), (m2, o2) = _twins(make)
    loss_fn = lambda m: m(x).pow(2).mean()  # noqa: E731
    eager, fast = _train_step(m1, o1, loss_fn), rg_compile(_train_step(m2, o2, loss_fn))
    hook = None
    for i in range(10):
        if i == 5:  # a step hook: the optimizer's own per-parameter step runs on the views
            hook = o2.register_step_pre_hook(lambda opt, a, k: None)
        if i == 7:
            hook.remove()
        assert eager() == fast()
    assert fast.replays == 8
    flat = fast.plans[0][1].fast.flat
    assert flat is not None and flat.sbufs
    _assert_same_params(m1, m2)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        s1, s2 = o1.state[p1], o2.state[p2]
        assert list(s1) == list(s2)
        for k in s1:
            np.testing.assert_array_equal(s1[k]._data, s2[k]._data, err_msg=k)
            if k != "step":
                assert np.shares_memory(s2[k]._data, flat.sbufs[k])


def test_optimizer_load_state_dict_after_compiling_retraces_and_adopts_the_state():
    x = _rand(6, 3)

    def make():
        m = _NoBias()
        return m, rg.optim.Adam(m.parameters(), lr=1e-2)

    (m1, o1), (m2, o2) = _twins(make)
    loss_fn = lambda m: m(x).pow(2).mean()  # noqa: E731
    eager, fast = _train_step(m1, o1, loss_fn), rg_compile(_train_step(m2, o2, loss_fn))
    for _ in range(4):
        assert eager() == fast()
    o1.load_state_dict(o1.state_dict())
    o2.load_state_dict(o2.state_dict())
    for _ in range(4):
        assert eager() == fast()
    assert fast.replays == 4  # 2 traces, 2 replays, then the same again
    _assert_same_params(m1, m2)
    flat = fast.plans[0][1].fast.flat
    p = m2.l1.weight
    assert np.shares_memory(o2.state[p]["exp_avg"]._data, flat.sbufs["exp_avg"])

"""Autograd semantics: accumulation, retain_graph, hooks, higher order, in-place checks,
custom Functions, anomaly mode and ``autograd.grad``."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import retrograd as rg


def test_accumulates_over_two_backward_calls():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    assert x.grad.tolist() == [5.0, 7.0]


def test_retain_graph_twice_doubles():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    once = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * once)


def test_second_backward_through_freed_graph_raises():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_T07_non_scalar_backward_needs_gradient():
    x = rg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="scalar outputs"):
        y.backward()
    y.backward(rg.ones(3))
    assert x.grad.tolist() == [2.0, 2.0, 2.0]
    x.grad = None
    (x * 2).backward(np.ones(3))  # T07: a NumPy array gradient works too
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_T08_gradient_of_wrong_shape():
    x = rg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        (x * 2).backward(np.ones(4))
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        (x * 2).backward(rg.ones(4))


@pytest.mark.parametrize("dtype", [rg.int64, rg.int32, rg.bool])
def test_T46_requires_grad_on_integer_raises(dtype):
    with pytest.raises(RuntimeError, match="floating point"):
        rg.tensor([1, 2, 3], dtype=dtype, requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        rg.zeros(2, dtype=dtype).requires_grad_()


def test_T46_argmax_never_requires_grad():
    x = rg.randn(3, requires_grad=True)
    assert not x.argmax().requires_grad and x.argmax().dtype == rg.int64
    assert not x.max(0).indices.requires_grad


def test_T11_detach_stops_gradient_and_shares_memory():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = x.detach()
    assert not y.requires_grad and y.grad_fn is None
    z = (x * 2 + y * 3).sum()
    z.backward()
    assert x.grad.tolist() == [2.0, 2.0]
    y[0] = 5.0
    assert x[0].item() == 5.0


def test_T12_no_grad_results_hold_no_graph():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    with rg.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()
    with rg.no_grad():
        with rg.enable_grad():
            z = x * 2
    assert z.requires_grad
    with rg.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert rg.is_grad_enabled()


def test_hooks_change_gradients():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    h = x.register_hook(lambda g: g * 10)
    y = x * 3
    y.register_hook(lambda g: g + 1)
    y.sum().backward()
    assert x.grad.tolist() == [60.0, 60.0]  # (1 + 1) * 3 * 10
    h.remove()
    x.grad = None
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_hook_returning_none_observes(torch):
    seen = []
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: seen.append(g.tolist()))
    (x * x).sum().backward()
    assert seen == [[2.0, 4.0]] and x.grad.tolist() == [2.0, 4.0]


def test_T15_retain_grad_and_nonleaf_warning():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    z = x * 3
    y.retain_grad()
    (y * z).sum().backward()
    assert y.grad.tolist() == [3.0, 6.0]
    with pytest.warns(UserWarning, match="retain_grad"):
        assert z.grad is None


@pytest.mark.slow
def test_T04_deep_chain_100k_no_recursion():
    limit = sys.getrecursionlimit()
    x = rg.tensor(1.0, dtype=rg.float64, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.00001
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.00001**100_000, rtol=1e-9)
    assert sys.getrecursionlimit() == limit
    del y  # freeing the 100,000-node chain must not recurse either
    assert sys.getrecursionlimit() == limit


def test_T04_freeing_an_unused_deep_graph():
    x = rg.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(30_000):
        y = y * 1.0
    ref = __import__("weakref").ref(y.grad_fn)
    del y  # never backpropagated: the saved tensors go too, without recursion
    assert ref() is None


def test_T04_deep_chain_10k_value():
    x = rg.tensor(1.0, dtype=rg.float64, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 2.7181459, rtol=1e-7)


def test_tensor_reused_1000_times():
    x = rg.tensor([2.0], requires_grad=True)
    y = x
    for _ in range(1000):
        y = y + x
    y.sum().backward()
    assert x.grad.item() == 1001.0


def test_T02_non_leaf_reuse():
    a = rg.tensor(1.0, requires_grad=True)
    b = a + a
    c = b + b
    c.backward()
    assert a.grad.item() == 4.0


def test_T03_diamond():
    a = rg.tensor(2.0, requires_grad=True)
    b = rg.tensor(3.0, requires_grad=True)
    c = a + b
    d = a * b
    e = c + d
    f = c * d
    y = e + f
    y.backward()
    assert y.item() == 41.0 and a.grad.item() == 25.0 and b.grad.item() == 19.0


HIGHER = {
    "exp": lambda m, x: x.exp(),
    "log": lambda m, x: (x * x + 1).log(),
    "sin": lambda m, x: x.sin(),
    "cos": lambda m, x: x.cos(),
    "tan": lambda m, x: (x * 0.3).tan(),
    "tanh": lambda m, x: x.tanh(),
    "sigmoid": lambda m, x: x.sigmoid(),
    "sqrt": lambda m, x: (x * x + 1).sqrt(),
    "rsqrt": lambda m, x: (x * x + 1).rsqrt(),
    "pow3": lambda m, x: x**3,
    "pow_tensor": lambda m, x: (x * x + 1) ** x,
    "rpow": lambda m, x: 2.0**x,
    "div": lambda m, x: 1 / (x * x + 1),
    "softplus": lambda m, x: m.nn.functional.softplus(x),
    "gelu": lambda m, x: m.nn.functional.gelu(x),
    "gelu_tanh": lambda m, x: m.nn.functional.gelu(x, approximate="tanh"),
    "silu": lambda m, x: m.nn.functional.silu(x),
    "mish": lambda m, x: m.nn.functional.mish(x),
    "elu": lambda m, x: m.nn.functional.elu(x),
    "erf": lambda m, x: m.erf(x),
    "log1p": lambda m, x: (x * x).log1p(),
    "expm1": lambda m, x: x.expm1(),
    "logsumexp": lambda m, x: m.logsumexp(x.reshape(2, 3), 1),
    "softmax": lambda m, x: m.softmax(x.reshape(2, 3), 1),
    "log_softmax": lambda m, x: m.log_softmax(x.reshape(3, 2), 0),
    "norm": lambda m, x: x.norm(),
    "std": lambda m, x: x.reshape(2, 3).std(1),
    "var": lambda m, x: x.var(),
    "prod": lambda m, x: x.prod(),
    "cumprod": lambda m, x: x.cumprod(0),
    "matmul": lambda m, x: x.reshape(2, 3) @ x.reshape(3, 2),
    "mean_sq": lambda m, x: (x * x).mean(),
    "getitem": lambda m, x: x[[0, 0, 2]] ** 3,
    "maximum": lambda m, x: m.maximum(x, x.flip(0)) ** 2,
}


@pytest.mark.parametrize("name", sorted(HIGHER))
def test_second_and_third_derivatives_match_torch(torch, name):
    fn = HIGHER[name]
    arr = np.array([0.3, -0.7, 1.1, 0.5, -0.2, 0.9])
    results = []
    for lib in (rg, torch):
        x = lib.tensor(arr, requires_grad=True)
        y = fn(lib, x).sum()
        (g1,) = lib.autograd.grad(y, x, create_graph=True)
        (g2,) = lib.autograd.grad((g1 * g1).sum(), x, create_graph=True)
        (g3,) = lib.autograd.grad(g2.sum(), x)
        results.append([g.detach().numpy() for g in (g1, g2, g3)])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)


def test_T13_inplace_on_saved_tensor_raises():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y += 1
    with pytest.raises(
        RuntimeError,
        match=r"modified by an inplace operation.*version 1; "
        r"expected version 0",
    ):
        y.sum().backward()
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    a = x * 1.0
    b = a * a
    a.mul_(2)
    with pytest.raises(RuntimeError, match="MulBackward0"):
        b.sum().backward()


def test_T13_inplace_on_unsaved_tensor_is_fine(torch):
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y += 1  # add does not save its inputs
    y.mul_(3)
    y.sum().backward()
    assert x.grad.tolist() == [6.0, 6.0]


def test_T13_view_shares_version():
    x = rg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 1.0
    v = y[:2]
    z = (y * y).sum()
    v.add_(1)
    assert y.tolist() == [2.0, 3.0, 3.0]
    with pytest.raises(RuntimeError, match="inplace"):
        z.backward()


def test_T14_leaf_inplace_rule():
    w = rg.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    with pytest.raises(RuntimeError, match="no_grad"):
        w -= 0.1 * w.grad
    with pytest.raises(RuntimeError, match="leaf Variable"):
        w.add_(1)
    with rg.no_grad():
        w -= 0.1 * w.grad
    assert w.is_leaf and w.requires_grad and w.grad_fn is None
    np.testing.assert_allclose(w.detach().numpy(), [0.8, 1.6])
    w.data.mul_(2)  # through .data: allowed
    np.testing.assert_allclose(w.detach().numpy(), [1.6, 3.2])


def test_inplace_methods_under_no_grad():
    w = rg.ones(3, requires_grad=True)
    with rg.no_grad():
        w.zero_()
        w.fill_(2.0)
        w.add_(1.0)
        w.clamp_(max=2.5)
        w.copy_(rg.tensor([1.0, 2.0, 3.0]))
        w.normal_()
        w.uniform_(-1, 1)
        w.mul_(0.5)
        w.sub_(1.0)
        w.div_(2.0)
    assert w.is_leaf and w.requires_grad
    assert ((w.detach() >= -1) & (w.detach() <= 0)).all()


def test_normal_uniform_are_seeded():
    rg.manual_seed(3)
    a = rg.empty(5).normal_(2.0, 0.5)
    b = rg.empty(5).uniform_(-1.0, 1.0)
    rg.manual_seed(3)
    assert rg.empty(5).normal_(2.0, 0.5).tolist() == a.tolist()
    assert rg.empty(5).uniform_(-1.0, 1.0).tolist() == b.tolist()
    assert a.dtype == rg.float32 and (b.abs() <= 1).all()


# --- custom Functions --------------------------------------------------------------------------


class _Scale(rg.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, k):
        ctx.save_for_backward(x, y)
        ctx.k = k
        ctx.seen = ctx.needs_input_grad
        return x * y * k

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        gx = g * y * ctx.k if ctx.needs_input_grad[0] else None
        gy = g * x * ctx.k if ctx.needs_input_grad[1] else None
        return gx, gy, None


def test_function_custom_op_and_needs_input_grad():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    y = rg.tensor([3.0, 4.0])
    out = _Scale.apply(x, y, 2.0)
    assert out.grad_fn.needs_input_grad == (True, False, False)
    out.sum().backward()
    assert x.grad.tolist() == [6.0, 8.0] and y.grad is None
    assert "_Scale" in out.grad_fn.name()


def test_function_gradcheck():
    x = rg.randn(3, dtype=rg.float64, requires_grad=True)
    y = rg.randn(3, dtype=rg.float64, requires_grad=True)
    assert rg.autograd.gradcheck(lambda a, b: _Scale.apply(a, b, 1.5), (x, y))


class _SplitTwo(rg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2, x * 3

    @staticmethod
    def backward(ctx, ga, gb):
        return ga * 2 + gb * 3


def test_function_multiple_outputs():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    a, b = _SplitTwo.apply(x)
    (a.sum() + 10 * b.sum()).backward()
    assert x.grad.tolist() == [32.0, 32.0]
    x.grad = None
    a, b = _SplitTwo.apply(x)
    a.sum().backward()  # the unused output's grad is materialised as zeros
    assert x.grad.tolist() == [2.0, 2.0]


class _BadShape(rg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g.sum()


def test_T66_custom_op_wrong_shape_grad():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"_BadShape.*index 0.*shapes do not match"):
        _BadShape.apply(x).sum().backward()


# --- anomaly mode ------------------------------------------------------------------------------


def test_T80_detect_anomaly_names_op_and_line():
    x = rg.tensor([0.0, 1.0], requires_grad=True)
    with rg.autograd.detect_anomaly():
        with pytest.raises(RuntimeError) as ei:
            y = x.log() * 0  # THE-LINE
            y.sum().backward()
    msg = str(ei.value)
    assert "Log" in msg and "THE-LINE" in msg and "test_autograd.py" in msg


def test_T80_detect_anomaly_backward_nan():
    x = rg.tensor([0.0, 1.0], requires_grad=True)
    with rg.autograd.detect_anomaly():
        y = x.sqrt()  # SQRT-LINE
        with pytest.raises(RuntimeError) as ei:
            (y * 0).sum().backward()
    assert "Sqrt" in str(ei.value) and "SQRT-LINE" in str(ei.value)


def test_anomaly_off_by_default():
    x = rg.tensor([0.0], requires_grad=True)
    (x.log() * 0).sum().backward()
    assert np.isnan(x.grad.item())
    assert not rg.autograd.is_anomaly_enabled()


# --- autograd.grad -----------------------------------------------------------------------------


def test_T16_grad_allow_unused():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    w = rg.tensor([3.0], requires_grad=True)
    y = (x * x).sum()
    with pytest.raises(RuntimeError, match="allow_unused"):
        rg.autograd.grad(y, [x, w], retain_graph=True)
    gx, gw = rg.autograd.grad(y, [x, w], allow_unused=True, retain_graph=True)
    assert gx.tolist() == [2.0, 4.0] and gw is None
    gx, gw = rg.autograd.grad(y, [x, w], materialize_grads=True)
    assert gw.tolist() == [0.0]
    assert x.grad is None and w.grad is None  # grad() leaves .grad alone


def test_T16_grad_non_leaf_inputs_and_create_graph(torch):
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    h = x * x
    y = (h * 3).sum()
    (gh,) = rg.autograd.grad(y, h, create_graph=True)
    assert gh.tolist() == [3.0, 3.0]
    (gx,) = rg.autograd.grad((x**3).sum(), x, create_graph=True)
    assert gx.requires_grad
    (gxx,) = rg.autograd.grad(gx.sum(), x)
    assert gxx.tolist() == [6.0, 12.0]


def test_backward_inputs_restricts_accumulation():
    x = rg.tensor([1.0], requires_grad=True)
    w = rg.tensor([2.0], requires_grad=True)
    (x * w).sum().backward(inputs=[w])
    assert w.grad.tolist() == [1.0] and x.grad is None


def test_grad_dtype_matches_leaf():
    for dt in (rg.float16, rg.float32, rg.float64):
        x = rg.ones(3, dtype=dt, requires_grad=True)
        (x * 2).sum().backward()
        assert x.grad.dtype == dt


def test_T17_comparison_mask_in_graph():
    x = rg.tensor([-1.0, 2.0, -3.0], requires_grad=True)
    (x * (x < 0)).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 1.0]


def test_T18_python_scalars_either_side(torch):
    vals = [0.5, 1.5]
    fns = [
        lambda v: 3 + v,
        lambda v: 2 - v,
        lambda v: 1 / v,
        lambda v: 2**v,
        lambda v: v**2,
        lambda v: 3 * v,
        lambda v: v - 2,
        lambda v: v / 4,
    ]
    for f in fns:
        x = rg.tensor(vals, requires_grad=True)
        t = torch.tensor(vals, requires_grad=True)
        f(x).sum().backward()
        f(t).sum().backward()
        np.testing.assert_allclose(f(x).detach().numpy(), f(t).detach().numpy(), rtol=1e-6)
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-6)


def test_T19_to_T23_broadcast_grad_shapes():
    a = rg.ones(3, 1, requires_grad=True)
    b = rg.ones(1, 4, requires_grad=True)
    (a + b).sum().backward()
    assert a.grad.shape == (3, 1) and (a.grad == 4).all()
    assert b.grad.shape == (1, 4) and (b.grad == 3).all()
    for shape in [(), (1,)]:
        s = rg.ones(*shape, requires_grad=True)
        m = rg.arange(20.0).reshape(5, 4)
        (s * m).sum().backward()
        assert s.grad.shape == shape and s.grad.item() == m.sum().item()
    v = rg.ones(4, requires_grad=True)
    (v + rg.ones(3, 4)).sum().backward()
    assert v.grad.shape == (4,) and (v.grad == 3).all()
    x = rg.ones(2, 3, requires_grad=True)
    x.sum(1, keepdim=True).sum().backward()
    assert x.grad.shape == (2, 3)
    x.grad = None
    x.mean().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 3), 1 / 6))
    w = rg.randn(3, 4, requires_grad=True)
    z = rg.randn(5, 2, 3, requires_grad=True)
    (z @ w).sum().backward()
    assert w.grad.shape == (3, 4) and z.grad.shape == (5, 2, 3)


def test_T24_repeated_indices_accumulate():
    x = rg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 1]].sum().backward()
    assert x.grad.tolist() == [2.0, 1.0, 0.0]


def test_T25_embedding_rows_accumulate():
    w = rg.randn(4, 2, requires_grad=True)
    g = rg.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    (w[rg.tensor([1, 1, 2])] * g).sum().backward()
    assert w.grad[1].tolist() == [4.0, 6.0] and w.grad[2].tolist() == [5.0, 6.0]
    assert w.grad[0].tolist() == [0.0, 0.0]


def test_T26_slice_assignment_grad():
    a = rg.ones(2, 2, requires_grad=True)
    b = rg.zeros(4, 4)
    b[:2, :2] = a
    assert b.requires_grad
    (b * 2).sum().backward()
    assert a.grad.tolist() == [[2.0, 2.0], [2.0, 2.0]]


def test_T27_scatter_duplicates(torch):
    """scatter_add sums duplicates; scatter (no accumulate) with duplicates is undefined in
    PyTorch: ours keeps the last write, and only the winning source gets a gradient."""
    idx = rg.tensor([[0, 0, 1]])
    src = rg.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    out = rg.zeros(1, 3).scatter_add(1, idx, src)
    assert out.tolist() == [[3.0, 3.0, 0.0]]
    out.sum().backward()
    assert src.grad.tolist() == [[1.0, 1.0, 1.0]]
    src.grad = None
    out = rg.zeros(1, 3).scatter(1, idx, src)
    assert out.tolist() == [[2.0, 3.0, 0.0]]
    (out * rg.tensor([[10.0, 20.0, 30.0]])).sum().backward()
    assert src.grad.tolist() == [[0.0, 10.0, 20.0]]


VIEW_INPLACE = {
    "slice_mul": lambda m, x: _vi(x, lambda y: y[0:2].mul_(2)),
    "int_index_mul": lambda m, x: _vi(x, lambda y: y[1].mul_(5)),
    "int_index_fill": lambda m, x: _vi(x, lambda y: y[0].fill_(7.0)),
    "transpose_slice_add": lambda m, x: _vi(x, lambda y: y.t()[1:][0].add_(x[0, :2])),
    "reshape_view_mul": lambda m, x: _vi(x, lambda y: y.reshape(-1).mul_(3)),
    "augmented_setitem": lambda m, x: _vi(x, _aug),
    "column_zero": lambda m, x: _vi(x, lambda y: y[:, 1].zero_()),
}


def _aug(y):
    y[0] += 1
    y[:, 2] *= 3


def _vi(x, f):
    y = x * 1
    f(y)
    return (y * y).sum()


@pytest.mark.parametrize("name", sorted(VIEW_INPLACE))
def test_inplace_on_views_reaches_the_base(torch, name):
    """An in-place op on a view changes the base's value and its gradient (torch's
    CopySlices), never silently leaving the base's graph stale."""
    arr = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
    grads = []
    for lib in (rg, torch):
        x = lib.tensor(arr, requires_grad=True)
        VIEW_INPLACE[name](lib, x).backward()
        grads.append(x.grad.numpy())
    np.testing.assert_allclose(*grads)


def test_inplace_on_view_of_untracked_base_records():
    w = rg.tensor([1.0, 2.0], requires_grad=True)
    z = rg.zeros(4)
    z[1:3].copy_(w * 2)
    assert z.requires_grad and z.tolist() == [0.0, 2.0, 4.0, 0.0]
    (z * z).sum().backward()
    assert w.grad.tolist() == [8.0, 16.0]


def test_inplace_on_view_of_leaf_raises():
    w = rg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        w[0].mul_(2)
    with rg.no_grad():
        w[0].mul_(2)
    assert w.tolist() == [2.0, 2.0] and w.is_leaf


def test_function_mark_non_differentiable_and_materialize():
    class Sort(rg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            v, i = x.sort()
            ctx.mark_non_differentiable(i)
            ctx.save_for_backward(i)
            return v, i

        @staticmethod
        def backward(ctx, gv, gi):
            (i,) = ctx.saved_tensors
            out = rg.zeros_like(gv)
            out[i] = gv
            return out

    x = rg.tensor([3.0, 1.0, 2.0], requires_grad=True)
    v, i = Sort.apply(x)
    assert v.requires_grad and not i.requires_grad
    (v * rg.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.tolist() == [3.0, 1.0, 2.0]

    seen = []

    class NoMat(rg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, ga, gb):
            seen.append((ga is None, gb is None))
            return ga * 2

    x = rg.tensor([1.0, 2.0], requires_grad=True)
    a, _ = NoMat.apply(x)
    a.sum().backward()
    assert seen == [(False, True)] and x.grad.tolist() == [2.0, 2.0]


def test_function_second_order_and_freed_graph():
    class Sq(rg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = rg.tensor([1.0, 2.0], requires_grad=True)
    (g,) = rg.autograd.grad(Sq.apply(x).sum(), x, create_graph=True)
    (gg,) = rg.autograd.grad(g.sum(), x)
    assert g.tolist() == [2.0, 4.0] and gg.tolist() == [2.0, 2.0]
    y = Sq.apply(x)
    y.sum().backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.sum().backward()


def test_random_inplace_on_nonleaf_cuts_gradient():
    x = rg.ones(3, requires_grad=True)
    y = x * 2
    y.normal_()
    y.uniform_(-1, 1)
    assert y.grad_fn is not None and (y.detach().abs() <= 1).all()
    (y * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), y.detach().numpy())  # y is now a constant


def test_backward_inputs_non_leaf_gets_grad():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    (h * h).sum().backward(inputs=[h])
    assert h.grad.tolist() == [4.0, 8.0] and x.grad is None


def test_backward_on_a_leaf_and_create_graph_backward():
    x = rg.tensor(2.0, requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0
    x = rg.tensor([2.0], requires_grad=True)
    (x**3).backward(create_graph=True)
    g = x.grad
    assert g.tolist() == [12.0] and g.requires_grad
    x.grad = None
    g.backward()
    assert x.grad.tolist() == [12.0]


def test_hooks_run_on_every_pass_and_post_accumulate():
    x = rg.tensor([1.0], requires_grad=True)
    calls, post = [], []
    x.register_hook(lambda g: calls.append(g.item()))
    x.register_post_accumulate_grad_hook(lambda t: post.append(t.grad.item()))
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert calls == [2.0, 2.0] and post == [2.0, 4.0]


def test_grad_setter_checks():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="size"):
        x.grad = rg.zeros(3)
    x.grad = rg.ones(2)
    (x * x).sum().backward()
    assert x.grad.tolist() == [3.0, 5.0]
    with pytest.raises(RuntimeError, match="leaf"):
        (x * 2).requires_grad_(False)


def test_gradcheck_non_contiguous_input():
    x = rg.randn(3, 2, dtype=rg.float64).t().requires_grad_()
    assert not x.is_contiguous()
    assert rg.autograd.gradcheck(lambda t: t.exp() * t, (x,))


STALE_VIEWS = {
    "slice": (lambda y: y[:2], lambda v: v * 3),
    "expand": (lambda y: y.unsqueeze(0).expand(2, 3), lambda v: v**2),
    "view_of_view": (lambda y: y.reshape(3, 1).t(), lambda v: v**2),
    "int_index": (lambda y: y[2], lambda v: v * 4),
}


@pytest.mark.parametrize("name", sorted(STALE_VIEWS))
def test_view_made_before_base_inplace_sees_new_graph(torch, name):
    """A view taken before an in-place op on its base differentiates through the base's new
    value (torch regenerates the view's grad_fn); the stale graph would give half the grad."""
    make_view, use = STALE_VIEWS[name]
    grads = []
    for lib in (rg, torch):
        x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x * 1
        v = make_view(y)
        y.mul_(2)
        use(v).sum().backward()
        grads.append(x.grad.numpy())
    np.testing.assert_allclose(*grads)


def test_view_of_untracked_base_after_inplace_with_grad():
    x = rg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    z = rg.zeros(4)
    a = z[:2]
    z[1:3].copy_(x[:2] * 2)
    (a * 5).sum().backward()
    assert x.grad.tolist() == [10.0, 0.0, 0.0]


def test_grad_mode_decorators_and_contexts():
    x = rg.ones(2, requires_grad=True)

    @rg.no_grad()
    def f(t):
        return t * 2

    @rg.enable_grad()
    def g(t):
        return t * 2

    assert not f(x).requires_grad
    with rg.no_grad():
        assert g(x).requires_grad
    with rg.inference_mode():
        assert not (x * 2).requires_grad
    with rg.set_grad_enabled(False):
        assert not (x * 2).requires_grad and not rg.is_grad_enabled()

    @rg.no_grad()
    def boom(t):
        raise ValueError("x")

    with pytest.raises(ValueError):
        boom(x)
    assert rg.is_grad_enabled()


def test_T80_detect_anomaly_create_graph_names_backward_node():
    x = rg.tensor([0.0, 1.0], requires_grad=True)
    with rg.autograd.detect_anomaly():
        y = x.sqrt()  # SQRT-CG-LINE
        with pytest.raises(RuntimeError, match="SqrtBackward0") as ei:
            rg.autograd.grad(y.sum(), x, create_graph=True)
        assert "SQRT-CG-LINE" in str(ei.value)
        # the anomaly flags are restored after the failed pass
        assert rg.autograd.grad_mode.STATE.anomaly_check_nan
        with pytest.raises(RuntimeError, match="Log"):
            x.log()

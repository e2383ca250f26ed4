"""dtype rules: PyTorch's type promotion, float32 end to end, grad dtype = leaf dtype."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg

# (description, fn(m) -> tensor); the dtype must equal PyTorch's
PROMOTION = {
    "f32_times_py_float": lambda m: m.ones(3) * 0.2,
    "f32_times_py_int": lambda m: m.ones(3) * 2,
    "int_div_int": lambda m: m.tensor([1, 2]) / m.tensor([2, 2]),
    "int_div_py_int": lambda m: m.tensor([1, 2]) / 2,
    "int_times_py_float": lambda m: m.tensor([1, 2]) * 2.5,
    "int32_times_py_int": lambda m: m.tensor([1, 2], dtype=m.int32) * 2,
    "int32_times_py_float": lambda m: m.tensor([1, 2], dtype=m.int32) * 2.5,
    "int64_plus_f32": lambda m: m.tensor([1, 2]) + m.ones(2),
    "f64_0d_times_int_1d": lambda m: m.tensor(3.0, dtype=m.float64) * m.tensor([1, 2]),
    "f64_0d_times_f32_1d": lambda m: m.tensor(3.0, dtype=m.float64) * m.ones(2),
    "int_0d_times_f32_1d": lambda m: m.tensor(3) * m.ones(2),
    "f32_0d_times_f16_1d": lambda m: m.tensor(3.0) * m.ones(2, dtype=m.float16),
    "f16_plus_f32": lambda m: m.ones(2, dtype=m.float16) + m.ones(2),
    "f16_times_py_float": lambda m: m.ones(2, dtype=m.float16) * 2.0,
    "f64_plus_f32": lambda m: m.zeros(2, dtype=m.float64) + m.ones(2),
    "uint8_plus_int8": lambda m: m.tensor([1, 2], dtype=m.uint8) + m.tensor([1, 2], dtype=m.int8),
    "bool_plus_bool": lambda m: m.tensor([True]) + m.tensor([True]),
    "int_times_bool": lambda m: m.tensor([1, 2]) * True,
    "int_pow_int": lambda m: m.tensor([1, 2]) ** 2,
    "int_pow_float": lambda m: m.tensor([1, 2]) ** 0.5,
    "int_sum": lambda m: m.tensor([1, 2]).sum(),
    "int32_sum": lambda m: m.tensor([1, 2], dtype=m.int32).sum(),
    "bool_sum": lambda m: m.tensor([True, False]).sum(),
    "int32_cumsum": lambda m: m.tensor([1, 2], dtype=m.int32).cumsum(0),
    "int_prod": lambda m: m.tensor([1, 2]).prod(),
    "int_exp": lambda m: m.tensor([1, 2]).exp(),
    "int_sqrt": lambda m: m.tensor([1, 2]).sqrt(),
    "int_sigmoid": lambda m: m.tensor([1, 2]).sigmoid(),
    "int_floordiv": lambda m: m.tensor([3, 2]) // 2,
    "int_mod": lambda m: m.tensor([3, 2]) % 2,
    "int_abs_neg": lambda m: -m.tensor([1, 2]).abs(),
    "int_max": lambda m: m.tensor([1, 5]).max(),
    "int_clamp": lambda m: m.clamp(m.tensor([1, 5]), 0, 3),
    "maximum_int_float": lambda m: m.maximum(m.tensor([1, 2]), m.tensor([1.5, 1.0])),
    "cat_int_float": lambda m: m.cat([m.tensor([1]), m.tensor([1.5])]),
    "where_py_scalars": lambda m: m.where(m.tensor([True, False]), 1, 0),
    "where_tensor_py_float": lambda m: m.where(m.tensor([True, False]), m.tensor([1, 2]), 0.5),
    "arange_int": lambda m: m.arange(3),
    "arange_float": lambda m: m.arange(0, 1, 0.25),
    "full_int": lambda m: m.full((2,), 3),
    "full_bool": lambda m: m.full((2,), True),
    "full_float": lambda m: m.full((2,), 1.5),
    "linspace": lambda m: m.linspace(0, 1, 5),
    "tensor_np_f64_array": lambda m: m.tensor(np.array([1.5])),
    "tensor_ints": lambda m: m.tensor([[1, 2]]),
    "tensor_bools": lambda m: m.tensor([True]),
    "tensor_mixed": lambda m: m.tensor([1, 2.5]),
    "tensor_np_f64_scalars": lambda m: m.tensor([np.float64(1.5), 2.0]),
    "tensor_np_f32_scalars": lambda m: m.tensor([np.float32(1.5), np.float16(1)]),
    "tensor_np_int32_and_int": lambda m: m.tensor([np.int32(1), 2]),
    "tensor_np_int32_scalar": lambda m: m.tensor(np.int32(3)),
    "tensor_bool_and_int": lambda m: m.tensor([True, 2]),
    "float_power": lambda m: m.tensor([1, 2]).float_power(2),
    "eq_result": lambda m: m.ones(2) == 1,
    "argmax_result": lambda m: m.ones(2).argmax(),
    "mean_float16": lambda m: m.ones(4, dtype=m.float16).mean(),
    "softmax_f16": lambda m: m.ones(4, dtype=m.float16).softmax(0),
}


@pytest.mark.parametrize("name", sorted(PROMOTION))
def test_promotion_matches_torch(torch, name):
    fn = PROMOTION[name]
    r, t = fn(rg), fn(torch)
    assert r.dtype.name == str(t.dtype).replace("torch.", ""), (r.dtype, t.dtype)
    np.testing.assert_allclose(
        r.numpy().astype(np.float64), t.numpy().astype(np.float64), rtol=1e-3
    )


def test_T47_numpy_float64_scalar_does_not_upcast():
    x = rg.ones(3, requires_grad=True)
    for y in (
        x * np.float64(0.2),
        np.float64(0.2) * x,
        x + np.float64(1),
        x / np.float64(3),
        x - np.float64(1),
        np.float64(1) - x,
        x ** np.float64(2.0),
        rg.maximum(x, np.float64(0.5)),
        rg.where(x > 0, x, np.float64(0.0)),
    ):
        assert y.dtype == rg.float32, y.dtype
    (x * np.float64(0.2)).sum().backward()
    assert x.grad.dtype == rg.float32


def test_T47_int_array_division_stays_float32():
    x = rg.ones(3)
    assert (x / np.array([1, 2, 3])).dtype == rg.float32
    assert (rg.tensor([1, 2]) / rg.tensor([2, 4])).dtype == rg.float32
    assert rg.tensor([1, 2, 3]).float().mean().dtype == rg.float32


def test_T47_float32_train_step_stays_float32():
    w = rg.randn(4, 3, requires_grad=True)
    b = rg.zeros(3, requires_grad=True)
    x = rg.randn(8, 4)
    y = rg.randint(0, 3, (8,))
    for _ in range(2):
        logits = (x @ w + b).relu() * 1.5 + 0.1
        loss = -rg.log_softmax(logits, -1)[rg.arange(8), y].mean() + 1e-3 * (w**2).sum()
        assert loss.dtype == rg.float32
        w.grad = b.grad = None
        loss.backward()
        assert w.grad.dtype == rg.float32 and b.grad.dtype == rg.float32
        with rg.no_grad():
            w -= 0.1 * w.grad
            b -= np.float64(0.1) * b.grad
        assert w.dtype == rg.float32 and b.dtype == rg.float32


def test_T05_python_sum_of_tensors():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    s = sum(x for _ in range(10_000))
    assert s.dtype == rg.float32
    s.sum().backward()
    assert x.grad.tolist() == [10000.0, 10000.0] and x.grad.dtype == rg.float32
    assert sum([rg.tensor(1.0), rg.tensor(2.0)]).dtype == rg.float32


def test_T48_float16_leaf_gets_float16_grad():
    h = rg.ones(3, dtype=rg.float16, requires_grad=True)
    f = rg.ones(3, requires_grad=True)
    y = h + f
    assert y.dtype == rg.float32
    (y * y).sum().backward()
    assert h.grad.dtype == rg.float16 and f.grad.dtype == rg.float32
    assert h.grad.tolist() == [4.0, 4.0, 4.0]


def test_T48_mixed_matmul_raises(torch):
    with pytest.raises(RuntimeError, match="float16.*float32|Half.*Float"):
        rg.ones(2, 2, dtype=rg.float16) @ rg.ones(2, 2)


def test_T49_float16_overflow():
    assert (rg.tensor([60000.0], dtype=rg.float16) * 2).isinf().all()


def test_T31_float16_log_softmax_large_is_finite():
    x = rg.randn(1 << 16).half().requires_grad_()
    y = rg.log_softmax(x, 0)
    y[0].backward()
    assert y.dtype == rg.float16 and x.grad.dtype == rg.float16
    assert rg.isfinite(x.grad).all()


def test_integer_true_division_by_zero_is_inf():
    r = rg.tensor([1, -1, 0]) / 0
    assert r.dtype == rg.float32 and r[0].item() == np.inf and r[1].item() == -np.inf
    assert np.isnan(r[2].item())


def test_cast_is_differentiable_and_grad_dtype_follows_leaf():
    x = rg.ones(2, requires_grad=True)
    y = x.double() * 3
    assert y.dtype == rg.float64
    y.sum().backward()
    assert x.grad.dtype == rg.float32 and x.grad.tolist() == [3.0, 3.0]
    assert x.to(rg.float32) is x
    assert not x.long().requires_grad and x.long().dtype == rg.int64


def test_default_dtype():
    assert rg.get_default_dtype() == rg.float32
    rg.set_default_dtype(rg.float64)
    try:
        assert rg.tensor([1.5]).dtype == rg.float64 and rg.zeros(2).dtype == rg.float64
        assert (rg.tensor([1, 2]) / 2).dtype == rg.float64
    finally:
        rg.set_default_dtype(rg.float32)
    with pytest.raises(TypeError):
        rg.set_default_dtype(rg.int64)


FP16_OPS = {
    "sum": lambda m, x: x.sum(),
    "mean": lambda m, x: x.mean(1),
    "var": lambda m, x: x.var(1),
    "std": lambda m, x: x.std(),
    "logsumexp": lambda m, x: x.logsumexp(1),
    "norm": lambda m, x: x.norm(dim=1),
    "cumsum": lambda m, x: x.cumsum(1),
    "matmul": lambda m, x: x @ x.t(),
    "gelu": lambda m, x: m.nn.functional.gelu(x),
    "log_softmax": lambda m, x: x.log_softmax(1),
    "softmax": lambda m, x: (x / 10).softmax(1) * m.arange(300.0).to(x.dtype),
}


@pytest.mark.parametrize("name", sorted(FP16_OPS))
def test_float16_ops_accumulate_like_torch(torch, name):
    """float16 inputs: float16 results and grads, accumulated in float32 like torch (a float16
    running sum of 1200 values of ~100 would overflow or drift)."""
    a = (np.random.default_rng(0).standard_normal((4, 300)) * 10).astype(np.float16)
    outs = []
    for m in (rg, torch):
        x = m.tensor(a, requires_grad=True)
        y = FP16_OPS[name](m, x)
        y.float().sum().backward()
        assert str(y.dtype).endswith("float16") and str(x.grad.dtype).endswith("float16")
        outs.append((y.detach().float().numpy(), x.grad.float().numpy()))
    (ry, rgr), (ty, tgr) = outs
    assert np.isfinite(ry).all()
    np.testing.assert_allclose(ry, ty, rtol=2e-3, atol=2e-3 * np.abs(ty).max())
    np.testing.assert_allclose(rgr, tgr, rtol=2e-2, atol=2e-2 * np.abs(tgr).max())

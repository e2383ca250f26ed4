"""Pooling vs PyTorch: max/avg/adaptive in 1-D and 2-D, indices, ties, gradcheck, errors."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg
import retrograd.nn.functional as F
from retrograd.autograd import gradcheck, gradgradcheck

RTOL, ATOL = 1e-5, 1e-6


def _run(torch, rng, f_rg, f_t, shape, ints=False):
    """Compare output (and indices, if returned) and input gradient with PyTorch."""
    x = (rng.integers(0, 3, shape) if ints else rng.standard_normal(shape)).astype(np.float32)
    xr, xt = rg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yr, yt = f_rg(xr), f_t(xt)
    if isinstance(yt, tuple):
        (yr, ir), (yt, it) = yr, yt
        assert ir.dtype == rg.int64
        np.testing.assert_array_equal(ir.numpy(), it.numpy())
    assert tuple(yr.shape) == tuple(yt.shape)
    assert yr.dtype == rg.float32
    np.testing.assert_allclose(yr.detach().numpy(), yt.detach().numpy(), rtol=RTOL, atol=ATOL)
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yr.backward(rg.tensor(g))
    yt.backward(torch.tensor(g))
    assert xr.grad.dtype == rg.float32
    np.testing.assert_allclose(xr.grad.numpy(), xt.grad.numpy(), rtol=RTOL, atol=ATOL)


MAX2D = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=1, dilation=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(3, 2), stride=(1, 2), return_indices=True),
    dict(kernel_size=2, stride=1, return_indices=True, ceil_mode=True),
]


@pytest.mark.parametrize("kw", MAX2D)
@pytest.mark.parametrize("ints", [False, True])  # ints: many ties
@pytest.mark.parametrize("shape", [(2, 3, 9, 8), (3, 7, 7)])
def test_max_pool2d_matches_torch(torch, rng, kw, ints, shape):
    tf = torch.nn.functional
    _run(torch, rng, lambda x: F.max_pool2d(x, **kw), lambda x: tf.max_pool2d(x, **kw),
         shape, ints)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1,
                                                            ceil_mode=True, return_indices=True),
                                dict(kernel_size=2, dilation=3, stride=1)])
def test_max_pool1d_matches_torch(torch, rng, kw):
    tf = torch.nn.functional
    _run(torch, rng, lambda x: F.max_pool1d(x, **kw), lambda x: tf.max_pool1d(x, **kw),
         (2, 3, 11), ints=True)


def test_T39_max_pool_ties_send_gradient_to_first_max():
    """PyTorch's max_pool convention: the whole gradient goes to the first maximum."""
    x = rg.tensor([[[[1.0, 1.0], [1.0, 0.0]]]], requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    assert x.grad.tolist() == [[[[1.0, 0.0], [0.0, 0.0]]]]


def test_max_pool_nan_propagates(torch):
    x = np.array([[[[1.0, np.nan], [3.0, 0.0]]]], np.float32)
    yr, ir = F.max_pool2d(rg.tensor(x), 2, return_indices=True)
    yt, it = torch.nn.functional.max_pool2d(torch.tensor(x), 2, return_indices=True)
    assert np.isnan(yr.item()) and np.isnan(yt.item())
    assert ir.item() == it.item()


def test_overlapping_windows_accumulate_gradient(torch, rng):
    """Stride 1: one input can win several windows; its gradient is the sum."""
    x = np.zeros((1, 1, 3, 3), np.float32)
    x[0, 0, 1, 1] = 5.0
    xr = rg.tensor(x, requires_grad=True)
    F.max_pool2d(xr, 2, stride=1).sum().backward()
    assert xr.grad.numpy()[0, 0, 1, 1] == 4.0


AVG2D = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=True),
    dict(kernel_size=(2, 3), stride=1, padding=1, divisor_override=5),
    dict(kernel_size=(4, 2), stride=(3, 1), padding=(2, 1), count_include_pad=False),
]


@pytest.mark.parametrize("kw", AVG2D)
@pytest.mark.parametrize("shape", [(2, 3, 9, 8), (3, 7, 7)])
def test_avg_pool2d_matches_torch(torch, rng, kw, shape):
    tf = torch.nn.functional
    _run(torch, rng, lambda x: F.avg_pool2d(x, **kw), lambda x: tf.avg_pool2d(x, **kw),
         shape)


@pytest.mark.parametrize("kw", [dict(kernel_size=2),
                                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                     count_include_pad=False)])
def test_avg_pool1d_matches_torch(torch, rng, kw):
    tf = torch.nn.functional
    _run(torch, rng, lambda x: F.avg_pool1d(x, **kw), lambda x: tf.avg_pool1d(x, **kw),
         (2, 3, 11))


@pytest.mark.parametrize("osize", [1, (3, 2), (5, None), (4, 6), (9, 8), (2, 7)])
def test_adaptive_pool2d_matches_torch(torch, rng, osize):
    tf = torch.nn.functional
    _run(torch, rng, lambda x: F.adaptive_avg_pool2d(x, osize),
         lambda x: tf.adaptive_avg_pool2d(x, osize),
         (2, 3, 9, 8))
    _run(torch, rng, lambda x: F.adaptive_max_pool2d(x, osize, True),
         lambda x: tf.adaptive_max_pool2d(x, osize, True), (2, 3, 9, 8), ints=True)


@pytest.mark.parametrize("osize", [1, 4, 11])
def test_adaptive_pool1d_matches_torch(torch, rng, osize):
    tf = torch.nn.functional
    _run(torch, rng, lambda x: F.adaptive_avg_pool1d(x, osize),
         lambda x: tf.adaptive_avg_pool1d(x, osize),
         (2, 3, 9))
    _run(torch, rng, lambda x: F.adaptive_max_pool1d(x, osize, True),
         lambda x: tf.adaptive_max_pool1d(x, osize, True), (2, 3, 9), ints=True)


@pytest.mark.parametrize("name,args,kw", [
    ("MaxPool2d", (3,), dict(stride=2, padding=1)),
    ("MaxPool2d", (2,), dict(return_indices=True)),
    ("MaxPool1d", (2,), dict()),
    ("AvgPool2d", (3,), dict(stride=2, ceil_mode=True, count_include_pad=False)),
    ("AvgPool1d", (3,), dict(padding=1)),
    ("AdaptiveAvgPool2d", ((2, 3),), dict()),
    ("AdaptiveAvgPool1d", (3,), dict()),
    ("AdaptiveMaxPool2d", (2,), dict(return_indices=True)),
    ("AdaptiveMaxPool1d", (3,), dict()),
])
def test_pool_modules_match_torch(torch, rng, name, args, kw):
    m, tm = getattr(rg.nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw)
    shape = (2, 3, 8, 7) if name.endswith("2d") else (2, 3, 9)
    _run(torch, rng, m, tm, shape, ints=True)
    assert repr(m) == repr(tm)


def _t64(rng, *shape):
    return rg.tensor(rng.standard_normal(shape), dtype=rg.float64, requires_grad=True)


def test_gradcheck_max_pool2d(rng):
    x = _t64(rng, 2, 3, 6, 5)
    assert gradcheck(lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), (x,))
    assert gradgradcheck(lambda x: F.max_pool2d(x, 2, 1), (x,))
    assert gradcheck(lambda x: F.adaptive_max_pool2d(x, (4, 3)), (x,))


def test_gradcheck_avg_pool2d(rng):
    x = _t64(rng, 2, 3, 6, 5)
    assert gradcheck(lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
                     (x,))
    assert gradgradcheck(lambda x: F.avg_pool2d(x, 2), (x,))
    assert gradcheck(lambda x: F.adaptive_avg_pool2d(x, (4, 3)), (x,))


def test_pool_errors():
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        F.max_pool2d(rg.zeros(1, 1, 5, 5), 2, padding=2)
    with pytest.raises(RuntimeError, match="Output size is too small"):
        F.max_pool2d(rg.zeros(1, 1, 2, 2), 3)
    with pytest.raises(RuntimeError, match="Expected 3D or 4D"):
        F.max_pool2d(rg.zeros(4, 4), 2)
    with pytest.raises(RuntimeError, match="kernel_size must be greater than zero"):
        F.avg_pool2d(rg.zeros(1, 1, 4, 4), 0)
    with pytest.raises(RuntimeError, match="divisor must be not zero"):
        F.avg_pool2d(rg.zeros(1, 1, 4, 4), 2, divisor_override=0)
    with pytest.raises(RuntimeError, match="Expected 2D or 3D"):
        F.max_pool1d(rg.zeros(1, 1, 4, 4), 2)


def test_max_pool_window_wholly_in_padding_matches_torch(torch, rng):
    """Dilated windows that see only padding: -inf output and PyTorch's reported index; the
    gradient goes to that index when it lies inside the plane (as PyTorch does)."""
    kw = dict(kernel_size=(2, 2), stride=(2, 2), padding=(0, 1), dilation=(1, 2),
              return_indices=True)
    _run(torch, rng, lambda x: F.max_pool2d(x, **kw),
         lambda x: torch.nn.functional.max_pool2d(x, **kw), (2, 2, 4, 1))


def test_max_pool_window_index_past_the_plane_gets_no_gradient(torch):
    # PyTorch reports index 3..5 for a 1x3 plane here (and its backward writes out of
    # bounds); retrograd reports the same indices and drops those gradients.
    kw = dict(kernel_size=(2, 1), stride=1, padding=(1, 0), dilation=(2, 1), return_indices=True)
    x = np.array([[[[0.5, -1.0, 2.0]]]], np.float32)
    _, it = torch.nn.functional.max_pool2d(torch.tensor(x), **kw)
    xr = rg.tensor(x, requires_grad=True)
    y, ir = F.max_pool2d(xr, **kw)
    assert np.all(np.isneginf(y.detach().numpy()))
    np.testing.assert_array_equal(ir.numpy(), it.numpy())
    y.sum().backward()
    assert xr.grad.tolist() == [[[[0.0, 0.0, 0.0]]]]

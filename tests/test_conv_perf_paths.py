"""The fast paths of convolution and max pooling vs PyTorch.

Ungrouped convolutions run channels-last inside, cache-blocked over the batch, with scratch
blocks reused across calls; tiled max pooling (kernel == stride, no padding) keeps per-window
codes. These tests pin their values, all gradients, memory formats, block boundaries, scratch
reuse, tie/NaN/signed-zero rules, and higher-order gradients.
"""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg
import retrograd.nn.functional as F
from retrograd.autograd import gradcheck, gradgradcheck
from retrograd.ops import conv as conv_ops

RTOL, ATOL = 1e-4, 1e-5
pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")


def _cl(a: np.ndarray) -> np.ndarray:
    """The same NCHW values laid out channels-last (an NHWC buffer seen through strides)."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def _noncontig(a: np.ndarray) -> np.ndarray:
    """The same values through a strided (every other column) view."""
    big = np.zeros(a.shape[:3] + (2 * a.shape[3],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def _layout(a: np.ndarray, layout: str) -> np.ndarray:
    return {"nchw": np.ascontiguousarray, "cl": _cl, "strided": _noncontig}[layout](a)


def _torch_layout(torch, a: np.ndarray, layout: str):
    t = torch.tensor(np.ascontiguousarray(a))
    if layout == "cl":
        t = t.contiguous(memory_format=torch.channels_last)
    return t.requires_grad_(True)


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL)


def _check_conv(torch, rng, xshape, wshape, layout="nchw", bias=True, **kw):
    x = rng.standard_normal(xshape).astype(np.float32)
    w = rng.standard_normal(wshape).astype(np.float32) * 0.3
    b = rng.standard_normal(wshape[0]).astype(np.float32)
    xr = rg.from_numpy(_layout(x, layout)).requires_grad_()
    wr, br = rg.tensor(w, requires_grad=True), rg.tensor(b, requires_grad=True)
    xt = _torch_layout(torch, x, layout)
    wt, bt = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    yr = F.conv2d(xr, wr, br if bias else None, **kw)
    yt = torch.nn.functional.conv2d(xt, wt, bt if bias else None, **kw)
    _close(yr.detach().numpy(), yt.detach().numpy())
    assert yr.dtype == rg.float32
    # PyTorch's memory-format rule: channels-last in, channels-last out; otherwise contiguous
    assert yr.is_contiguous() == yt.is_contiguous()
    g = rng.standard_normal(yt.shape).astype(np.float32)
    yr.backward(rg.tensor(g))
    yt.backward(torch.tensor(g))
    _close(xr.grad.numpy(), xt.grad.numpy())
    _close(wr.grad.numpy(), wt.grad.numpy())
    if bias:
        _close(br.grad.numpy(), bt.grad.numpy())
    assert xr.grad.dtype == wr.grad.dtype == rg.float32


CONV_GEOMETRIES = [
    ((3, 1, 28, 28), (8, 1, 3, 3), {}),  # C=1 (MNIST's first layer)
    ((2, 5, 9, 8), (6, 5, 3, 3), {}),  # few channels: one GEMM + strided adds
    ((2, 12, 9, 8), (7, 12, 3, 3), {}),  # per-offset GEMMs
    ((1, 9, 7, 11), (4, 9, 3, 2), dict(stride=2)),  # batch 1, odd sizes
    ((2, 10, 10, 9), (5, 10, 3, 3), dict(stride=(2, 1), padding=(1, 2), dilation=(2, 1))),
    ((2, 8, 9, 9), (4, 8, 4, 4), dict(padding="same")),  # asymmetric 'same' pads
    ((2, 8, 11, 10), (6, 8, 3, 3), dict(padding="same", dilation=2)),
    ((2, 16, 12, 12), (8, 16, 3, 3), dict(padding="valid", stride=3)),
    ((2, 16, 6, 6), (8, 16, 1, 1), {}),  # 1x1 (the gather is a plain copy)
    ((2, 8, 5, 5), (3, 8, 5, 5), {}),  # kernel as big as the input: 1x1 output
    ((2, 4, 8, 8), (6, 2, 3, 3), dict(groups=2, padding=1)),  # grouped path still right
]


@pytest.mark.parametrize("layout", ["nchw", "cl", "strided"])
@pytest.mark.parametrize("xshape,wshape,kw", CONV_GEOMETRIES)
def test_conv2d_fast_path_matches_torch(torch, rng, xshape, wshape, kw, layout):
    _check_conv(torch, rng, xshape, wshape, layout, **kw)


def test_conv2d_without_bias_and_frozen_input(torch, rng):
    _check_conv(torch, rng, (2, 6, 8, 8), (4, 6, 3, 3), bias=False, padding=1)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    wr = rg.tensor(w, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    F.conv2d(rg.tensor(x), wr).sum().backward()
    torch.nn.functional.conv2d(torch.tensor(x), wt).sum().backward()
    _close(wr.grad.numpy(), wt.grad.numpy())


@pytest.mark.parametrize("block", [1, 3000, 20000])
def test_conv2d_block_boundaries(torch, rng, monkeypatch, block):
    """Blocks of 1 sample, blocks that leave a remainder, and one block for the batch."""
    monkeypatch.setattr(conv_ops, "_BLOCK_BYTES", block)
    _check_conv(torch, rng, (7, 6, 9, 9), (5, 6, 3, 3), padding=1)
    _check_conv(torch, rng, (7, 6, 9, 9), (5, 6, 3, 3), layout="cl", stride=2)
    _check_conv(torch, rng, (5, 1, 10, 10), (4, 1, 3, 3))


def test_conv2d_scratch_reuse_does_not_alias_results(rng):
    """A second call of the same geometry reuses scratch blocks; the first results (output
    and gradients) must be untouched by it."""
    w = rg.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    xs = [rng.standard_normal((6, 3, 10, 10)).astype(np.float32) for _ in range(2)]
    outs, grads = [], []
    for x in xs:
        xr = rg.tensor(x, requires_grad=True)
        y = F.conv2d(xr, w, padding=1)
        (y * y).sum().backward()
        outs.append(y.detach().numpy().copy())
        grads.append((y, xr.grad.numpy().copy(), xr))
    y0, g0, x0 = grads[0]
    np.testing.assert_array_equal(y0.detach().numpy(), outs[0])
    np.testing.assert_array_equal(x0.grad.numpy(), g0)
    ref = F.conv2d(rg.tensor(xs[0]), w.detach(), padding=1).numpy()
    np.testing.assert_array_equal(outs[0], ref)


@pytest.mark.parametrize("layout", ["nchw", "cl"])
@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(stride=2, output_padding=1),
        dict(stride=(2, 3), padding=(1, 0), output_padding=(0, 2), dilation=(1, 2)),
        dict(stride=3, padding=2, dilation=2, output_padding=2),
    ],
)
def test_conv_transpose2d_fast_path_matches_torch(torch, rng, kw, layout):
    x = rng.standard_normal((2, 6, 5, 4)).astype(np.float32)
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32) * 0.3
    b = rng.standard_normal(3).astype(np.float32)
    xr = rg.from_numpy(_layout(x, layout)).requires_grad_()
    wr, br = rg.tensor(w, requires_grad=True), rg.tensor(b, requires_grad=True)
    xt = _torch_layout(torch, x, layout)
    wt, bt = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    yr = F.conv_transpose2d(xr, wr, br, **kw)
    yt = torch.nn.functional.conv_transpose2d(xt, wt, bt, **kw)
    _close(yr.detach().numpy(), yt.detach().numpy())
    g = rng.standard_normal(yt.shape).astype(np.float32)
    yr.backward(rg.tensor(g))
    yt.backward(torch.tensor(g))
    for a, t in ((xr, xt), (wr, wt), (br, bt)):
        _close(a.grad.numpy(), t.grad.numpy())


@pytest.mark.parametrize(
    "xshape,wshape,kw",
    [
        ((2, 1, 6, 6), (3, 1, 3, 3), {}),
        ((2, 9, 5, 6), (3, 9, 3, 2), dict(stride=2, padding=1)),
        ((1, 3, 6, 5), (2, 3, 2, 3), dict(padding="same", dilation=(2, 1))),
    ],
)
def test_conv2d_fast_path_gradcheck_gradgradcheck(rng, xshape, wshape, kw):
    x = rg.tensor(rng.standard_normal(xshape), requires_grad=True)
    w = rg.tensor(rng.standard_normal(wshape), requires_grad=True)
    b = rg.tensor(rng.standard_normal(wshape[0]), requires_grad=True)
    f = lambda x, w, b: F.conv2d(x, w, b, **kw)  # noqa: E731
    assert gradcheck(f, (x, w, b))
    assert gradgradcheck(f, (x, w, b))


def test_conv2d_channels_last_gradcheck(rng):
    x = rg.from_numpy(_cl(rng.standard_normal((2, 4, 5, 5)))).requires_grad_()
    w = rg.tensor(rng.standard_normal((3, 4, 3, 3)), requires_grad=True)
    assert gradcheck(lambda x, w: F.conv2d(x, w, padding=1), (x, w))
    assert gradgradcheck(lambda x, w: F.conv2d(x, w, padding=1), (x, w))


def test_conv_transpose2d_gradgradcheck(rng):
    x = rg.tensor(rng.standard_normal((1, 4, 3, 3)), requires_grad=True)
    w = rg.tensor(rng.standard_normal((4, 2, 3, 3)), requires_grad=True)
    f = lambda x, w: F.conv_transpose2d(x, w, stride=2, output_padding=1)  # noqa: E731
    assert gradcheck(f, (x, w))
    assert gradgradcheck(f, (x, w))


def test_conv2d_float64_stays_float64(rng):
    x = rg.tensor(rng.standard_normal((2, 3, 6, 6)), requires_grad=True)
    w = rg.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    y = F.conv2d(x, w, padding=1)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == w.grad.dtype == rg.float64


# --- tiled max pooling --------------------------------------------------------------------


def _check_pool(torch, x: np.ndarray, layout="nchw", nsp=2, return_indices=False, **kw):
    xr = rg.from_numpy(_layout(x, layout) if x.ndim == 4 else x.copy()).requires_grad_()
    xt = _torch_layout(torch, x, layout) if x.ndim == 4 else torch.tensor(x).requires_grad_(True)
    fr = F.max_pool2d if nsp == 2 else F.max_pool1d
    ft = torch.nn.functional.max_pool2d if nsp == 2 else torch.nn.functional.max_pool1d
    yr = fr(xr, return_indices=return_indices, **kw)
    yt = ft(xt, return_indices=return_indices, **kw)
    if return_indices:
        (yr, ir), (yt, it) = yr, yt
        np.testing.assert_array_equal(ir.numpy(), it.numpy())
    a, b = yr.detach().numpy(), yt.detach().numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.signbit(a), np.signbit(b))  # the winner's own zero
    g = np.arange(1, a.size + 1, dtype=np.float32).reshape(a.shape)  # distinct per window
    yr.backward(rg.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_array_equal(xr.grad.numpy(), xt.grad.numpy())
    assert yr.is_contiguous() == yt.is_contiguous()


@pytest.mark.parametrize("layout", ["nchw", "cl", "strided"])
@pytest.mark.parametrize(
    "shape,kw",
    [
        ((2, 3, 8, 8), dict(kernel_size=2)),
        ((2, 3, 9, 7), dict(kernel_size=2)),  # odd sizes: the last row/column is dropped
        ((1, 2, 9, 9), dict(kernel_size=3)),
        ((2, 2, 8, 9), dict(kernel_size=(2, 3))),
        ((2, 2, 8, 8), dict(kernel_size=2, stride=2, ceil_mode=True)),  # exact: same tiles
        ((2, 2, 9, 9), dict(kernel_size=2, ceil_mode=True)),  # not tiled: general path
    ],
)
def test_max_pool2d_tiled_matches_torch(torch, rng, shape, kw, layout):
    _check_pool(torch, rng.standard_normal(shape).astype(np.float32), layout, **kw)


def test_max_pool2d_tiled_ties_go_to_first_in_scan_order(torch, rng):
    x = rng.integers(0, 3, (2, 3, 8, 8)).astype(np.float32)  # many ties per window
    _check_pool(torch, x, kernel_size=2)
    _check_pool(torch, x, kernel_size=(2, 4))
    _check_pool(torch, np.zeros((1, 2, 4, 4), np.float32), kernel_size=2)
    _check_pool(torch, np.full((1, 1, 4, 4), -np.inf, np.float32), kernel_size=2)


def test_max_pool2d_tiled_signed_zero_is_the_winner(torch):
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0] = -0.0  # first in its window: PyTorch returns -0.0
    x[0, 0, 0, 3] = -0.0  # second in its window: +0.0 wins
    x[0, 0, 2:, :2] = -0.0  # all -0.0
    _check_pool(torch, x, kernel_size=2)


def test_max_pool2d_tiled_nan_falls_back_to_pytorch_rule(torch, rng):
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    x[0, 0, 0, 1] = np.nan
    x[0, 1, 2, 2] = x[0, 1, 3, 3] = np.nan
    xr = rg.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    yr, yt = F.max_pool2d(xr, 2), torch.nn.functional.max_pool2d(xt, 2)
    np.testing.assert_array_equal(yr.detach().numpy(), yt.detach().numpy())
    yr.sum().backward()
    yt.sum().backward()
    np.testing.assert_array_equal(xr.grad.numpy(), xt.grad.numpy())


def test_max_pool_tiled_indices_unbatched_and_1d(torch, rng):
    x = rng.standard_normal((2, 3, 8, 6)).astype(np.float32)
    _check_pool(torch, x, return_indices=True, kernel_size=2)
    _check_pool(torch, x, layout="cl", return_indices=True, kernel_size=(2, 3))
    _check_pool(torch, x[0], return_indices=True, kernel_size=2)  # unbatched (C, H, W)
    x1 = rng.standard_normal((2, 3, 9)).astype(np.float32)
    _check_pool(torch, x1, nsp=1, return_indices=True, kernel_size=3)
    _check_pool(torch, x1[0], nsp=1, kernel_size=2)


def test_max_pool2d_tiled_double_backward(rng):
    x = rg.tensor(rng.standard_normal((2, 2, 6, 6)), requires_grad=True)
    assert gradcheck(lambda x: F.max_pool2d(x, 2), (x,))
    assert gradgradcheck(lambda x: F.max_pool2d(x, 2), (x,))
    xc = rg.from_numpy(_cl(rng.standard_normal((2, 3, 6, 4)))).requires_grad_()
    assert gradgradcheck(lambda x: F.max_pool2d(x, (3, 2)), (xc,))


def test_cnn_step_matches_torch(torch, rng):
    """The benchmark's MNIST net: conv-relu-conv-relu-pool-flatten-linear, all grads."""
    x = rng.standard_normal((5, 1, 28, 28)).astype(np.float32)
    m = rg.nn.Sequential(
        rg.nn.Conv2d(1, 8, 3), rg.nn.ReLU(), rg.nn.Conv2d(8, 16, 3), rg.nn.ReLU(),
        rg.nn.MaxPool2d(2), rg.nn.Flatten(), rg.nn.Linear(16 * 144, 10),
    )  # fmt: skip
    tm = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(16 * 144, 10),
    )  # fmt: skip
    tm.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in m.state_dict().items()})
    yr, yt = m(rg.tensor(x)), tm(torch.tensor(x))
    _close(yr.detach().numpy(), yt.detach().numpy())
    yr.square().sum().backward()
    yt.square().sum().backward()
    tp = dict(tm.named_parameters())
    for n, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[n].grad.numpy(), rtol=2e-4, atol=1e-4)


class _FakeBlas:
    """Stands in for NumPy's BLAS controller: reports 2 threads, records what is set."""

    def __init__(self):
        self.n, self.calls = 2, []

    def get_num_threads(self):
        return self.n

    def set_num_threads(self, n):
        self.calls.append(n)
        self.n = n


def test_conv2d_blocks_on_two_workers_match_torch(torch, rng, monkeypatch):
    """With 2 BLAS threads allowed, blocks are shared by two Python threads (BLAS on one
    thread meanwhile, restored after); results match and do not depend on the split."""
    fake = _FakeBlas()
    monkeypatch.setattr(conv_ops, "_BLAS", fake)
    monkeypatch.setattr(conv_ops, "_THREADED", True)
    monkeypatch.setattr(conv_ops, "_BLOCK_BYTES", 3000)
    _check_conv(torch, rng, (7, 6, 9, 9), (5, 6, 3, 3), padding=1)
    _check_conv(torch, rng, (7, 6, 9, 9), (5, 6, 3, 3), layout="cl", stride=2)
    _check_conv(torch, rng, (5, 1, 10, 10), (4, 1, 3, 3), bias=False)
    assert fake.calls and fake.calls[0::2] == [1] * (len(fake.calls) // 2)
    assert fake.n == 2  # restored
    x = rng.standard_normal((9, 4, 8, 8)).astype(np.float32)
    w = rng.standard_normal((3, 4, 3, 3)).astype(np.float32)
    y2 = F.conv2d(rg.tensor(x), rg.tensor(w), padding=1).numpy()
    fake.n = 1
    y1 = F.conv2d(rg.tensor(x), rg.tensor(w), padding=1).numpy()
    np.testing.assert_array_equal(y1, y2)  # each block's arithmetic is the same


def test_max_pool2d_tiled_blocks_on_two_workers(torch, rng, monkeypatch):
    fake = _FakeBlas()
    monkeypatch.setattr(conv_ops, "_BLAS", fake)
    monkeypatch.setattr(conv_ops, "_THREADED", True)
    monkeypatch.setattr(conv_ops, "_BLOCK_BYTES", 500)
    x = rng.integers(-2, 3, (7, 3, 9, 8)).astype(np.float32)
    x[5, 1, 2, 3] = -0.0
    _check_pool(torch, x, kernel_size=2)
    _check_pool(torch, x, layout="cl", kernel_size=(3, 2), return_indices=True)
    x[6, 2, 0, 0] = np.nan  # in the last block: the whole call falls back
    _check_pool(torch, x, kernel_size=2)
    assert fake.calls and fake.n == 2


def test_conv2d_concurrent_callers_restore_blas_threads(rng, monkeypatch):
    """Two Python threads convolving at once: one runs in parallel, the other serially
    meanwhile; every result is right and the BLAS thread count ends where it started."""
    from concurrent.futures import ThreadPoolExecutor

    fake = _FakeBlas()
    monkeypatch.setattr(conv_ops, "_BLAS", fake)
    monkeypatch.setattr(conv_ops, "_THREADED", True)
    monkeypatch.setattr(conv_ops, "_BLOCK_BYTES", 2000)
    w = rg.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    xs = [rg.tensor(rng.standard_normal((6, 3, 9, 9)).astype(np.float32)) for _ in range(8)]
    fake.n = 1
    ref = [F.conv2d(x, w, padding=1).numpy() for x in xs]
    fake.n = 2
    with ThreadPoolExecutor(2) as ex:
        got = list(ex.map(lambda x: F.conv2d(x, w, padding=1).numpy(), xs))
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    assert fake.n == 2


@pytest.mark.parametrize(
    "env,expected",
    [({}, False), ({"OPENBLAS_THREAD_TIMEOUT": "4"}, True), ({"GOTO_THREAD_TIMEOUT": "28"}, False)],
)
def test_threaded_blocks_only_when_idle_blas_threads_sleep(monkeypatch, env, expected):
    for var in ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert conv_ops._idle_blas_threads_sleep() is expected
    monkeypatch.setattr(conv_ops, "_THREADED", None)
    monkeypatch.setattr(conv_ops, "_BLAS", _FakeBlas())  # no pool-stopping function
    assert conv_ops._mode() == (2, expected)


def test_conv2d_threaded_blocks_with_real_blas(torch, rng, monkeypatch):
    """The real BLAS at 2 threads: the pool is stopped for the parallel region and comes back
    on the next multithreaded call; results match the serial ones (outputs and input
    gradients bit for bit; the weight gradient sums its per-worker partials)."""
    from threadpoolctl import threadpool_limits

    if conv_ops._blas() is False:
        pytest.skip("NumPy's BLAS is not OpenBLAS")
    monkeypatch.setattr(conv_ops, "_THREADED", None)
    monkeypatch.setattr(conv_ops, "_BLOCK_BYTES", 20000)
    x = rng.standard_normal((9, 6, 10, 10)).astype(np.float32)
    w = rng.standard_normal((5, 6, 3, 3)).astype(np.float32)
    a = rng.standard_normal((300, 300)).astype(np.float32)

    def run():
        xr, wr = rg.tensor(x, requires_grad=True), rg.tensor(w, requires_grad=True)
        y = F.conv2d(xr, wr, padding=1)
        (y * y).sum().backward()
        return y.detach().numpy(), xr.grad.numpy(), wr.grad.numpy()

    with threadpool_limits(1, user_api="blas"):
        ref = run()
    with threadpool_limits(2, user_api="blas"):
        got = run()
        assert conv_ops._blas().get_num_threads() == 2
        np.testing.assert_allclose(
            a @ a, (a.astype(np.float64) @ a).astype(np.float32), rtol=1e-4, atol=1e-3
        )  # BLAS still works after a stop
    np.testing.assert_array_equal(ref[0], got[0])  # per-block arithmetic: identical
    np.testing.assert_array_equal(ref[1], got[1])
    np.testing.assert_allclose(ref[2], got[2], rtol=1e-5)  # partial sums added per worker


def test_blas_pool_is_not_stopped_while_another_thread_lives(monkeypatch):
    import threading

    monkeypatch.setattr(conv_ops, "_park_fn", lambda: lambda: None)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not conv_ops._can_park()
    finally:
        stop.set()
        t.join()


def test_blas_pool_stop_can_be_switched_off(monkeypatch):
    monkeypatch.setattr(conv_ops, "_park_fn", lambda: lambda: None)
    monkeypatch.setenv("RETROGRAD_BLAS_PARK", "0")
    assert not conv_ops._can_park()
    monkeypatch.setenv("RETROGRAD_BLAS_PARK", "1")
    import threading

    # (deterministic: only this thread exists as far as the check can see)
    monkeypatch.setattr(threading, "enumerate", lambda: [threading.current_thread()])
    assert conv_ops._can_park()

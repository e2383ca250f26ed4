"""Convolutions vs PyTorch: F.conv1d/conv2d/conv_transpose1d/2d, Conv1d/Conv2d/ConvTranspose*,
gradcheck/gradgradcheck, default init, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import retrograd as rg
import retrograd.nn.functional as F
from retrograd.autograd import gradcheck, gradgradcheck

RTOL, ATOL = 1e-4, 1e-5


def _arr(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _check_fn(torch, rng, f_rg, f_t, shapes):
    """Same inputs to both functions; outputs and every input gradient agree (float32)."""
    arrs = [_arr(rng, *s) if s is not None else None for s in shapes]
    xr = [rg.tensor(a, requires_grad=True) if a is not None else None for a in arrs]
    xt = [torch.tensor(a, requires_grad=True) if a is not None else None for a in arrs]
    yr, yt = f_rg(*xr), f_t(*xt)
    assert tuple(yr.shape) == tuple(yt.shape)
    assert yr.dtype == rg.float32
    np.testing.assert_allclose(yr.detach().numpy(), yt.detach().numpy(), rtol=RTOL, atol=ATOL)
    g = _arr(rng, *yt.shape)
    yr.backward(rg.tensor(g))
    yt.backward(torch.tensor(g))
    for a, b in zip(xr, xt):
        if a is None:
            continue
        assert a.grad.dtype == rg.float32
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=RTOL, atol=ATOL)


def _check_module(torch, rng, m, tm, xshape, train=True, **kw):
    """Identical weights via state dicts; outputs, input and parameter grads agree."""
    tm.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in m.state_dict().items()})
    m.train(train)
    tm.train(train)
    x = _arr(rng, *xshape)
    xr, xt = rg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yr, yt = m(xr, **kw), tm(xt, **kw)
    np.testing.assert_allclose(yr.detach().numpy(), yt.detach().numpy(), rtol=RTOL, atol=ATOL)
    g = _arr(rng, *yt.shape)
    yr.backward(rg.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(xr.grad.numpy(), xt.grad.numpy(), rtol=RTOL, atol=ATOL)
    tp = dict(tm.named_parameters())
    names = [n for n, _ in m.named_parameters()]
    assert names == list(tp)
    for n, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[n].grad.numpy(), rtol=RTOL, atol=ATOL)


CONV2D_CASES = [
    dict(),
    dict(stride=2),
    dict(stride=(2, 1), padding=(1, 2), dilation=(2, 1)),
    dict(padding="same"),
    dict(padding="same", dilation=2),
    dict(padding="valid", stride=3),
    dict(groups=2, padding=1),
    dict(groups=4, stride=2, padding=1),
]


@pytest.mark.parametrize("kw", CONV2D_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_matches_torch(torch, rng, kw, bias):
    groups = kw.get("groups", 1)
    shapes = [(2, 4, 9, 8), (6 if groups != 4 else 8, 4 // groups, 3, 3)]
    shapes.append((shapes[1][0],) if bias else None)
    _check_fn(torch, rng, lambda x, w, b: F.conv2d(x, w, b, **kw),
              lambda x, w, b: torch.nn.functional.conv2d(x, w, b, **kw), shapes)


@pytest.mark.parametrize("ksize", [(4, 3), (2, 2), (1, 5)])
def test_conv2d_same_even_kernel_pads_right(torch, rng, ksize):
    """'same' with an even kernel pads the extra pixel at the bottom/right, as PyTorch."""
    _check_fn(torch, rng, lambda x, w: F.conv2d(x, w, padding="same"),
              lambda x, w: torch.nn.functional.conv2d(x, w, padding="same"),
              [(2, 3, 7, 6), (5, 3) + ksize])


def test_conv2d_unbatched_and_input_without_grad(torch, rng):
    x, w = _arr(rng, 3, 6, 5), _arr(rng, 4, 3, 2, 2)
    wr = rg.tensor(w, requires_grad=True)
    y = F.conv2d(rg.tensor(x), wr, stride=1, padding=1)
    wt = torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv2d(torch.tensor(x), wt, padding=1)
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=RTOL, atol=ATOL)
    y.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(wr.grad.numpy(), wt.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_conv2d_backward_twice_with_retain_graph(rng):
    """The cached im2col matrix is dropped after the first backward and recomputed."""
    x = rg.tensor(_arr(rng, 2, 3, 5, 5), requires_grad=True)
    w = rg.tensor(_arr(rng, 4, 3, 3, 3), requires_grad=True)
    y = F.conv2d(x, w).sum()
    y.backward(retain_graph=True)
    g1 = w.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * g1, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=2, dilation=2), dict(groups=2),
                                dict(padding="same")])
def test_conv1d_matches_torch(torch, rng, kw):
    g = kw.get("groups", 1)
    _check_fn(torch, rng, lambda x, w, b: F.conv1d(x, w, b, **kw),
              lambda x, w, b: torch.nn.functional.conv1d(x, w, b, **kw),
              [(2, 4, 11), (6, 4 // g, 3), (6,)])


CONVT_CASES = [
    dict(),
    dict(stride=2),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2)),
    dict(groups=2, stride=2),
    dict(dilation=2, padding=1),
    dict(stride=3, dilation=2, output_padding=1),
    dict(stride=1, dilation=2, output_padding=1),  # output_padding >= stride (< dilation)
    dict(stride=(1, 2), dilation=(3, 2), output_padding=(2, 1), padding=1),
]


@pytest.mark.parametrize("kw", CONVT_CASES)
def test_conv_transpose2d_matches_torch(torch, rng, kw):
    g = kw.get("groups", 1)
    _check_fn(torch, rng, lambda x, w, b: F.conv_transpose2d(x, w, b, **kw),
              lambda x, w, b: torch.nn.functional.conv_transpose2d(x, w, b, **kw),
              [(2, 4, 5, 4), (4, 6 // g, 3, 2), (6,)])


def test_conv_transpose1d_matches_torch(torch, rng):
    kw = dict(stride=2, padding=1, output_padding=1)
    _check_fn(torch, rng, lambda x, w, b: F.conv_transpose1d(x, w, b, **kw),
              lambda x, w, b: torch.nn.functional.conv_transpose1d(x, w, b, **kw),
              [(2, 4, 6), (4, 3, 3), (3,)])


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("train", [True, False])
def test_conv2d_module_padding_modes(torch, rng, mode, train):
    m = rg.nn.Conv2d(4, 6, 3, padding=1, padding_mode=mode)
    tm = torch.nn.Conv2d(4, 6, 3, padding=1, padding_mode=mode)
    _check_module(torch, rng, m, tm, (2, 4, 7, 6), train)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "circular"])
def test_conv2d_module_same_grouped(torch, rng, mode):
    kw = dict(padding="same", dilation=(1, 2), groups=2, padding_mode=mode, bias=False)
    _check_module(torch, rng, rg.nn.Conv2d(4, 6, (4, 3), **kw), torch.nn.Conv2d(4, 6, (4, 3), **kw),
                  (2, 4, 9, 8))


@pytest.mark.parametrize("mode", ["zeros", "replicate"])
def test_conv1d_module(torch, rng, mode):
    kw = dict(stride=2, padding=2, padding_mode=mode)
    _check_module(torch, rng, rg.nn.Conv1d(3, 5, 3, **kw), torch.nn.Conv1d(3, 5, 3, **kw),
                  (2, 3, 10))


def test_conv_transpose2d_module(torch, rng):
    kw = dict(stride=2, padding=1, output_padding=1, groups=2)
    _check_module(torch, rng, rg.nn.ConvTranspose2d(4, 6, 3, **kw),
                  torch.nn.ConvTranspose2d(4, 6, 3, **kw), (2, 4, 5, 4))


def test_conv_transpose2d_module_output_size(torch, rng):
    m = rg.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1)
    tm = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1)
    _check_module(torch, rng, m, tm, (2, 4, 5, 4), output_size=(10, 8))
    with pytest.raises(ValueError, match="valid sizes range"):
        m(rg.ones(2, 4, 5, 4), output_size=(12, 8))


def test_conv_transpose1d_module(torch, rng):
    _check_module(torch, rng, rg.nn.ConvTranspose1d(3, 2, 4, stride=3),
                  torch.nn.ConvTranspose1d(3, 2, 4, stride=3), (2, 3, 5))


def test_conv_reprs_match_torch(torch):
    for args, kw in [((4, 6, 3), dict(padding=1, groups=2, bias=False, padding_mode="reflect")),
                     ((1, 32, 3), dict()), ((3, 3, (2, 5)), dict(stride=2, dilation=2))]:
        assert repr(rg.nn.Conv2d(*args, **kw)) == repr(torch.nn.Conv2d(*args, **kw))
    assert repr(rg.nn.ConvTranspose2d(4, 6, 3, stride=2, output_padding=1)) == repr(
        torch.nn.ConvTranspose2d(4, 6, 3, stride=2, output_padding=1))
    assert repr(rg.nn.Conv1d(2, 3, 5)) == repr(torch.nn.Conv1d(2, 3, 5))


@pytest.mark.parametrize("cls,args,fan_in", [
    ("Conv2d", (16, 32, 3), 16 * 9),
    ("Conv2d", (8, 16, (3, 5), 1, 0, 1, 4), 2 * 15),
    ("Conv1d", (10, 20, 7), 70),
    ("ConvTranspose2d", (12, 16, 3), 16 * 9),  # fan_in of the (C_in, C_out, k, k) weight
])
def test_default_init_statistics(torch, cls, args, fan_in):
    """Kaiming-uniform(a=sqrt(5)) => U(+-1/sqrt(fan_in)) for weight and bias, as PyTorch."""
    m = getattr(rg.nn, cls)(*args)
    tm = getattr(torch.nn, cls)(*args)
    bound = 1 / math.sqrt(fan_in)
    for name in ("weight", "bias"):
        a = getattr(m, name).detach().numpy()
        t = getattr(tm, name).detach().numpy()
        assert a.shape == t.shape and a.dtype == np.float32
        assert np.abs(a).max() <= bound + 1e-7
        assert np.abs(t).max() <= bound + 1e-7
        if a.size > 1000:
            np.testing.assert_allclose(a.std(), bound / math.sqrt(3), rtol=0.08)
            assert abs(a.mean()) < 0.1 * bound


def test_float64_stays_float64(rng):
    x = rg.tensor(rng.standard_normal((1, 2, 5, 5)), requires_grad=True)
    m = rg.nn.Conv2d(2, 3, 3).to(rg.float64)
    y = m(x)
    assert y.dtype == rg.float64
    y.sum().backward()
    assert x.grad.dtype == rg.float64 and m.weight.grad.dtype == rg.float64


def _t64(rng, *shape):
    return rg.tensor(rng.standard_normal(shape), dtype=rg.float64, requires_grad=True)


def test_gradcheck_conv2d(rng):
    x, w, b = _t64(rng, 2, 4, 5, 6), _t64(rng, 6, 2, 3, 2), _t64(rng, 6)

    def f(x, w, b):
        return F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)

    assert gradcheck(f, (x, w, b))
    assert gradgradcheck(f, (x, w, b))


def test_gradgradcheck_conv2d_same_padding(rng):
    x, w = _t64(rng, 1, 2, 4, 4), _t64(rng, 3, 2, 2, 3)
    assert gradgradcheck(lambda x, w: F.conv2d(x, w, padding="same"), (x, w))


def test_gradcheck_conv_transpose2d(rng):
    x, w, b = _t64(rng, 2, 4, 3, 4), _t64(rng, 4, 3, 3, 2), _t64(rng, 6)

    def f(x, w, b):
        return F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2)

    assert gradcheck(f, (x, w, b))
    assert gradgradcheck(f, (x, w, b))


def test_gradcheck_conv1d(rng):
    x, w, b = _t64(rng, 2, 4, 7), _t64(rng, 3, 4, 3), _t64(rng, 3)
    assert gradcheck(lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1), (x, w, b))


def test_double_backward_gradient_penalty_matches_torch(torch, rng):
    """d/dw of ||d conv(x,w).sum() / dx||^2: exercises the conv-transpose/weight-grad ops."""
    tf = torch.nn.functional
    x, w = _arr(rng, 2, 3, 6, 6), _arr(rng, 4, 3, 3, 3)
    xr, wr = rg.tensor(x, requires_grad=True), rg.tensor(w, requires_grad=True)
    (gx,) = rg.autograd.grad((F.conv2d(xr, wr, stride=2, padding=1) ** 2).sum(), [xr],
                             create_graph=True)
    (gx ** 2).sum().backward()
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    (gxt,) = torch.autograd.grad((tf.conv2d(xt, wt, stride=2, padding=1) ** 2).sum(),
                                 [xt], create_graph=True)
    (gxt ** 2).sum().backward()
    np.testing.assert_allclose(wr.grad.numpy(), wt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(xr.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)


# --- errors -----------------------------------------------------------------------------


def test_wrong_channel_count_message():
    x, w = rg.zeros(64, 3, 26, 26), rg.zeros(64, 32, 3, 3)
    msg = ("Given groups=1, weight of size [64, 32, 3, 3], expected input[64, 3, 26, 26] to have "
           "32 channels, but got 3 channels instead")
    with pytest.raises(RuntimeError) as e:
        F.conv2d(x, w)
    assert str(e.value) == msg
    with pytest.raises(RuntimeError, match="expected input\\[2, 3, 10\\] to have 4 channels"):
        F.conv1d(rg.zeros(2, 3, 10), rg.zeros(5, 4, 3))
    with pytest.raises(RuntimeError, match="to have 32 channels"):
        rg.nn.Conv2d(32, 8, 3)(rg.zeros(1, 16, 8, 8))


def test_conv_errors():
    with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
        F.conv2d(rg.zeros(1, 1, 2, 2), rg.zeros(1, 1, 3, 3))
    with pytest.raises(RuntimeError, match="Expected 3D \\(unbatched\\) or 4D \\(batched\\)"):
        F.conv2d(rg.zeros(2, 3), rg.zeros(1, 1, 3, 3))
    with pytest.raises(RuntimeError, match="divisible by 2 at dimension 0"):
        F.conv2d(rg.zeros(1, 2, 5, 5), rg.zeros(3, 1, 3, 3), groups=2)
    with pytest.raises(RuntimeError, match="expected bias to be 1-dimensional with 4 elements"):
        F.conv2d(rg.zeros(1, 2, 5, 5), rg.zeros(4, 2, 3, 3), rg.zeros(3))
    with pytest.raises(RuntimeError, match="not supported for strided convolutions"):
        F.conv2d(rg.zeros(1, 2, 5, 5), rg.zeros(4, 2, 3, 3), padding="same", stride=2)
    with pytest.raises(ValueError, match="Invalid padding string"):
        F.conv2d(rg.zeros(1, 2, 5, 5), rg.zeros(4, 2, 3, 3), padding="full")
    with pytest.raises(RuntimeError, match="non-positive stride"):
        F.conv2d(rg.zeros(1, 2, 5, 5), rg.zeros(4, 2, 3, 3), stride=0)
    with pytest.raises(RuntimeError, match="negative padding"):
        F.conv2d(rg.zeros(1, 2, 5, 5), rg.zeros(4, 2, 3, 3), padding=-1)
    with pytest.raises(RuntimeError, match="should be the same"):
        F.conv2d(rg.zeros(1, 2, 5, 5, dtype=rg.float64), rg.zeros(4, 2, 3, 3))
    with pytest.raises(RuntimeError, match="output padding must be smaller"):
        F.conv_transpose2d(rg.zeros(1, 2, 3, 3), rg.zeros(2, 2, 3, 3), stride=2, output_padding=2)


def test_conv_module_construction_errors():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        rg.nn.Conv2d(3, 6, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        rg.nn.Conv2d(4, 5, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        rg.nn.Conv2d(4, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="strided convolutions"):
        rg.nn.Conv2d(4, 4, 3, padding="same", stride=2)
    with pytest.raises(ValueError, match="zeros"):
        rg.nn.ConvTranspose2d(4, 4, 3, padding_mode="reflect")


def test_mnist_net_convs_train_step_matches_torch(torch, rng):
    """PyTorch's MNIST example trunk: conv 1->32, conv 32->64, max_pool2d(2)."""
    m1, m2 = rg.nn.Conv2d(1, 32, 3, 1), rg.nn.Conv2d(32, 64, 3, 1)
    t1, t2 = torch.nn.Conv2d(1, 32, 3, 1), torch.nn.Conv2d(32, 64, 3, 1)
    for a, b in ((m1, t1), (m2, t2)):
        b.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in a.state_dict().items()})
    x = _arr(rng, 8, 1, 28, 28)
    yr = F.max_pool2d(F.relu(m2(F.relu(m1(rg.tensor(x))))), 2)
    yt = torch.nn.functional.max_pool2d(
        torch.relu(t2(torch.relu(t1(torch.tensor(x))))), 2)
    np.testing.assert_allclose(yr.detach().numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    g = _arr(rng, *yt.shape)
    yr.backward(rg.tensor(g))
    yt.backward(torch.tensor(g))
    for a, b in ((m1, t1), (m2, t2)):
        np.testing.assert_allclose(a.weight.grad.numpy(), b.weight.grad.numpy(), rtol=1e-4,
                                   atol=1e-4)
        np.testing.assert_allclose(a.bias.grad.numpy(), b.bias.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_random_geometries_match_torch(torch):
    """A seeded sweep over kernel/stride/dilation/padding/groups/output_padding: values and
    gradients of conv2d and conv_transpose2d agree with PyTorch."""
    rng = np.random.default_rng(11)
    tf = torch.nn.functional
    done = 0
    while done < 40:
        g = int(rng.choice([1, 2]))
        c, o = g * int(rng.integers(1, 3)), g * int(rng.integers(1, 3))
        k = tuple(int(v) for v in rng.integers(1, 4, 2))
        st = tuple(int(v) for v in rng.integers(1, 4, 2))
        dil = tuple(int(v) for v in rng.integers(1, 3, 2))
        pad = tuple(int(v) for v in rng.integers(0, 3, 2))
        hw = tuple(int(v) for v in rng.integers(1, 8, 2))
        opad = tuple(int(rng.integers(0, max(a, b))) for a, b in zip(st, dil))
        w = _arr(rng, o, c // g, *k)
        conv = dict(stride=st, padding=pad, dilation=dil, groups=g)
        convt = dict(conv, output_padding=opad)
        for fr, ft, xshape, kw in ((F.conv2d, tf.conv2d, (2, c) + hw, conv),
                                   (F.conv_transpose2d, tf.conv_transpose2d, (2, o) + hw, convt)):
            try:
                yt = ft(torch.zeros(xshape), torch.tensor(w), **kw)
            except RuntimeError:
                with pytest.raises(RuntimeError):
                    fr(rg.zeros(*xshape), rg.tensor(w), **kw)
                continue
            if 0 in tuple(yt.shape):
                continue
            done += 1
            _check_fn(torch, rng, lambda x, w, fr=fr, kw=kw: fr(x, w, **kw),
                      lambda x, w, ft=ft, kw=kw: ft(x, w, **kw), [xshape, w.shape])

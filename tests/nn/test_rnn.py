"""RNN / LSTM / GRU and their cells vs PyTorch with identical weights (state dicts)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import retrograd as rg
from retrograd.autograd import gradcheck, gradgradcheck

RTOL, ATOL = 1e-4, 1e-5


def _flat(o):
    if isinstance(o, tuple | list):
        return [x for y in o for x in _flat(y)]
    return [o]


def _compare(torch, cls, args, kw, xshape, hshapes=(), train=False):
    rng = np.random.default_rng(0)
    m, tm = getattr(rg.nn, cls)(*args, **kw), getattr(torch.nn, cls)(*args, **kw)
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in tm.named_parameters()]
    tm.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in m.state_dict().items()})
    m.train(train)
    tm.train(train)
    x = rng.standard_normal(xshape).astype(np.float32)
    R, T = [rg.tensor(x, requires_grad=True)], [torch.tensor(x, requires_grad=True)]
    hr = ht = None
    if hshapes:
        hs = [rng.standard_normal(s).astype(np.float32) for s in hshapes]
        R += [rg.tensor(h, requires_grad=True) for h in hs]
        T += [torch.tensor(h, requires_grad=True) for h in hs]
        hr = tuple(R[1:]) if len(hs) > 1 else R[1]
        ht = tuple(T[1:]) if len(hs) > 1 else T[1]
    yr, yt = _flat(m(R[0], hr)), _flat(tm(T[0], ht))
    assert [tuple(a.shape) for a in yr] == [tuple(a.shape) for a in yt]
    for a, b in zip(yr, yt):
        assert a.dtype == rg.float32
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=RTOL, atol=ATOL)
    gs = [rng.standard_normal(tuple(a.shape)).astype(np.float32) for a in yt]
    sum((a * rg.tensor(g)).sum() for a, g in zip(yr, gs)).backward()
    sum((a * torch.tensor(g)).sum() for a, g in zip(yt, gs)).backward()
    for a, b in zip(R, T):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=RTOL, atol=ATOL)
    tp = dict(tm.named_parameters())
    for n, p in m.named_parameters():
        assert p.grad.dtype == rg.float32
        np.testing.assert_allclose(p.grad.numpy(), tp[n].grad.numpy(), rtol=RTOL, atol=1e-4,
                                   err_msg=n)


MODELS = ["RNN", "LSTM", "GRU"]


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("T", [1, 50])
def test_sequence_lengths_1_and_50(torch, cls, T):
    _compare(torch, cls, (4, 6), {}, (T, 3, 4))


@pytest.mark.parametrize("cls", MODELS)
def test_two_layers_batch_first(torch, cls):
    _compare(torch, cls, (4, 6), dict(num_layers=2, batch_first=True), (3, 20, 4))


@pytest.mark.parametrize("cls", MODELS)
def test_bidirectional_with_initial_state(torch, cls):
    hs = [(4, 3, 6)] * (2 if cls == "LSTM" else 1)
    _compare(torch, cls, (4, 6), dict(num_layers=2, bidirectional=True), (7, 3, 4), hs)


@pytest.mark.parametrize("cls", MODELS)
def test_unbatched_no_bias(torch, cls):
    hs = [(1, 6)] * (2 if cls == "LSTM" else 1)
    _compare(torch, cls, (4, 6), dict(bias=False), (7, 4))
    _compare(torch, cls, (4, 6), dict(bias=False), (7, 4), hs)


def test_rnn_relu(torch):
    _compare(torch, "RNN", (4, 6), dict(nonlinearity="relu", num_layers=2), (9, 3, 4))


def test_lstm_proj_size(torch):
    _compare(torch, "LSTM", (4, 6), dict(proj_size=3, num_layers=2, bidirectional=True), (7, 3, 4),
             [(4, 3, 3), (4, 3, 6)])


@pytest.mark.parametrize("cls", MODELS)
def test_train_mode_dropout_between_layers(torch, cls):
    """dropout=1 between layers is deterministic (zeros), so train mode can be compared."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _compare(torch, cls, (4, 6), dict(num_layers=2, dropout=1.0), (5, 3, 4), train=True)
        _compare(torch, cls, (4, 6), dict(num_layers=2, dropout=0.0), (5, 3, 4), train=True)


def test_dropout_is_random_in_train_only():
    m = rg.nn.LSTM(4, 6, num_layers=2, dropout=0.5)
    x = rg.randn(5, 3, 4)
    m.eval()
    a, b = m(x)[0].detach().numpy(), m(x)[0].detach().numpy()
    np.testing.assert_array_equal(a, b)
    m.train()
    assert not np.allclose(m(x)[0].detach().numpy(), a)


@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells(torch, cls):
    n = 2 if cls == "LSTMCell" else 1
    _compare(torch, cls, (4, 6), {}, (3, 4))
    _compare(torch, cls, (4, 6), {}, (3, 4), [(3, 6)] * n)
    _compare(torch, cls, (4, 6), dict(bias=False), (4,), [(6,)] * n)


def test_rnn_cell_relu(torch):
    _compare(torch, "RNNCell", (4, 6), dict(nonlinearity="relu"), (3, 4), [(3, 6)])


@pytest.mark.parametrize("cls,args", [("LSTM", (20, 64)), ("GRU", (20, 64)), ("RNN", (20, 64)),
                                      ("LSTMCell", (20, 64)), ("GRUCell", (20, 64))])
def test_default_init_and_names_match_torch(torch, cls, args):
    m, tm = getattr(rg.nn, cls)(*args), getattr(torch.nn, cls)(*args)
    assert list(m.state_dict()) == list(tm.state_dict())
    bound = 1 / math.sqrt(args[1])
    for p, tp in zip(m.parameters(), tm.parameters()):
        a = p.detach().numpy()
        assert a.shape == tuple(tp.shape) and a.dtype == np.float32
        assert np.abs(a).max() <= bound + 1e-7
        if a.size > 1000:
            np.testing.assert_allclose(a.std(), bound / math.sqrt(3), rtol=0.05)
    assert repr(m) == repr(tm)


def test_reprs(torch):
    for cls, kw in [("LSTM", dict(num_layers=2, batch_first=True, bidirectional=True)),
                    ("GRU", dict(bias=False, dropout=0.5, num_layers=2)),
                    ("RNN", dict(nonlinearity="relu"))]:
        assert repr(getattr(rg.nn, cls)(3, 4, **kw)) == repr(getattr(torch.nn, cls)(3, 4, **kw))


def test_gradcheck_lstm_and_gru_float64():
    rng = np.random.default_rng(0)
    for cls in ("LSTM", "GRU"):
        m = getattr(rg.nn, cls)(2, 3).to(rg.float64)
        x = rg.tensor(rng.standard_normal((4, 2, 2)), requires_grad=True)
        h0 = rg.tensor(rng.standard_normal((1, 2, 3)), requires_grad=True)
        assert m.weight_hh_l0.dtype == rg.float64
        if cls == "LSTM":
            c0 = rg.tensor(rng.standard_normal((1, 2, 3)), requires_grad=True)
            assert gradcheck(lambda x, h, c, m=m: m(x, (h, c))[0], (x, h0, c0))
        else:
            assert gradcheck(lambda x, h, m=m: m(x, h)[0], (x, h0))


def test_rnn_errors():
    m = rg.nn.LSTM(4, 6)
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size"):
        m(rg.zeros(5, 3, 5))
    with pytest.raises(RuntimeError, match="Expected hidden size \\(1, 3, 6\\), got \\[1, 2, 6\\]"):
        m(rg.zeros(5, 3, 4), (rg.zeros(1, 2, 6), rg.zeros(1, 3, 6)))
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D"):
        m(rg.zeros(5, 3, 4, 1))
    with pytest.raises(RuntimeError, match="hx and cx should also be 3-D"):
        m(rg.zeros(5, 3, 4), (rg.zeros(3, 6), rg.zeros(3, 6)))
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        rg.nn.RNN(4, 6, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        rg.nn.GRU(4, 6, dropout=1.5)
    with pytest.raises(ValueError, match="proj_size has to be smaller"):
        rg.nn.LSTM(4, 6, proj_size=6)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        rg.nn.GRU(4, 6, dropout=0.5)
    with pytest.raises(RuntimeError, match="input has inconsistent input_size"):
        rg.nn.GRUCell(4, 6)(rg.zeros(3, 5))


@pytest.mark.parametrize("cls", ["LSTMCell", "GRUCell", "LSTM", "GRU"])
def test_gradgradcheck_fused_cells(cls):
    """The fused gate primitives differentiate twice (Tensor-op vjp under create_graph)."""
    rng = np.random.default_rng(0)
    m = getattr(rg.nn, cls)(2, 3).to(rg.float64)
    seq = cls in ("LSTM", "GRU")
    x = rg.tensor(rng.standard_normal((3, 2, 2) if seq else (2, 2)), requires_grad=True)
    h0 = rg.tensor(rng.standard_normal((1, 2, 3) if seq else (2, 3)), requires_grad=True)
    c0 = rg.tensor(rng.standard_normal(tuple(h0.shape)), requires_grad=True)
    lstm = cls.startswith("LSTM")

    def f(x, h, c):
        out = m(x, (h, c) if lstm else h)
        return out[0] if seq else (out[0] * out[1] if lstm else out)

    assert gradgradcheck(f, (x, h0, c0) if lstm else (x, h0, c0.detach()))

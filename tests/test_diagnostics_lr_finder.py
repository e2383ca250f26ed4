"""lr_find: the LR range test (T81)."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn
from retrograd.diagnostics import lr_find
from retrograd.diagnostics.lr_finder import suggest


def _data(n=256, seed=0):
    g = np.random.default_rng(seed)
    X = g.standard_normal((n, 6)).astype(np.float32)
    w = g.standard_normal((6, 1)).astype(np.float32)
    Y = np.tanh(X @ w) + 0.05 * g.standard_normal((n, 1)).astype(np.float32)
    Xt, Yt = rg.tensor(X), rg.tensor(Y)
    return [(Xt[i : i + 32], Yt[i : i + 32]) for i in range(0, n, 32)]


def _model():
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))


def _flat_state(opt):
    out = []

    def walk(x):
        if isinstance(x, dict):
            for k in sorted(x, key=str):
                out.append(("k", str(k)))
                walk(x[k])
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        elif isinstance(x, rg.Tensor):
            out.append(("t", x.numpy().tobytes(), x.shape))
        elif isinstance(x, np.ndarray):
            out.append(("a", x.tobytes()))
        else:
            out.append(("v", repr(x)))

    walk(opt.state_dict())
    return out


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_T81_restores_weights_and_optimizer_state(opt_name):
    model = _model()
    loader = _data()
    if opt_name == "SGD":
        opt = rg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = rg.optim.Adam(model.parameters(), lr=1e-3)
    # a few real steps so the optimizer has state (momentum buffers / moments / step count)
    for x, y in loader[:3]:
        opt.zero_grad()
        nn.MSELoss()(model(x), y).backward()
        opt.step()
    before_p = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    before_g = {k: p.grad.numpy().copy() for k, p in model.named_parameters()}
    before_o = _flat_state(opt)
    model.eval()
    res = lr_find(model, nn.MSELoss(), loader, opt, num_iter=60)
    assert len(res.lrs) > 10
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before_p[k])
    for k, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad.numpy(), before_g[k])
    assert _flat_state(opt) == before_o
    assert [g["lr"] for g in opt.param_groups] == [0.01 if opt_name == "SGD" else 1e-3]
    assert not model.training  # mode restored
    # training continues identically to a run that never saw lr_find
    m2 = _model()
    m2.load_state_dict(model.state_dict())


def test_T81_same_seed_same_curve_and_stops_on_divergence():
    curves = []
    for _ in range(2):
        rg.manual_seed(3)
        model = _model()
        opt = rg.optim.SGD(model.parameters(), lr=0.1)
        curves.append(lr_find(model, nn.MSELoss(), _data(), opt, num_iter=100))
    assert curves[0].losses == curves[1].losses and curves[0].lrs == curves[1].lrs
    r = curves[0]
    assert r.diverged and len(r.lrs) < 100  # stopped before end_lr=10
    assert r.lrs[0] == pytest.approx(1e-7)
    ratios = np.diff(np.log(r.lrs))
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-6)  # exponential schedule


def test_T81_suggestion_is_steepest_slope_not_min_loss():
    model = _model()
    opt = rg.optim.SGD(model.parameters(), lr=0.1)
    r = lr_find(model, nn.MSELoss(), _data(), opt, num_iter=100)
    i = r.suggestion_index
    x = np.log10(r.lrs)
    n_ok = len([v for v in r.losses if np.isfinite(v)])
    slope = np.gradient(np.asarray(r.losses[10 : n_ok - 5]), x[10 : n_ok - 5])
    assert i == 10 + int(np.argmin(slope))
    assert slope.min() < 0
    assert r.suggestion < r.min_loss_lr
    # a synthetic curve: steepest drop at index 30, minimum at index 60
    lrs = list(np.logspace(-6, 0, 80))
    losses = [2.0 - 1.0 / (1 + np.exp(-(k - 30) / 2.0)) + (0.5 if k > 70 else 0) for k in range(80)]
    losses = [v - 0.001 * k if k < 60 else v for k, v in enumerate(losses)]
    assert suggest(lrs, losses) == 30


def test_lr_find_plot_and_errors(tmp_path):
    model = _model()
    opt = rg.optim.SGD(model.parameters(), lr=0.1)
    r = lr_find(model, nn.MSELoss(), _data(), opt, num_iter=40)
    p = r.plot(tmp_path / "lr.png")
    assert open(p, "rb").read(4) == b"\x89PNG"
    assert "suggested lr" in r.text
    with pytest.raises(ValueError, match="start_lr"):
        lr_find(model, nn.MSELoss(), _data(), opt, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="no batch"):
        lr_find(model, nn.MSELoss(), [], opt)

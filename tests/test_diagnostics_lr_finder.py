"""lr_find: the LR range test (T81)."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn
from retrograd.diagnostics import lr_find
from retrograd.diagnostics.lr_finder import find_valley, smooth_curve, suggest, suggest_steep


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
    assert curves[0].curve == curves[1].curve and curves[0].suggestion == curves[1].suggestion
    r = curves[0]
    assert r.diverged and len(r.lrs) < 100  # stopped before end_lr=10
    assert r.lrs[0] == pytest.approx(1e-7)
    ratios = np.diff(np.log(r.lrs))
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-6)  # exponential schedule


def _synthetic(n_per_decade=25, noise=0.0, seed=0):
    """A range-test curve with a known valley: flat at 2 up to lr 1e-4, falling linearly in
    log(loss) to 0.5 at lr 1e-2, flat at 0.5 up to lr 0.1, then diverging."""
    lx = np.arange(-7, 0.5 + 1e-9, 1 / n_per_decade)
    y = np.where(lx < -4, np.log(2.0), np.log(2.0) - np.log(4.0) * (lx + 4) / 2)
    y = np.where(lx >= -2, np.log(0.5), y)
    y = np.where(lx > -1, np.log(0.5) + 3 * (lx + 1), y)
    y = y + noise * np.random.default_rng(seed).standard_normal(len(y))
    return list(10.0**lx), list(np.exp(y))


def test_T81_suggestion_inside_valley_not_min_loss_known_valley():
    lrs, losses = _synthetic()
    i = suggest(lrs, losses, width=0)
    # floor: first point within 5 % of the depth above the minimum, at log10 lr = -2.1;
    # suggestion: half of it, on the straight (steepest) descent between 1e-4 and 1e-2
    assert np.log10(lrs[i]) == pytest.approx(-2.1 - np.log10(2), abs=0.5 / 25)
    a, b = find_valley(lrs, np.log(losses))
    assert np.log10(lrs[a]) == pytest.approx(-4 + 0.1, abs=0.05)
    assert np.log10(lrs[b]) == pytest.approx(-2.1, abs=0.05)
    slope = np.gradient(np.log(losses), np.log10(lrs))
    assert slope[i] == pytest.approx(slope.min())  # in the steepest-descent region
    assert lrs[i] < lrs[int(np.argmin(losses))]  # not at the minimum loss


def test_T81_suggestion_robust_to_noisy_plateau():
    lrs, clean = _synthetic()
    ref = lrs[suggest(lrs, clean)]
    # 5 % batch-to-batch noise on the loss
    picks = [lrs[suggest(lrs, _synthetic(noise=0.05, seed=s)[1])] for s in range(10)]
    assert all(1 / 1.7 < p / ref < 1.7 for p in picks), (ref, picks)
    # the classic steepest-slope rule on the same noisy curves is scattered over decades
    steep = [lrs[suggest_steep(lrs, _synthetic(noise=0.05, seed=s)[1])] for s in range(10)]
    assert max(steep) / min(steep) > 10


def test_T81_divergence_spike_and_recovery_not_picked():
    lrs, losses = _synthetic()
    lx = np.log10(lrs)
    i0 = suggest(lrs, losses)
    spiky = np.array(losses)
    spiky[np.argmin(np.abs(lx + 3))] *= 10  # one bad batch inside the descent
    assert lrs[suggest(lrs, list(spiky))] == pytest.approx(lrs[i0], rel=0.2)
    # the classic rule picks the drop right after the spike
    assert abs(np.log10(lrs[suggest_steep(lrs, list(spiky))]) + 3) < 0.1
    # after the floor: a blow-up and a steep (but incomplete) recovery
    rec = np.where((lx > -0.6) & (lx <= 0), 5.0 - 4.0 * (lx + 0.6) / 0.6, np.array(losses))
    assert lrs[suggest(lrs, list(rec))] == pytest.approx(lrs[i0], rel=0.2)
    assert lrs[suggest_steep(lrs, list(rec))] > 0.1  # the classic rule picks the recovery


def test_suggest_edge_cases():
    lrs = list(np.logspace(-6, 0, 60))
    assert suggest(lrs, list(np.linspace(1, 3, 60))) is None  # no descent at all
    lrs2, losses = _synthetic()
    shifted = [v - 3 for v in losses]  # negative losses: smoothed linearly, still a valley
    i = suggest(lrs2, shifted)
    a, b = find_valley(lrs2, smooth_curve(lrs2, shifted)[0])
    assert i is not None and a <= i <= b
    with pytest.raises(ValueError, match="lrs"):
        suggest(lrs, [1.0])


def test_T81_real_run_suggestion_in_valley():
    model = _model()
    opt = rg.optim.SGD(model.parameters(), lr=0.1)
    r = lr_find(model, nn.MSELoss(), _data(), opt)
    assert r.suggestion is not None and r.valley is not None
    lo, floor = r.valley
    assert lo <= r.suggestion <= floor and r.suggestion < r.min_loss_lr
    assert set(r.suggestions) == {"valley", "steep", "minimum"}
    assert len(r.curve) == len([v for v in r.raw_losses if np.isfinite(v)])
    assert r.settings["num_iter"] == 200 and r.settings["width"] == 0.1


def test_moons_suggestion_within_3x_of_grid():
    """Issue #5 in small: the finder's pick vs the best of a grid on the moons MLP."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import _lr_common as C

    d = C.moons()
    res = C.find_lr(C.moons_mlp, d, 64)
    grid = [10 ** (k / 3) for k in range(-6, 1)]  # 0.01 .. 1
    vals = [C.train(C.moons_mlp, d, lr, 300, 64)[1] for lr in grid]
    best = grid[int(np.argmin(vals))]
    assert max(res.suggestion / best, best / res.suggestion) <= 3, (res.suggestion, best)
    assert C.train(C.moons_mlp, d, res.suggestion, 300, 64)[1] < 0.01  # and it trains


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
    with pytest.raises(ValueError, match="width"):
        lr_find(model, nn.MSELoss(), _data(), opt, width=-1)

"""GradientMonitor and its verdicts (T77 vanishing, T78 exploding, T79 dead ReLU, non-finite)."""

from __future__ import annotations

import math

import numpy as np

import retrograd as rg
from retrograd import nn
from retrograd.diagnostics import GradientMonitor, Thresholds, diagnose, load_history


def mlp(act, depth=20, width=32, d_in=8):
    layers = [nn.Linear(d_in, width), act()]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), act()]
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.ln = nn.LayerNorm(width)
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        return x + self.fc(self.ln(x).relu())


class ResLN(nn.Module):
    def __init__(self, depth=20, width=32, d_in=8):
        super().__init__()
        self.inp = nn.Linear(d_in, width)
        self.blocks = nn.Sequential(*[Block(width) for _ in range(depth)])
        self.out = nn.Linear(width, 1)

    def forward(self, x):
        return self.out(self.blocks(self.inp(x)))


def train(model, steps=6, lr=0.05, every=1, x=None, y=None, opt_attach=True, quiet=False):
    x = rg.randn(64, 8) if x is None else x
    y = rg.randn(64, 1) if y is None else y
    opt = rg.optim.SGD(model.parameters(), lr=lr)
    mon = GradientMonitor(model, every=every)
    if opt_attach:
        mon.attach_optimizer(opt)
    for _ in range(steps):
        opt.zero_grad()
        with np.errstate(all="ignore" if quiet else "warn"):
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
        mon.step(loss)
        opt.step()
    return mon


def kinds(mon):
    return [v.kind for v in mon.verdicts()]


def test_T77_vanishing_sigmoid20_flagged_and_named():
    mon = train(mlp(nn.Sigmoid))
    vs = {v.kind: v for v in mon.verdicts()}
    assert "vanishing" in vs
    ev = vs["vanishing"].evidence
    assert ev["first_to_last_ratio"] < 1e-3
    assert vs["vanishing"].layers  # names the layers
    assert "0" in vs["vanishing"].message and "38" in vs["vanishing"].message
    assert any("residual" in c for c in vs["vanishing"].cures)
    # the per-layer norms really do shrink towards the input
    norms = ev["layer_grad_norms"]
    assert norms["0"] < 1e-3 * norms["38"]


def test_T77_residual_layernorm_not_vanishing():
    mon = train(ResLN(), lr=1e-3)
    assert "vanishing" not in kinds(mon)
    assert "exploding" not in kinds(mon)
    layers = mon.history["layers"]
    assert layers[0] == "inp" and layers[-1] == "out"  # forward order


def test_T78_exploding_large_init_flagged_default_not():
    rg.manual_seed(1)
    big = mlp(nn.ReLU, depth=10)
    with rg.no_grad():
        for p in big.parameters():
            p.mul_(10.0)
    mon = train(big, steps=3, lr=1e-6, quiet=True)
    vs = {v.kind: v for v in mon.verdicts()}
    assert "exploding" in vs
    assert any(s[1] > 1e3 for s in vs["exploding"].evidence["total_norms"])
    assert any("clip_grad_norm_" in c for c in vs["exploding"].cures)
    assert any("learning rate" in c for c in vs["exploding"].cures)
    rg.manual_seed(1)
    mon = train(mlp(nn.ReLU, depth=10), steps=3, lr=1e-6)
    assert "exploding" not in kinds(mon)


def test_T79_dead_relu_bias_minus_10():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    with rg.no_grad():
        model[0].bias.fill_(-10.0)
    mon = train(model, steps=2)
    vs = {v.kind: v for v in mon.verdicts()}
    assert "dead_units" in vs
    assert vs["dead_units"].evidence["dead_fraction"]["1"] == 1.0
    assert "100%" in vs["dead_units"].message
    # and the healthy version is not flagged
    mon = train(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1)), steps=2)
    assert "dead_units" not in kinds(mon)


def test_non_finite_detected_and_located():
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1))
    mon = GradientMonitor(net, every=1)
    x = rg.randn(3, 4)
    x[1, 2] = float("nan")  # one NaN feature (T43)
    with np.errstate(all="ignore"):
        loss = net(x).sum()
        loss.backward()
    mon.step(loss)
    vs = {v.kind: v for v in mon.verdicts()}
    assert "non_finite" in vs
    v = vs["non_finite"]
    assert v.evidence["loss_steps"] == [0]
    assert v.layers[0] == "0"  # the first layer whose output went non-finite
    assert "'0'" in v.message
    healthy = GradientMonitor(nn.Sequential(nn.Linear(4, 1)), every=1)
    assert "non_finite" not in [k.kind for k in healthy.verdicts()]


def test_saturation_flagged():
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    with rg.no_grad():
        model[0].weight.mul_(100.0)
    mon = train(model, steps=1)
    assert "saturation" in kinds(mon)


def test_lr_too_high_and_too_low():
    rg.manual_seed(0)
    x, y = rg.randn(64, 8), rg.randn(64, 1)
    mon = train(
        nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1)),
        steps=30,
        lr=3.0,
        x=x,
        y=y,
        quiet=True,
    )
    assert "lr_too_high" in kinds(mon)
    mon = train(
        nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1)), steps=30, lr=1e-7, x=x, y=y
    )
    ks = kinds(mon)
    assert "lr_too_low" in ks and "lr_too_high" not in ks
    mon = train(
        nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1)), steps=30, lr=0.05, x=x, y=y
    )
    assert not {"lr_too_low", "lr_too_high"} & set(kinds(mon))


def test_update_ratio_matches_manual_and_without_optimizer_hook():
    model = nn.Sequential(nn.Linear(8, 2))
    for attach in (True, False):
        w0 = model[0].weight.detach().numpy().copy()
        mon = train(model, steps=2, lr=0.1, opt_attach=attach)
        rec = mon.history["records"][0]
        mon.detach()
        assert rec["params"]["0.weight"]["update_ratio"] is not None
        g = rec["params"]["0.weight"]["grad_norm"]
        # SGD: |dw| = lr * |g|
        assert math.isclose(
            rec["params"]["0.weight"]["update_ratio"], 0.1 * g / np.linalg.norm(w0), rel_tol=1e-4
        )


def test_every_and_detach_leave_no_hooks():
    model = mlp(nn.ReLU, depth=3)
    mon = train(model, steps=7, every=3)
    assert [r["step"] for r in mon.history["records"]] == [0, 3, 6]
    assert len(mon.history["losses"]) == 7
    mon.detach()
    assert all(not m._forward_hooks for m in model.modules())
    with GradientMonitor(model) as m2:
        assert any(m._forward_hooks for m in model.modules())
    assert all(not m._forward_hooks for m in model.modules())
    del m2


def test_report_html_plot_save_load(tmp_path):
    mon = train(mlp(nn.Sigmoid, depth=6), steps=3)
    text = mon.report()
    assert "layer" in text and "|grad|" in text and "Verdict" in text or "[" in text
    assert "<table" in mon.to_html()
    png = mon.plot(tmp_path / "m.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    path = mon.save(tmp_path / "h.json")
    h = load_history(path)
    assert [v.kind for v in diagnose(h)] == kinds(mon)


def test_thresholds_configurable():
    mon = train(mlp(nn.Sigmoid, depth=6), steps=2)
    assert "vanishing" not in [
        v.kind for v in mon.verdicts(Thresholds(vanish_ratio=1e-30, vanish_abs=0.0))
    ]
    assert "vanishing" in [v.kind for v in mon.verdicts(Thresholds(vanish_ratio=10.0))]


def test_dead_units_needs_enough_samples():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    mon = GradientMonitor(model, every=1)
    loss = model(rg.randn(1, 8)).sum()  # one sample: about half the units are 0 by chance
    loss.backward()
    mon.step(loss)
    assert mon.history["records"][0]["acts"]["1"]["dead"] is None
    assert "dead_units" not in kinds(mon)


def test_conv_net_activations_and_report():
    model = rg.models.LeNet(channels=(4, 8), hidden=16)
    opt = rg.optim.SGD(model.parameters(), lr=0.01)
    with GradientMonitor(model, every=1) as mon:
        mon.attach_optimizer(opt)
        x, y = rg.randn(8, 1, 28, 28), rg.randint(0, 10, (8,))
        for _ in range(2):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            mon.step(loss)
            opt.step()
    rec = mon.history["records"][-1]
    conv_relu = [n for n, a in rec["acts"].items() if a["kind"] == "relu"]
    assert conv_relu and all(0 <= rec["acts"][n]["dead"] <= 1 for n in conv_relu)
    assert mon.history["layers"][0].startswith("features")  # forward order: convs first
    assert all(rec["layers"][n]["update_ratio"] is not None for n in mon.history["layers"])
    assert "Conv2d" in mon.report()

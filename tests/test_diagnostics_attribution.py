"""attribute(): saliency, grad x input, integrated gradients (completeness), token inputs."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn
from retrograd.diagnostics import attribute


def _mlp():
    return nn.Sequential(
        nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Sigmoid(), nn.Linear(16, 4)
    )


def test_integrated_gradients_completeness_within_1pct():
    model = _mlp()
    x = rg.randn(3, 6) * 2
    a = attribute(model, x, target=[1, 2, 3], method="integrated_gradients", steps=50)
    out = model(x)._data
    base = model(rg.zeros(3, 6))._data
    for i, t in enumerate([1, 2, 3]):
        diff = out[i, t] - base[i, t]
        assert a.attributions[i].sum() == pytest.approx(diff, rel=0.01, abs=1e-6)
    assert a.completeness_error < 0.01
    # nonzero baseline
    b = rg.randn(1, 6)
    a2 = attribute(model, x, target=0, method="integrated_gradients", baseline=b)
    diff = model(x)._data[:, 0] - model(b)._data[0, 0]
    np.testing.assert_allclose(a2.attributions.reshape(3, -1).sum(1), diff, rtol=0.01, atol=1e-6)


def test_saliency_and_grad_x_input_match_torch(torch):
    model = _mlp()
    x = rg.randn(2, 6)
    tm = torch.nn.Sequential(
        torch.nn.Linear(6, 16),
        torch.nn.Tanh(),
        torch.nn.Linear(16, 16),
        torch.nn.Sigmoid(),
        torch.nn.Linear(16, 4),
    )
    with torch.no_grad():
        for (_, p), (_, q) in zip(model.named_parameters(), tm.named_parameters()):
            q.copy_(torch.from_numpy(p.detach().numpy()))
    xt = torch.from_numpy(x.numpy().copy()).requires_grad_(True)
    out = tm(xt)
    tgt = out.argmax(1)
    out.gather(1, tgt[:, None]).sum().backward()
    s = attribute(model, x, method="saliency")
    np.testing.assert_array_equal(s.target, tgt.numpy())
    np.testing.assert_allclose(s.attributions, xt.grad.abs().numpy(), rtol=1e-4, atol=1e-7)
    gx = attribute(model, x, method="grad_x_input")
    np.testing.assert_allclose(
        gx.attributions, (xt.grad * xt).detach().numpy(), rtol=1e-4, atol=1e-7
    )


def test_grad_x_input_exact_for_linear_model():
    lin = nn.Linear(5, 2)
    with rg.no_grad():
        lin.bias.zero_()
    x = rg.randn(1, 5)
    a = attribute(lin, x, target=1)
    np.testing.assert_allclose(a.attributions.sum(), lin(x)._data[0, 1], rtol=1e-5)


def test_token_inputs_gpt_heatmap():
    cfg = rg.models.GPTConfig(
        block_size=16, vocab_size=20, n_layer=1, n_head=2, n_embd=8, dropout=0.1
    )
    model = rg.models.GPT(cfg)
    model.train()
    idx = rg.randint(0, 20, (1, 10))
    a = attribute(model, idx, method="integrated_gradients", steps=40)
    assert a.scores.shape == (1, 10)
    assert a.completeness_error < 0.01
    assert model.training  # mode restored
    chars = "abcdefghijklmnopqrst"
    txt = a.text(decode=lambda ids: "".join(chars[i] for i in ids))
    assert "[" in txt and "strongest" in txt and any(c in txt for c in "░▒▓█")
    html = a.html(decode=lambda ids: "".join(chars[i] for i in ids))
    assert html.count("<span") == 10
    g = attribute(model, idx, method="saliency", embedding=model.transformer.wte)
    assert (g.scores >= 0).all() and g.scores.shape == (1, 10)


def test_mnist_style_saliency_png(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    x = rg.rand(1, 1, 28, 28)
    a = attribute(model, x, method="saliency")
    assert a.attributions.shape == (1, 1, 28, 28)
    p = a.plot(tmp_path / "s.png", image=x[0, 0])
    assert open(p, "rb").read(4) == b"\x89PNG"


def test_errors():
    with pytest.raises(ValueError, match="method"):
        attribute(_mlp(), rg.randn(1, 6), method="shap")
    with pytest.raises(ValueError, match="embedding"):
        attribute(_mlp(), rg.zeros(1, 6, dtype=rg.long))

"""rg.explain: node-by-node narration of backward, and the module summary."""

from __future__ import annotations

import math

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn


def _abc():
    a = rg.tensor(2.0, requires_grad=True)
    b = rg.tensor(-0.75, requires_grad=True)
    c = rg.tensor(0.5, requires_grad=True)
    return a, b, c


def test_explain_tanh_graph_local_derivatives_and_grads_are_analytic():
    a, b, c = _abc()
    L = (a * b + c).tanh()
    ex = rg.explain(L)
    av, bv, cv = 2.0, -0.75, 0.5
    s = av * bv + cv
    dtanh = 1 - math.tanh(s) ** 2
    ops = [st.op for st in ex.steps]
    assert ops == ["TanhBackward0", "AddBackward0", "MulBackward0"]
    tanh_step, add_step, mul_step = ex.steps
    assert tanh_step.inputs[0].local.item() == pytest.approx(dtanh, rel=1e-5)
    assert tanh_step.inputs[0].value.item() == pytest.approx(s)
    assert tanh_step.output.item() == pytest.approx(math.tanh(s), rel=1e-6)
    assert [i.local.item() for i in add_step.inputs] == [1.0, 1.0]
    assert add_step.upstream.item() == pytest.approx(dtanh, rel=1e-5)
    assert mul_step.inputs[0].local.item() == pytest.approx(bv)  # d(ab)/da = b
    assert mul_step.inputs[1].local.item() == pytest.approx(av)  # d(ab)/db = a
    assert [i.value.item() for i in mul_step.inputs] == [av, bv]
    # product by the chain rule, and the leaf grads, equal the analytic values
    assert ex.grads["a"].item() == pytest.approx(bv * dtanh, rel=1e-5)
    assert ex.grads["b"].item() == pytest.approx(av * dtanh, rel=1e-5)
    assert ex.grads["c"].item() == pytest.approx(dtanh, rel=1e-5)
    assert ex.matches_backward
    # ... and what a real backward gives
    L.backward()
    for name, t in (("a", a), ("b", b), ("c", c)):
        np.testing.assert_allclose(ex.grads[name], t.grad.numpy(), rtol=1e-6)


def test_explain_does_not_disturb_the_graph_or_grads():
    a, b, c = _abc()
    L = (a * b + c).tanh()
    rg.explain(L)
    assert a.grad is None and b.grad is None
    L.backward()  # the graph was not freed by explain
    assert a.grad is not None


def test_explain_text_and_html_name_ops_and_leaves():
    a, b, c = _abc()
    L = (a * b + c).tanh()
    ex = rg.explain(L)
    for word in ("TanhBackward0", "MulBackward0", "a.grad", "local", "upstream"):
        assert word in ex.text
    assert "<table" in ex.html and "MulBackward0" in ex.html


def test_explain_reused_leaf_accumulates_and_tensor_ops():
    x = rg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    W = rg.randn(2, 3, requires_grad=True)
    y = (W @ x).relu().sum() * (x * x).sum()
    ex = rg.explain(y)
    assert ex.matches_backward
    y.backward()
    np.testing.assert_allclose(ex.grads["x"], x.grad.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ex.grads["W"], W.grad.numpy(), rtol=1e-5)
    assert "sum over" in ex.text  # x used twice


def test_explain_size_cap_error():
    x = rg.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(30):
        y = y * 1.01 + 0.1
    with pytest.raises(ValueError, match=r"max_nodes=20.*rg.explain\(model"):
        rg.explain(y, max_nodes=20)
    assert rg.explain(y, max_nodes=100).matches_backward


def test_explain_errors():
    with pytest.raises(RuntimeError, match="no grad_fn"):
        rg.explain(rg.tensor(1.0))
    x = rg.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        rg.explain(x * 2)
    ex = rg.explain(x * 2, grad_output=rg.ones(3))
    np.testing.assert_allclose(ex.grads["x"], 2 * np.ones(3))
    with pytest.raises(TypeError):
        rg.explain(3.0)


def test_explain_module_layer_by_layer():
    model = nn.Sequential(
        nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 1)
    )
    x, y = rg.randn(16, 4), rg.randn(16, 1)
    mx = rg.explain(model, x, target=y, loss_fn=nn.MSELoss())
    names = [lf.name for lf in mx.layers]
    assert names == ["0", "2", "4"]
    assert mx.layers[0].chain == ["loss", "4", "3", "2", "1", "0"]
    loss = nn.MSELoss()(model(x), y)
    loss.backward()
    for lf in mx.layers:
        m = model.get_submodule(lf.name)
        ref = math.sqrt(
            sum(float((p.grad.numpy().astype(np.float64) ** 2).sum()) for p in m.parameters())
        )
        assert lf.grad_norm == pytest.approx(ref, rel=1e-5)
    assert mx.layers[0].ratio_to_next == pytest.approx(
        mx.layers[0].grad_norm / mx.layers[1].grad_norm
    )
    assert "vs next" in mx.text and "<table" in mx.html
    # from an already computed loss: ordered by distance from the loss
    loss2 = nn.MSELoss()(model(x), y)
    mx2 = rg.explain(model, loss2)
    assert [lf.name for lf in mx2.layers] == ["0", "2", "4"]

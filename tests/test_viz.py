"""rg.viz.draw_graph / draw_module_graph: DOT text that parses, optional rendering."""

from __future__ import annotations

import pytest

import retrograd as rg
from retrograd import nn
from retrograd.viz import dot_available, draw_graph, draw_module_graph, parse_dot


def _labels(nodes):
    return [a.get("label", "") for a in nodes.values()]


def test_draw_graph_ops_shapes_params_values_grads():
    model = nn.Linear(3, 2)
    x = rg.randn(4, 3)
    loss = model(x).tanh().sum()
    loss.backward(retain_graph=True)
    g = draw_graph(loss, params=dict(model.named_parameters()), show_grads=True)
    nodes, edges = parse_dot(g.source)
    labels = _labels(nodes)
    assert any(lbl.startswith("weight\n(2, 3) float32") for lbl in labels)
    assert any(lbl.startswith("bias\n(2,) float32") for lbl in labels)
    assert any("TanhBackward0" in lbl for lbl in labels)
    assert any(lbl.startswith("SumBackward0\n() float32") for lbl in labels)
    assert any("grad" in lbl for lbl in labels if lbl.startswith("bias"))
    # every edge ends at an op node; the root has no outgoing edge
    root = [k for k, a in nodes.items() if a.get("fillcolor") == "darkolivegreen1"]
    assert len(root) == 1 and all(s != root[0] for s, _ in edges)
    assert len(edges) >= len(nodes) - 1  # connected


def test_draw_graph_values_small_tensors():
    a = rg.tensor(2.0, requires_grad=True)
    b = rg.tensor(-3.0, requires_grad=True)
    y = a * b
    g = draw_graph(y, show_values=True, params={"a": a, "b": b})
    nodes, edges = parse_dot(g.source)
    labels = _labels(nodes)
    assert any("MulBackward0" in lbl and "value -6" in lbl for lbl in labels)
    assert any(lbl.startswith("a\n") and "value 2" in lbl for lbl in labels)
    assert sorted(edges) == [("leaf0", "op0"), ("leaf1", "op0")]


def test_dot_parses_with_graphviz_package_and_save(tmp_path):
    graphviz = pytest.importorskip("graphviz")
    x = rg.randn(3, requires_grad=True)
    g = draw_graph((x.exp() * 2).sum())
    src = graphviz.Source(g.source)
    assert "ExpBackward0" in src.source
    p = g.save(tmp_path / "g.dot")
    assert parse_dot(open(p).read())[0]


def test_parse_dot_rejects_garbage():
    with pytest.raises(ValueError):
        parse_dot("digraph x {\n  a -> b;\n}")  # undeclared nodes
    with pytest.raises(ValueError):
        parse_dot("not a graph")


@pytest.mark.skipif(not dot_available(), reason="Graphviz 'dot' program not installed")
def test_render_svg_png(tmp_path):
    x = rg.randn(3, requires_grad=True)
    g = draw_graph((x * x).sum())
    svg = g.render(tmp_path / "g.svg", format="svg")
    assert "<svg" in open(svg).read()
    png = g.render(tmp_path / "g.png", format="png")
    assert open(png, "rb").read(4) == b"\x89PNG"


def test_render_without_dot_raises_clear_error(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    g = draw_graph((rg.randn(2, requires_grad=True) * 2).sum())
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        g.render(tmp_path / "g.svg")


def test_module_collapsed_view():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 4)
            self.act = nn.ReLU()
            self.fc2 = nn.Linear(4, 2)

        def forward(self, x):
            h = self.act(self.fc1(x))
            return self.fc2(h + x)  # residual add outside any module

    model = Res()
    x = rg.randn(5, 4)
    g = draw_module_graph(model, x)
    nodes, edges = parse_dot(g.source)
    by_name = {a["label"].split("\n")[0]: k for k, a in nodes.items()}
    assert {"fc1", "act", "fc2", "input 0", "output"} <= set(by_name)
    e = set(edges)
    assert (by_name["input 0"], by_name["fc1"]) in e
    assert (by_name["fc1"], by_name["act"]) in e
    assert (by_name["act"], by_name["fc2"]) in e
    assert (by_name["input 0"], by_name["fc2"]) in e  # through the residual add
    assert (by_name["fc2"], by_name["output"]) in e
    assert all(not m._forward_hooks for m in model.modules())
    g2 = draw_graph(None, collapse_modules=model, inputs=(x,))
    assert g2.source == g.source
    with pytest.raises(ValueError, match="inputs"):
        draw_graph(model(x).sum(), collapse_modules=model)


def test_max_nodes_cap():
    x = rg.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(20):
        y = y * 2
    with pytest.raises(ValueError, match="max_nodes=5"):
        draw_graph(y, max_nodes=5)

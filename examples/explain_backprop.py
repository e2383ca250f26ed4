"""Seeing one backward pass: ``rg.explain`` narrates it, ``rg.viz.draw_graph`` draws it.

Prints the node-by-node story of ``L = tanh(a*b + c)`` (the op, its inputs, the local
derivative, the upstream gradient and their chain-rule product, down to every leaf's .grad),
the layer-by-layer gradient flow of a small MLP, and writes Graphviz pictures:
``docs/img/graph_tanh.svg`` (the autograd graph, with values and grads) and
``docs/img/lenet_modules.svg`` (LeNet's module graph). Without the ``dot`` program only the
``.dot`` sources are written.

    PYTHONPATH=. python examples/explain_backprop.py
"""

from __future__ import annotations

import os

import retrograd as rg
from retrograd import nn

IMG = os.path.join(os.path.dirname(__file__), "..", "docs", "img")


def main():
    a = rg.tensor(2.0, requires_grad=True)
    b = rg.tensor(-0.75, requires_grad=True)
    c = rg.tensor(0.5, requires_grad=True)
    e = a * b
    d = e + c
    L = d.tanh()
    ex = rg.explain(L)
    print(ex.text)
    L.backward(retain_graph=True)
    g = rg.viz.draw_graph(L, show_values=True, show_grads=True, params={"a": a, "b": b, "c": c})
    g.save(os.path.join(IMG, "graph_tanh.dot"))
    if rg.viz.dot_available():
        print(
            "saved", os.path.normpath(g.render(os.path.join(IMG, "graph_tanh.svg"), format="svg"))
        )

    print()
    rg.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))
    x, y = rg.randn(32, 4), rg.randint(0, 3, (32,))
    print(rg.explain(mlp, x, target=y, loss_fn=nn.CrossEntropyLoss()).text)

    lenet = rg.models.LeNet()
    mg = rg.viz.draw_module_graph(lenet, rg.randn(1, 1, 28, 28))
    mg.save(os.path.join(IMG, "lenet_modules.dot"))
    if rg.viz.dot_available():
        print(
            "saved",
            os.path.normpath(mg.render(os.path.join(IMG, "lenet_modules.svg"), format="svg")),
        )


if __name__ == "__main__":
    main()

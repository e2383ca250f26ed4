"""Experiment (a): vanishing gradients in a 20-layer MLP, and three cures.

One backward pass on the same batch for four 20-layer, 64-wide MLPs:

- sigmoid, PyTorch default init: the first layer's gradient is orders of magnitude below the
  last layer's (each layer multiplies the backward signal by sigma' <= 1/4 times a weight
  matrix whose gain is below 1 - Hochreiter 1991, Bengio et al. 1994, Glorot & Bengio 2010);
- ReLU with He (Kaiming) init (He et al. 2015): a variance-preserving gain of 1 per layer;
- sigmoid with residual connections (He et al. 2016): ``x + f(x)`` adds an identity path;
- LayerNorm (Ba et al. 2016) before each activation: with sigmoid it only softens the decay
  (the sigmoid's 1/4 still compounds), with ReLU and PyTorch's default init it removes it.

Saves ``docs/img/vanishing.png`` and prints the GradientMonitor verdicts for each net.

    PYTHONPATH=. python examples/vanishing_gradients.py
"""

from __future__ import annotations

import os

import numpy as np

import retrograd as rg
from retrograd import nn
from retrograd.diagnostics import GradientMonitor

DEPTH, WIDTH = 20, 64
OUT = os.path.join(os.path.dirname(__file__), "..", "docs", "img", "vanishing.png")


class Residual(nn.Module):
    def __init__(self, width, act):
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.act = act()

    def forward(self, x):
        return x + self.act(self.fc(x))


def plain(act, he=False, layernorm=False):
    layers = [nn.Linear(2, WIDTH)]
    for _ in range(DEPTH - 2):
        if layernorm:
            layers.append(nn.LayerNorm(WIDTH))
        layers += [act(), nn.Linear(WIDTH, WIDTH)]
    layers += [act(), nn.Linear(WIDTH, 2)]
    net = nn.Sequential(*layers)
    if he:
        for m in net.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
    return net


def residual(act):
    return nn.Sequential(
        nn.Linear(2, WIDTH), *[Residual(WIDTH, act) for _ in range(DEPTH - 2)], nn.Linear(WIDTH, 2)
    )


def linear_grad_norms(net):
    return [
        float(np.linalg.norm(m.weight.grad.numpy()))
        for m in net.modules()
        if isinstance(m, nn.Linear)
    ]


def main():
    rg.manual_seed(0)
    X, y = rg.data.datasets.make_moons(256, noise=0.1, random_state=0)
    X = rg.as_tensor(X, dtype=rg.float32)
    y = rg.as_tensor(y, dtype=rg.long)
    nets = {
        "sigmoid (default init)": plain(nn.Sigmoid),
        "ReLU + He init": plain(nn.ReLU, he=True),
        "sigmoid + residual": residual(nn.Sigmoid),
        "sigmoid + LayerNorm": plain(nn.Sigmoid, layernorm=True),
        "ReLU + LayerNorm (default init)": plain(nn.ReLU, layernorm=True),
    }
    results = {}
    for name, net in nets.items():
        mon = GradientMonitor(net, every=1)
        loss = nn.functional.cross_entropy(net(X), y)
        loss.backward()
        mon.step(loss)
        mon.detach()
        norms = linear_grad_norms(net)
        kinds = [v.kind for v in mon.verdicts()]
        results[name] = norms
        print(
            f"{name:32s} first/last layer grad norm = {norms[0] / norms[-1]:.2e}   "
            f"verdicts: {kinds or ['healthy']}"
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, norms in results.items():
        ax.semilogy(range(1, len(norms) + 1), norms, marker="o", ms=3, label=name)
    ax.set_xlabel("Linear layer (1 = first, next to the input)")
    ax.set_ylabel("|dL/dW|")
    ax.set_title(f"Gradient norm per layer, {DEPTH}-layer MLP, one batch")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT, dpi=80)
    print(f"saved {os.path.normpath(OUT)}")
    return results


if __name__ == "__main__":
    main()

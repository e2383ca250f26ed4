"""Experiment (b): exploding gradients from a large initialisation, cured by clipping.

A 12-layer ReLU MLP whose weights are 4x PyTorch's default init multiplies the backward
signal by about 4 * sqrt(1/6) ~ 1.6 per layer (1.6^12 ~ 300), so the first gradient norm is
~1e3. Plain SGD then takes absurd steps and the loss blows up to NaN within a few steps; the
same run with
``rg.nn.utils.clip_grad_norm_(params, 1.0)`` (Pascanu et al. 2013) caps every step and the loss
goes down. The GradientMonitor flags the unclipped run as exploding (and suggests clipping).

Saves ``docs/img/exploding.png``.

    PYTHONPATH=. python examples/exploding_gradients.py
"""

from __future__ import annotations

import math
import os

import numpy as np

import retrograd as rg
from retrograd import nn
from retrograd.diagnostics import GradientMonitor

OUT = os.path.join(os.path.dirname(__file__), "..", "docs", "img", "exploding.png")
DEPTH, WIDTH, STEPS, LR, SCALE = 12, 32, 60, 1e-2, 4.0


def make():
    rg.manual_seed(0)
    layers = [nn.Linear(2, WIDTH), nn.ReLU()]
    for _ in range(DEPTH - 2):
        layers += [nn.Linear(WIDTH, WIDTH), nn.ReLU()]
    layers.append(nn.Linear(WIDTH, 2))
    net = nn.Sequential(*layers)
    with rg.no_grad():
        for p in net.parameters():
            p.mul_(SCALE)
    return net


def train(clip: float | None):
    net = make()
    X, y = rg.data.datasets.make_moons(256, noise=0.1, random_state=0)
    X = rg.as_tensor(X, dtype=rg.float32)
    y = rg.as_tensor(y, dtype=rg.long)
    opt = rg.optim.SGD(net.parameters(), lr=LR)
    mon = GradientMonitor(net, every=1)
    mon.attach_optimizer(opt)
    losses, norms = [], []
    with np.errstate(all="ignore"):
        for _ in range(STEPS):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(X), y)
            v = float(loss.item())
            losses.append(v)
            if not math.isfinite(v):
                mon.log_loss(loss)
                break
            loss.backward()
            mon.step(loss)
            total = nn.utils.clip_grad_norm_(net.parameters(), clip if clip else float("inf"))
            norms.append(float(total))
            opt.step()
    mon.detach()
    return losses, norms, mon


def main():
    runs = {"no clipping": train(None), "clip_grad_norm_(1.0)": train(1.0)}
    for name, (losses, norms, mon) in runs.items():
        kinds = [v.kind for v in mon.verdicts()]
        print(
            f"{name:22s} first grad norm {norms[0]:.2e}  loss {losses[0]:.3g} -> {losses[-1]:.3g} "
            f"after {len(losses)} steps; verdicts: {kinds or ['healthy']}"
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for name, (losses, norms, _) in runs.items():
        fl = [v if math.isfinite(v) else np.nan for v in losses]
        axes[0].semilogy(fl, label=name)
        axes[1].semilogy(norms, label=name)
        if not math.isfinite(losses[-1]):
            axes[0].axvline(len(losses) - 1, color="red", ls=":", lw=1)
            axes[0].text(len(losses) - 1, np.nanmax(fl), " NaN", color="red", fontsize=8)
    axes[0].set_title(f"training loss (SGD, lr {LR:g})")
    axes[0].set_xlabel("step")
    axes[1].set_title("gradient norm before clipping")
    axes[1].set_xlabel("step")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT, dpi=80)
    print(f"saved {os.path.normpath(OUT)}")
    return runs


if __name__ == "__main__":
    main()

"""Experiment (c): learning rates too high (divergence) and too low (stall), against the LR
finder's pick.

A moons MLP (2-64-64-2, SGD momentum 0.9) is trained for 300 steps at the LR that
``rg.diagnostics.lr_find`` suggests, at 10x that LR and at 1/10000 of it, each watched by a
GradientMonitor. The too-high run diverges (or oscillates) and is flagged ``lr_too_high``; the
too-low run barely moves and is flagged ``lr_too_low`` (update/weight ratios ~1e-6, against
the ~1e-3 rule of thumb); the finder's pick trains and is judged healthy.

Saves ``docs/img/lr_experiment.png``.

    PYTHONPATH=. python examples/lr_too_high_low.py
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import _lr_common as C  # noqa: E402

from retrograd.diagnostics import GradientMonitor  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "docs", "img", "lr_experiment.png")
STEPS, BS = 300, 64


def main():
    data = C.moons()
    res = C.find_lr(C.moons_mlp, data, BS)
    pick = res.suggestion
    print(res.text)
    runs = {}
    for label, lr in (
        ("lr_find pick", pick),
        ("10x (too high)", 10 * pick),
        ("1/10000 (too low)", pick / 10000),
    ):

        def watch(model, opt):
            mon = GradientMonitor(model, every=5)
            mon.attach_optimizer(opt)
            return mon

        losses, val, mon = C.train(C.moons_mlp, data, lr, STEPS, BS, monitor=watch)
        vs = mon.verdicts()
        runs[label] = (lr, losses, val, vs)
        last = losses[-1] if math.isfinite(losses[-1]) else float("nan")
        print(
            f"{label:18s} lr {lr:.3g}: loss {losses[0]:.3f} -> {last:.3g}, val loss {val:.4g}; "
            f"verdicts: {[v.kind for v in vs] or ['healthy']}"
        )
        for v in vs:
            print("    " + v.message)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
    res.plot(None, ax=axes[0])
    axes[0].set_title("LR range test (moons MLP)", fontsize=9)
    for label, (lr, losses, _, vs) in runs.items():
        fl = np.asarray([v if math.isfinite(v) else np.nan for v in losses])
        tag = ", ".join(v.kind for v in vs) or "healthy"
        axes[1].semilogy(np.minimum(fl, 1e3), label=f"{label} ({lr:.1e}): {tag}")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("training loss")
    axes[1].set_title("training at the pick, 10x and 1/10000 of it", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT, dpi=80)
    print(f"saved {os.path.normpath(OUT)}")
    return runs


if __name__ == "__main__":
    main()

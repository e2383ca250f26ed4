"""How good is the LR finder's pick? Compare it with a grid search (issue #5).

For a moons MLP (2-64-64-2) and an MNIST MLP (784-128-10, bundled 8,000/2,000 split), both
trained with SGD (momentum 0.9) at a constant learning rate for a fixed budget:

1. ``rg.diagnostics.lr_find`` (defaults: 1e-7 -> 10, 200 iterations) suggests an LR (half the
   LR at which the valley of the smoothed loss reaches its floor); the classic rules it also
   reports (steepest descent, minimum/10) are printed next to it;
2. a grid of 13 LRs from 1e-4 to 1 (3 per decade) is trained for the same budget each, and the
   LR with the lowest validation loss is the grid's best.

Prints the two and their ratio (target: within a factor of 3), and the validation loss at the
suggestion vs at the grid's best. Saves ``docs/img/lr_finder_vs_grid.png``.

``--seeds N`` also checks robustness: the finder is rerun with N seeds (model init and batch
order) and the grid is trained with N seeds, its best taken on the median validation loss.

    PYTHONPATH=. python examples/lr_finder_vs_grid.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import _lr_common as C  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "docs", "img", "lr_finder_vs_grid.png")
GRID = [10 ** (k / 3) for k in range(-12, 1)]

TASKS = {
    "moons MLP": dict(make_model=C.moons_mlp, data=C.moons, steps=300, bs=64),
    "MNIST MLP": dict(make_model=C.mnist_mlp, data=C.mnist, steps=200, bs=64),
}


def ratio(a, b):
    return max(a / b, b / a)


def run_task(name, make_model, data, steps, bs):
    t0 = time.perf_counter()
    d = data()
    res = C.find_lr(make_model, d, bs)
    vals = [C.train(make_model, d, lr, steps, bs)[1] for lr in GRID]
    best = GRID[int(np.argmin(vals))]
    at_sugg = C.train(make_model, d, res.suggestion, steps, bs)[1]
    r = ratio(res.suggestion, best)
    others = ", ".join(
        f"{k} {v:.3g} ({ratio(v, best):.1f}x)"
        for k, v in res.suggestions.items()
        if k != "valley" and v is not None
    )
    print(
        f"{name}: lr_find suggests {res.suggestion:.3g}; grid best {best:.3g} "
        f"(val loss {min(vals):.4f}); ratio {r:.2f}x "
        f"({'within' if r <= 3 else 'NOT within'} 3x); val loss at the suggestion "
        f"{at_sugg:.4f}; classic rules: {others}  [{time.perf_counter() - t0:.0f}s]"
    )
    return {
        "finder": res,
        "grid": GRID,
        "vals": vals,
        "best": best,
        "ratio": r,
        "val_at_suggestion": at_sugg,
        "data": d,
    }


def robustness(name, kw, d, n):
    """Finder with n seeds vs the grid's best on the median val loss over n seeds."""
    vals = np.median(
        [[C.train(kw["make_model"], d, lr, kw["steps"], kw["bs"], seed=s)[1] for lr in GRID]
         for s in range(n)],
        axis=0,
    )
    best = GRID[int(np.argmin(vals))]
    rows = {k: [] for k in ("valley", "steep", "minimum")}
    for s in range(n):
        res = C.find_lr(kw["make_model"], d, kw["bs"], seed=s)
        for k in rows:
            rows[k].append(res.suggestions[k])
    print(f"{name}, {n} seeds: grid best on the median val loss {best:.3g}")
    for k, v in rows.items():
        within = sum(x is not None and ratio(x, best) <= 3 for x in v)
        print(f"  {k:8s} " + " ".join(f"{x:.3g}" if x else "-" for x in v)
              + f"  -> {within}/{n} within 3x")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=0, help="also check N seeds (robustness)")
    args = ap.parse_args(argv)
    out = {name: run_task(name, **kw) for name, kw in TASKS.items()}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(out), figsize=(4.2 * len(out), 5.6))
    for j, (name, r) in enumerate(out.items()):
        r["finder"].plot(None, ax=axes[0, j])
        axes[0, j].set_title(f"{name}: LR range test", fontsize=9)
        v = np.minimum(np.asarray(r["vals"]), 10.0)
        axes[1, j].semilogx(r["grid"], v, "o-", ms=3, label="grid: val loss after training")
        axes[1, j].axvline(
            r["best"], color="green", ls="--", lw=1, label=f"grid best {r['best']:.2g}"
        )
        axes[1, j].axvline(
            r["finder"].suggestion,
            color="red",
            ls=":",
            lw=1.5,
            label=f"lr_find {r['finder'].suggestion:.2g}",
        )
        axes[1, j].set_xlabel("learning rate")
        axes[1, j].set_ylabel("val loss (capped at 10)")
        axes[1, j].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT, dpi=75)
    print(f"saved {os.path.normpath(OUT)}")
    if args.seeds > 0:
        for name, kw in TASKS.items():
            robustness(name, kw, out[name]["data"], args.seeds)
    return out


if __name__ == "__main__":
    main()

"""Attribution with backprop: saliency maps for MNIST digits and a character heat map for a
small GPT (issue #5).

1. Trains an MLP (784-128-10) on the bundled MNIST split for 300 steps, then for one
   validation example of each digit computes integrated gradients (baseline: a blank
   image) and saves a 2x10 grid (digit, attribution) to
   ``docs/img/saliency_mnist.png``. Completeness (sum of attributions = logit(x) - logit(x0))
   is printed.
2. Trains a 2-layer character GPT on Tiny Shakespeare for a few hundred steps, then asks which
   earlier characters drove the prediction of the next one, as a shaded text heat map, and
   saves it as HTML (``docs/img/attribution_gpt.html``).

    PYTHONPATH=. python examples/attribution_demo.py
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import _lr_common as C  # noqa: E402

import retrograd as rg  # noqa: E402
from retrograd import nn  # noqa: E402
from retrograd.diagnostics import attribute  # noqa: E402

IMG = os.path.join(os.path.dirname(__file__), "..", "docs", "img")


def mnist_saliency():
    data = C.mnist()
    rg.manual_seed(0)
    model = C.mnist_mlp()
    opt = rg.optim.Adam(model.parameters(), lr=1e-3)
    it = C.batches(*data[0], 64)
    for _ in range(300):
        xb, yb = next(it)
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
    Xv, yv = data[1]
    idx = [int(np.flatnonzero(yv == d)[0]) for d in range(10)]
    x = rg.tensor(Xv[idx])
    # baseline: a blank (background-valued) image
    x0 = rg.full((1, 784), float((0.0 - 0.1307) / 0.3081))
    a = attribute(
        model, x, target=list(range(10)), method="integrated_gradients", baseline=x0, steps=50
    )
    print(f"MNIST: integrated gradients, max completeness error {100 * a.completeness_error:.3f}%")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 10, figsize=(12, 2.8))
    for d in range(10):
        axes[0, d].imshow(Xv[idx[d]].reshape(28, 28), cmap="gray")
        att = a.attributions[d].reshape(28, 28)
        m = np.abs(att).max() or 1.0
        axes[1, d].imshow(att, cmap="RdBu_r", vmin=-m, vmax=m)
        axes[0, d].set_title(f"{d}", fontsize=9)
        for r in (0, 1):
            axes[r, d].axis("off")
    fig.suptitle(
        "Integrated gradients for the true class (red: evidence for, blue: against)", fontsize=9
    )
    fig.tight_layout()
    path = os.path.join(IMG, "saliency_mnist.png")
    fig.savefig(path, dpi=70)
    print(f"saved {os.path.normpath(path)}")
    return a


def gpt_heatmap(steps=200):
    ds = rg.data.datasets.TinyShakespeare(block_size=32, split="train")
    chars = [ds.itos[i] for i in range(ds.vocab_size)]
    stoi = ds.stoi
    data = np.asarray(ds.data)
    rg.manual_seed(0)
    cfg = rg.models.GPTConfig(
        block_size=32, vocab_size=len(chars), n_layer=2, n_head=2, n_embd=48, dropout=0.0
    )
    model = rg.models.GPT(cfg)
    opt = rg.optim.AdamW(model.parameters(), lr=3e-3)
    g = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        s = g.integers(0, len(data) - 33, 16)
        xb = rg.tensor(np.stack([data[i : i + 32] for i in s]))
        yb = rg.tensor(np.stack([data[i + 1 : i + 33] for i in s]))
        opt.zero_grad()
        _, loss = model(xb, yb)
        loss.backward()
        opt.step()
    print(f"GPT: {steps} steps in {time.perf_counter() - t0:.0f}s, train loss {loss.item():.3f}")
    prompt = "First Citizen:\nBefore we procee"
    ids = rg.tensor([[stoi[c] for c in prompt]])
    a = attribute(model, ids, method="integrated_gradients", steps=64)

    def decode(xs):
        return "".join(chars[i] for i in xs)

    print(
        f"prompt {prompt!r} -> next char {decode([int(a.target[0])])!r}; completeness error "
        f"{100 * a.completeness_error:.3f}%"
    )
    print(a.text(decode=decode))
    path = os.path.join(IMG, "attribution_gpt.html")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("<!doctype html><meta charset=utf-8>" + a.html(decode=decode) + "\n")
    print(f"saved {os.path.normpath(path)}")
    return a


if __name__ == "__main__":
    mnist_saliency()
    gpt_heatmap()

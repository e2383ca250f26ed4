"""Shared pieces of the learning-rate experiments: data, models, a fixed-budget trainer."""

from __future__ import annotations

import math

import numpy as np

import retrograd as rg
from retrograd import nn


def moons(n_train=1000, n_val=1000):
    X, y = rg.data.datasets.make_moons(n_train + n_val, noise=0.1, random_state=0)
    X = np.asarray(X.numpy(), np.float32)
    y = np.asarray(y.numpy(), np.int64)
    return (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:])


def mnist():
    tr = rg.data.datasets.MNIST(train=True)
    va = rg.data.datasets.MNIST(train=False)

    def prep(ds):
        return (ds.data.numpy().reshape(len(ds), -1).astype(np.float32) / 255.0 - 0.1307) / 0.3081

    return (prep(tr), tr.targets.numpy()), (prep(va), va.targets.numpy())


def moons_mlp():
    return nn.Sequential(
        nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2)
    )


def mnist_mlp():
    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def batches(X, y, bs, seed=0):
    """Endless shuffled mini-batches (deterministic for a seed)."""
    g = np.random.default_rng(seed)
    while True:
        perm = g.permutation(len(X))
        for i in range(0, len(X) - bs + 1, bs):
            j = perm[i : i + bs]
            yield rg.tensor(X[j]), rg.tensor(y[j])


def make_opt(model, lr):
    return rg.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def train(make_model, data, lr, steps, bs, seed=0, monitor=None):
    """Train with SGD(momentum 0.9) at a constant lr; returns (train losses, val loss)."""
    (X, y), (Xv, yv) = data
    rg.manual_seed(seed)
    model = make_model()
    opt = make_opt(model, lr)
    mon = monitor(model, opt) if monitor else None
    losses = []
    it = batches(X, y, bs, seed)
    with np.errstate(all="ignore"):
        for _ in range(steps):
            xb, yb = next(it)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            v = float(loss.item())
            losses.append(v)
            if not math.isfinite(v):
                if mon:
                    mon.log_loss(loss)
                break
            loss.backward()
            if mon:
                mon.step(loss)
            opt.step()
        with rg.no_grad():
            val = float(nn.functional.cross_entropy(model(rg.tensor(Xv)), rg.tensor(yv)).item())
    if mon:
        mon.detach()
    return losses, (val if math.isfinite(val) else float("inf")), mon


def find_lr(make_model, data, bs, seed=0, **kw):
    """``rg.diagnostics.lr_find`` with its defaults (``kw`` overrides them) on a fresh model."""
    (X, y), _ = data
    rg.manual_seed(seed)
    model = make_model()
    opt = make_opt(model, 1e-3)
    return rg.diagnostics.lr_find(model, nn.CrossEntropyLoss(), batches(X, y, bs, seed), opt, **kw)

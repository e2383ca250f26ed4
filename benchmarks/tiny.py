"""W4 ``tiny``: micrograd's moons classifier (2 -> 16 -> 16 -> 1), hinge + L2, SGD: overhead."""

from __future__ import annotations

import numpy as np

from ._common import as_lib, load, train_step, uniform_linear

N = 100
FWD_FLOPS = 2 * N * (2 * 16 + 16 * 16 + 16 * 1)
STEP_FLOPS = 3 * FWD_FLOPS


def make_moons(n: int = N, noise: float = 0.1, seed: int = 1):
    """scikit-learn's ``make_moons`` (shuffled, Gaussian noise), re-implemented in NumPy."""
    n_out, n_in = n // 2, n - n // 2
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    x = np.vstack(
        [
            np.append(np.cos(t_out), 1 - np.cos(t_in)),
            np.append(np.sin(t_out), 1 - np.sin(t_in) - 0.5),
        ]
    ).T
    y = np.hstack([np.zeros(n_out), np.ones(n_in)])
    rng = np.random.RandomState(seed)
    idx = rng.permutation(n)
    x, y = x[idx], y[idx]
    x = x + rng.normal(scale=noise, size=x.shape)
    return x.astype(np.float32), y


def make_params() -> dict:
    rng = np.random.default_rng(5)
    p: dict = {}
    uniform_linear(rng, p, "l1", 2, 16)
    uniform_linear(rng, p, "l2", 16, 16)
    uniform_linear(rng, p, "l3", 16, 1)
    return p


def make_data() -> dict:
    x, y = make_moons()
    return {"x": x, "y": (y * 2 - 1).astype(np.float32).reshape(N, 1)}


def build(lib, params: dict, data: dict, compiled: bool = False):
    nn = lib.nn
    F = nn.functional

    class Moons(nn.Module):
        def __init__(self):
            super().__init__()
            self.l1 = nn.Linear(2, 16)
            self.l2 = nn.Linear(16, 16)
            self.l3 = nn.Linear(16, 1)

        def forward(self, x):
            return self.l3(F.relu(self.l2(F.relu(self.l1(x)))))

    model = load(lib, Moons(), params)
    ps = list(model.parameters())
    opt = lib.optim.SGD(ps, lr=0.05)
    x, y = as_lib(lib, data["x"]), as_lib(lib, data["y"])

    def loss_fn():
        score = model(x)
        data_loss = F.relu(1 - y * score).mean()
        reg = 1e-4 * sum((p * p).sum() for p in ps)
        return data_loss + reg

    step = train_step(model, opt, loss_fn)
    return (lib.compile(step) if compiled else step), model, opt

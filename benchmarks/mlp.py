"""W1 ``mlp``: 784 -> 512 -> 512 -> 10 with ReLU, softmax cross-entropy, Adam, batch 128."""

from __future__ import annotations

import numpy as np

from ._common import as_lib, load, train_step, uniform_linear

BATCH = 128
FWD_FLOPS = 2 * BATCH * (784 * 512 + 512 * 512 + 512 * 10)
STEP_FLOPS = 3 * FWD_FLOPS


def make_params() -> dict:
    rng = np.random.default_rng(1)
    p: dict = {}
    uniform_linear(rng, p, "fc1", 784, 512)
    uniform_linear(rng, p, "fc2", 512, 512)
    uniform_linear(rng, p, "fc3", 512, 10)
    return p


def make_data() -> dict:
    rng = np.random.default_rng(2)
    return {
        "x": rng.standard_normal((BATCH, 784), dtype=np.float32),
        "y": rng.integers(0, 10, BATCH).astype(np.int64),
    }


def build(lib, params: dict, data: dict):
    nn = lib.nn
    F = nn.functional

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(784, 512)
            self.fc2 = nn.Linear(512, 512)
            self.fc3 = nn.Linear(512, 10)

        def forward(self, x):
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    model = load(lib, MLP(), params)
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    x, y = as_lib(lib, data["x"]), as_lib(lib, data["y"])
    return train_step(model, opt, lambda: F.cross_entropy(model(x), y)), model, opt

"""W2 ``cnn``: PyTorch examples' MNIST Net without dropout, Adam, batch 64."""

from __future__ import annotations

import numpy as np

from ._common import as_lib, load, train_step, uniform_conv, uniform_linear

BATCH = 64
FWD_FLOPS = 2 * BATCH * (26 * 26 * 32 * 9 + 24 * 24 * 64 * 32 * 9 + 9216 * 128 + 128 * 10)
STEP_FLOPS = 3 * FWD_FLOPS


def make_params() -> dict:
    rng = np.random.default_rng(3)
    p: dict = {}
    uniform_conv(rng, p, "conv1", 1, 32, 3)
    uniform_conv(rng, p, "conv2", 32, 64, 3)
    uniform_linear(rng, p, "fc1", 9216, 128)
    uniform_linear(rng, p, "fc2", 128, 10)
    return p


def make_data() -> dict:
    rng = np.random.default_rng(4)
    return {
        "x": rng.standard_normal((BATCH, 1, 28, 28), dtype=np.float32),
        "y": rng.integers(0, 10, BATCH).astype(np.int64),
    }


def build(lib, params: dict, data: dict):
    nn = lib.nn
    F = nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.relu(self.conv2(x))
            x = F.max_pool2d(x, 2)
            x = lib.flatten(x, 1)
            x = F.relu(self.fc1(x))
            return self.fc2(x)

    model = load(lib, Net(), params)
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    x, y = as_lib(lib, data["x"]), as_lib(lib, data["y"])
    return train_step(model, opt, lambda: F.cross_entropy(model(x), y)), model, opt

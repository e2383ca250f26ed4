"""W5 ``deep``: 64 pre-LayerNorm residual blocks of width 64: graph depth and per-op overhead."""

from __future__ import annotations

import numpy as np

from ._common import as_lib, layer_norm, load, train_step, uniform_linear

BATCH, WIDTH, DEPTH = 32, 64, 64
FWD_FLOPS = 2 * BATCH * (DEPTH * WIDTH * WIDTH + WIDTH * 10)
STEP_FLOPS = 3 * FWD_FLOPS


def make_params() -> dict:
    rng = np.random.default_rng(6)
    p: dict = {}
    for i in range(DEPTH):
        layer_norm(p, f"lns.{i}", WIDTH)
        uniform_linear(rng, p, f"fcs.{i}", WIDTH, WIDTH)
    layer_norm(p, "ln_f", WIDTH)
    uniform_linear(rng, p, "head", WIDTH, 10)
    return p


def make_data() -> dict:
    rng = np.random.default_rng(7)
    return {
        "x": rng.standard_normal((BATCH, WIDTH), dtype=np.float32),
        "y": rng.integers(0, 10, BATCH).astype(np.int64),
    }


def build(lib, params: dict, data: dict, compiled: bool = False):
    nn = lib.nn
    F = nn.functional

    class Deep(nn.Module):
        def __init__(self):
            super().__init__()
            self.lns = nn.ModuleList([nn.LayerNorm(WIDTH) for _ in range(DEPTH)])
            self.fcs = nn.ModuleList([nn.Linear(WIDTH, WIDTH) for _ in range(DEPTH)])
            self.ln_f = nn.LayerNorm(WIDTH)
            self.head = nn.Linear(WIDTH, 10)

        def forward(self, h):
            for ln, fc in zip(self.lns, self.fcs):
                h = h + F.relu(fc(ln(h)))
            return self.head(self.ln_f(h))

    model = load(lib, Deep(), params)
    opt = lib.optim.SGD(model.parameters(), lr=1e-2)
    x, y = as_lib(lib, data["x"]), as_lib(lib, data["y"])
    step = train_step(model, opt, lambda: F.cross_entropy(model(x), y))
    return (lib.compile(step) if compiled else step), model, opt

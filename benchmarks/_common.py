"""Helpers for the workload modules: NumPy initial parameters, loading them, one training step.

Every model is written once against the shared API (``lib`` is ``torch`` or ``retrograd``),
so the two frameworks run literally the same Python code.
"""

from __future__ import annotations

import numpy as np


def uniform_linear(rng, params: dict, name: str, fan_in: int, out: int, bias: bool = True):
    """PyTorch's default Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias."""
    bound = 1.0 / np.sqrt(fan_in)
    params[f"{name}.weight"] = rng.uniform(-bound, bound, (out, fan_in)).astype(np.float32)
    if bias:
        params[f"{name}.bias"] = rng.uniform(-bound, bound, (out,)).astype(np.float32)


def uniform_conv(rng, params: dict, name: str, cin: int, cout: int, k: int):
    bound = 1.0 / np.sqrt(cin * k * k)
    params[f"{name}.weight"] = rng.uniform(-bound, bound, (cout, cin, k, k)).astype(np.float32)
    params[f"{name}.bias"] = rng.uniform(-bound, bound, (cout,)).astype(np.float32)


def layer_norm(params: dict, name: str, n: int):
    params[f"{name}.weight"] = np.ones(n, np.float32)
    params[f"{name}.bias"] = np.zeros(n, np.float32)


def load(lib, model, params: dict):
    """Copy the NumPy parameters into ``model`` (strict: names and shapes must match)."""
    sd = model.state_dict()
    missing = set(sd) ^ set(params)
    if missing:
        raise KeyError(f"state_dict keys differ from the generated parameters: {sorted(missing)}")
    for k, v in params.items():
        if tuple(sd[k].shape) != v.shape:
            raise ValueError(f"{k}: model has {tuple(sd[k].shape)}, generated {v.shape}")
    model.load_state_dict({k: lib.from_numpy(np.array(v)) for k, v in params.items()})
    return model


def as_lib(lib, arr: np.ndarray):
    return lib.from_numpy(np.array(arr))


def train_step(model, opt, loss_fn):
    """One step: zero_grad + forward + loss + backward + update + reading the loss."""

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def n_params(params: dict, tied: int = 0) -> int:
    return sum(v.size for v in params.values()) - tied

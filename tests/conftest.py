"""Shared fixtures: seeded RNGs and the PyTorch oracle (2 threads, float32 by default)."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg

try:  # two xdist workers on two cores: one BLAS thread each avoids oversubscription
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
except ImportError:  # pragma: no cover - threadpoolctl is a test extra
    pass


@pytest.fixture(autouse=True)
def _seed():
    rg.manual_seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    return torch


def to_torch(torch, t, requires_grad=None):
    """A torch tensor holding a copy of a retrograd tensor (or array)."""
    arr = t.detach().numpy() if isinstance(t, rg.Tensor) else np.asarray(t)
    out = torch.from_numpy(np.array(arr, copy=True))
    if requires_grad is None:
        requires_grad = isinstance(t, rg.Tensor) and t.requires_grad
    if requires_grad:
        out.requires_grad_(True)
    return out

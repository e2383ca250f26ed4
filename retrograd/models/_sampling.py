"""Pick the next token from logits: temperature and top-k sampling, shared by the text models."""

from __future__ import annotations

import numpy as np

from .. import random as _random
from ..tensor import Tensor


def sample_next(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, generator=None
) -> np.ndarray:
    """Sample one token id per row of ``logits`` (B, V); returns an int64 array (B, 1).

    ``temperature=0`` means greedy (argmax). Sampling uses retrograd's default generator, so
    ``rg.manual_seed`` makes generation reproducible.
    """
    z = np.asarray(logits.detach().numpy(), dtype=np.float64)
    if temperature <= 0:
        return z.argmax(axis=-1)[:, None].astype(np.int64)
    z = z / temperature
    if top_k is not None:
        k = min(int(top_k), z.shape[-1])
        kth = np.sort(z, axis=-1)[:, -k][:, None]
        z = np.where(z < kth, -np.inf, z)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    rng = _random._rng(generator)
    u = rng.random((p.shape[0], 1))
    # inverse-CDF sampling, one uniform per row
    idx = (np.cumsum(p, axis=-1) < u).sum(axis=-1)
    return np.minimum(idx, p.shape[-1] - 1)[:, None].astype(np.int64)

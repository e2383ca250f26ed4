"""Embedding lookups (fused primitive: the vjp scatter-adds with ``np.add.at``)."""

from __future__ import annotations

import numpy as np

from ...autograd.grad_mode import no_grad
from ...ops.nn_ops import embedding_lookup
from ...tensor import Tensor

__all__ = ["embedding", "embedding_bag"]


def _renorm_(weight: Tensor, idx: np.ndarray, max_norm: float, norm_type: float) -> None:
    """Rescale (in place) the looked-up rows whose norm exceeds ``max_norm``."""
    rows = np.unique(idx)
    w = weight._data
    norms = np.linalg.norm(w[rows].astype(np.float64), ord=norm_type, axis=1)
    big = norms > max_norm
    if big.any():
        scale = (max_norm / (norms[big] + 1e-7)).astype(w.dtype)
        w[rows[big]] *= scale[:, None]
        weight._bump()


def embedding(
    input: Tensor,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Rows of ``weight`` at the integer ids ``input``; repeated ids accumulate gradient and
    the ``padding_idx`` row gets none.

    >>> import retrograd as rg
    >>> w = rg.arange(6.0).reshape(3, 2)
    >>> rg.nn.functional.embedding(rg.tensor([2, 0]), w).tolist()
    [[4.0, 5.0], [0.0, 1.0]]
    """
    idx = input._data if isinstance(input, Tensor) else np.asarray(input)
    if idx.dtype.kind not in "iu":
        raise RuntimeError(
            f"Expected tensor for argument #1 'indices' to have one of the following scalar types: "
            f"Long, Int; but got {idx.dtype} instead (while checking arguments for embedding)"
        )
    n = weight._data.shape[0]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)].flat[0]
        raise IndexError(f"embedding(): index {bad} is out of range for a weight with {n} rows")
    if idx.size and idx.min() < 0:
        raise IndexError(
            f"embedding(): index {idx.min()} is out of range for a weight with {n} rows"
        )
    if padding_idx is not None:
        if padding_idx < 0:
            padding_idx += n
    if max_norm is not None:
        with no_grad():
            _renorm_(weight, idx.reshape(-1), max_norm, norm_type)
    if scale_grad_by_freq:
        counts = np.bincount(idx.reshape(-1), minlength=n)
        out = embedding_lookup(weight, idx, padding_idx)
        inv = (1.0 / np.maximum(counts[idx], 1)).astype(weight._data.dtype)[..., None]
        # scale the gradient only: y + (y*s - y*s).detach() keeps the value, scales the vjp
        scaled = out * Tensor._make(inv)
        return scaled + (out - scaled).detach()
    return embedding_lookup(weight, idx, padding_idx)


def embedding_bag(
    input: Tensor,
    weight: Tensor,
    offsets: Tensor | None = None,
    max_norm=None,
    norm_type=2,
    scale_grad_by_freq=False,
    mode: str = "mean",
    sparse=False,
    per_sample_weights=None,
    include_last_offset=False,
    padding_idx=None,
) -> Tensor:
    """Sum/mean/max of embedding bags (2-D ``input``, or 1-D with ``offsets``)."""
    idx = input._data
    if idx.ndim == 2:
        bags = [idx[i] for i in range(idx.shape[0])]
    else:
        offs = list(offsets._data.tolist())
        if include_last_offset:
            ends = offs[1:]
            offs = offs[:-1]
        else:
            ends = offs[1:] + [idx.size]
        bags = [idx[s:e] for s, e in zip(offs, ends)]
    from ...ops.movement import stack

    outs = []
    for bi, b in enumerate(bags):
        e = embedding(Tensor._make(b), weight, padding_idx, max_norm, norm_type)
        if per_sample_weights is not None:
            pw = per_sample_weights.reshape(-1)
            start = bi * idx.shape[1] if idx.ndim == 2 else int(offsets._data[bi])
            e = e * pw[start : start + len(b)].unsqueeze(-1)
        if mode == "sum":
            outs.append(e.sum(0))
        elif mode == "mean":
            outs.append(e.mean(0) if len(b) else e.sum(0))
        else:
            outs.append(e.amax(0))
    return stack(outs)

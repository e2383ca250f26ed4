"""Distances: pairwise_distance, cosine_similarity, pdist."""

from __future__ import annotations

from ...tensor import Tensor

__all__ = ["pairwise_distance", "cosine_similarity", "pdist"]


def pairwise_distance(
    x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False
) -> Tensor:
    """``||x1 - x2 + eps||_p`` over the last dim.

    >>> import retrograd as rg
    >>> rg.nn.functional.pairwise_distance(rg.zeros(1, 2), rg.tensor([[3.0, 4.0]]), eps=0)
    tensor([5.])
    """
    from ...ops.reduce import vector_norm

    d = x1 - x2 + eps
    return vector_norm(d, p, -1, keepdim=keepdim)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """``x1 . x2 / max(||x1|| ||x2||, eps)`` along ``dim``.

    >>> import retrograd as rg
    >>> rg.nn.functional.cosine_similarity(rg.tensor([[1.0, 0.0]]), rg.tensor([[1.0, 0.0]]))
    tensor([1.])
    """
    from ...ops.reduce import vector_norm

    n1 = vector_norm(x1, 2, dim, keepdim=True).clamp_min(eps)
    n2 = vector_norm(x2, 2, dim, keepdim=True).clamp_min(eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def pdist(input: Tensor, p: float = 2.0) -> Tensor:
    """Distances between every pair of rows (upper triangle, row-major)."""
    import numpy as np

    from ...ops.reduce import vector_norm

    n = input._data.shape[0]
    i, j = np.triu_indices(n, 1)
    return vector_norm(input[i] - input[j], p, -1)

"""``rg.linalg``: norms and products, as in ``torch.linalg``."""

from __future__ import annotations

from .ops.linalg import matmul
from .ops.reduce import linalg_norm as norm
from .ops.reduce import matrix_norm, vector_norm

__all__ = ["norm", "vector_norm", "matrix_norm", "matmul"]

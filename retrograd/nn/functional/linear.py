"""Linear maps: ``linear`` (a fused primitive) and ``bilinear``."""

from __future__ import annotations

from ...ops.nn_ops import linear
from ...tensor import Tensor

__all__ = ["linear", "bilinear"]


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``y_k = x1^T A_k x2 + b_k`` with ``weight`` of shape (out, in1, in2).

    >>> import retrograd as rg
    >>> rg.nn.functional.bilinear(rg.ones(2, 3), rg.ones(2, 4), rg.ones(5, 3, 4)).shape
    retrograd.Size([2, 5])
    """
    from ...ops.linalg import einsum

    if (
        input1._data.shape[-1] != weight._data.shape[1]
        or input2._data.shape[-1] != weight._data.shape[2]
    ):
        raise RuntimeError(
            f"bilinear(): input1 size {input1._data.shape[-1]} and input2 size "
            f"{input2._data.shape[-1]} do not match weight of shape {tuple(weight._data.shape)}"
        )
    out = einsum("...i,kij,...j->...k", input1, weight, input2)
    return out + bias if bias is not None else out


linear.__doc__ = """Fused ``input @ weight.T + bias`` (one graph node, one GEMM).

>>> import retrograd as rg
>>> rg.nn.functional.linear(rg.ones(2, 3), rg.ones(4, 3)).shape
retrograd.Size([2, 4])
"""

"""``ReduceOp``: the reduction applied by ``all_reduce``, ``reduce`` and ``reduce_scatter``."""

from __future__ import annotations

import enum

import numpy as np

__all__ = ["ReduceOp"]


class RedOpType(enum.IntEnum):
    """The reduction kinds (``torch.distributed.ReduceOp.RedOpType``)."""

    SUM = 0
    AVG = 1
    PRODUCT = 2
    MIN = 3
    MAX = 4
    BAND = 5
    BOR = 6
    BXOR = 7


class ReduceOp:
    """Reductions for collectives, as in ``torch.distributed.ReduceOp``.

    >>> from retrograd.distributed import ReduceOp
    >>> ReduceOp.SUM
    <RedOpType.SUM: 0>
    """

    RedOpType = RedOpType
    SUM = RedOpType.SUM
    AVG = RedOpType.AVG
    PRODUCT = RedOpType.PRODUCT
    MIN = RedOpType.MIN
    MAX = RedOpType.MAX
    BAND = RedOpType.BAND
    BOR = RedOpType.BOR
    BXOR = RedOpType.BXOR


def _check_op(op, dtype: np.dtype) -> RedOpType:
    try:
        op = RedOpType(op)
    except ValueError:
        raise ValueError(f"unknown reduce op {op!r}; expected a member of ReduceOp") from None
    if op in (RedOpType.BAND, RedOpType.BOR, RedOpType.BXOR) and dtype.kind not in "biu":
        raise RuntimeError(f"ReduceOp.{op.name} needs an integer or bool tensor; got {dtype}")
    return op


def _mpi_op(MPI, op: RedOpType):
    """The MPI reduction carrying out ``op`` (AVG is a SUM followed by a division)."""
    return {
        RedOpType.SUM: MPI.SUM,
        RedOpType.AVG: MPI.SUM,
        RedOpType.PRODUCT: MPI.PROD,
        RedOpType.MIN: MPI.MIN,
        RedOpType.MAX: MPI.MAX,
        RedOpType.BAND: MPI.BAND,
        RedOpType.BOR: MPI.BOR,
        RedOpType.BXOR: MPI.BXOR,
    }[op]


def _divide_(arr: np.ndarray, n: int) -> None:
    """In-place ``arr /= n`` for AVG: true division for floats, C-style truncation for ints
    (as NCCL's integer average does)."""
    if arr.dtype.kind in "fc":
        arr /= arr.dtype.type(n)
    elif arr.dtype.kind in "iu":
        q = np.abs(arr) // n
        np.copyto(arr, np.where(arr < 0, -q, q).astype(arr.dtype, copy=False))
    else:
        raise RuntimeError(f"ReduceOp.AVG is not supported for {arr.dtype} tensors")

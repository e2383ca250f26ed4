"""``all_reduce_gradients``: average ``.grad`` across ranks after backward, in flat buckets.

The explicit alternative to ``DistributedDataParallel`` (no hooks, no overlap): call it between
``loss.backward()`` and ``optimizer.step()``.
"""

from __future__ import annotations

import numpy as np

from .process_group import _check_group
from .reduce_op import RedOpType, ReduceOp

__all__ = ["all_reduce_gradients"]


def all_reduce_gradients(params, op=ReduceOp.AVG, bucket_cap_mb: float = 25, group=None) -> None:
    """Average (or sum, ``op=ReduceOp.SUM``) the gradients of ``params`` (a Module or an
    iterable of tensors) across ranks, in place. Parameters whose ``.grad`` is None on this
    rank contribute zeros and get the result only if it is non-zero somewhere.

    >>> import retrograd as rg, retrograd.distributed as dist
    >>> dist.init_process_group("mpi")
    >>> lin = rg.nn.Linear(2, 1); lin(rg.ones(1, 2)).sum().backward()
    >>> dist.all_reduce_gradients(lin)
    >>> dist.destroy_process_group()
    """
    from ..tensor import Tensor

    pg = _check_group(group)
    op = RedOpType(op)
    if op not in (RedOpType.AVG, RedOpType.SUM):
        raise ValueError(f"all_reduce_gradients supports ReduceOp.AVG and SUM; got {op.name}")
    if hasattr(params, "parameters"):
        params = params.parameters()
    ps = [p for p in params if p.requires_grad]
    if pg.comm is None or not ps:
        return
    cap = int(bucket_cap_mb * 2**20)
    groups: dict = {}
    for p in reversed(ps):
        groups.setdefault(p._data.dtype, []).append(p)
    MPI = pg.MPI
    pending = []
    for dt, plist in groups.items():
        start, size = 0, 0
        for i, p in enumerate(plist + [None]):
            if p is not None and (size == 0 or size + p._data.nbytes <= cap):
                size += p._data.nbytes
                continue
            chunk = plist[start:i]
            flat = np.concatenate(
                [
                    (q._grad._data if q._grad is not None else np.zeros(q._data.shape, dt)).ravel()
                    for q in chunk
                ]
            ).astype(dt, copy=False)
            pending.append((chunk, flat, pg.comm.Iallreduce(MPI.IN_PLACE, flat, op=MPI.SUM)))
            start, size = i, (p._data.nbytes if p is not None else 0)
    pg.wait_all([r for _, _, r in pending], ("all_reduce_gradients", pg.next_seq()))
    for chunk, flat, _ in pending:
        if op == RedOpType.AVG:
            flat /= flat.dtype.type(pg.size)
        off = 0
        for q in chunk:
            n = q._data.size
            v = flat[off : off + n].reshape(q._data.shape)
            off += n
            if q._grad is None:
                if v.any():
                    q._grad = Tensor._make(v.copy())
            else:
                np.copyto(q._grad._data, v, casting="unsafe")
                q._grad._bump()

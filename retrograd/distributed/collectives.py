"""Collectives with ``torch.distributed``'s names and semantics, on MPI non-blocking calls.

Every op writes its result in place into the given tensors (their NumPy buffers, through
mpi4py's buffer interface: no pickling), and returns ``None`` or, with ``async_op=True``, a
``Work`` whose ``wait()`` is bounded by the group's timeout. In a world of size 1 every op is
an identity and MPI is not used.
"""

from __future__ import annotations

import pickle

import numpy as np

from .process_group import _check_group
from .reduce_op import RedOpType, ReduceOp, _check_op, _divide_, _mpi_op
from .work import Work

__all__ = [
    "all_reduce",
    "broadcast",
    "reduce",
    "all_gather",
    "all_gather_into_tensor",
    "reduce_scatter",
    "reduce_scatter_tensor",
    "gather",
    "scatter",
    "all_to_all_single",
    "barrier",
    "monitored_barrier",
    "send",
    "recv",
    "isend",
    "irecv",
    "all_gather_object",
    "broadcast_object_list",
]

# dtypes MPI reduces natively; float16 goes through a float32 buffer
_NATIVE = set("fdbBhHiIlLqQ?FD")


def _array(t) -> np.ndarray:
    from ..tensor import Tensor

    if isinstance(t, Tensor):
        return t._data
    raise TypeError(f"expected a retrograd Tensor; got {type(t).__name__}")


def _wire(arr: np.ndarray) -> np.ndarray:
    """A C-contiguous copy-or-view of ``arr`` in a dtype MPI can carry."""
    if arr.dtype.char not in _NATIVE:
        return np.ascontiguousarray(arr, dtype=np.float32)
    return np.ascontiguousarray(arr)


def _inout(t):
    """(buffer, writeback): the buffer MPI writes into and the step storing it back into ``t``."""
    arr = _array(t)
    if arr.dtype.char in _NATIVE and arr.flags.c_contiguous and arr.flags.writeable:

        def wb():
            t._bump()

        return arr, wb
    buf = _wire(arr).copy()

    def wb():
        np.copyto(arr, buf.reshape(arr.shape), casting="unsafe")
        t._bump()

    return buf, wb


def _op(pg, op, dtype):
    op = _check_op(op, dtype)
    MPI = pg.MPI
    if dtype == np.bool_:  # MPI's logical ops for C_BOOL
        if op in (RedOpType.SUM, RedOpType.MAX, RedOpType.BOR, RedOpType.AVG):
            return op, MPI.LOR
        if op in (RedOpType.MIN, RedOpType.PRODUCT, RedOpType.BAND):
            return op, MPI.LAND
        return op, MPI.LXOR
    return op, _mpi_op(MPI, op)


def _run(pg, reqs, finish, name, async_op, outputs):
    w = Work(pg, reqs, finish, (name, pg.next_seq()), outputs)
    if async_op:
        return w
    w.wait()
    return None


def _local(pg, finish, async_op, outputs):
    w = Work(pg, [], finish, "local", outputs)
    return w if async_op else None


def _check_rank(pg, r, what):
    if not (0 <= r < pg.size):
        raise ValueError(f"Invalid {what} rank {r}: expected 0 <= {what} < {pg.size}")


def _one_rank(op: str, what: str, r, group_r):
    """PyTorch's ``src``/``group_src`` (``dst``/``group_dst``) pair: exactly one is given.
    With only the default group a group rank equals the global rank."""
    if r is not None and group_r is not None:
        raise ValueError(f"{op}: can't specify both {what} and group_{what}")
    if r is None and group_r is None:
        raise ValueError(f"{op}: must specify {what} or group_{what}")
    return r if r is not None else group_r


def _check_list(pg, lst, ref, what):
    if lst is None or len(lst) != pg.size:
        n = "None" if lst is None else len(lst)
        raise RuntimeError(
            f"{what}: the tensor list must have world_size={pg.size} entries; got {n}"
        )
    for i, t in enumerate(lst):
        a = _array(t)
        if a.shape != ref.shape or a.dtype != ref.dtype:
            raise RuntimeError(
                f"{what}: tensor {i} of the list has shape {tuple(a.shape)} and dtype {a.dtype}; "
                f"expected shape {tuple(ref.shape)} and dtype {ref.dtype}"
            )


def _store(t, src: np.ndarray) -> None:
    arr = _array(t)
    np.copyto(arr, src.reshape(arr.shape), casting="unsafe")
    t._bump()


# --- reductions ------------------------------------------------------------------------------
def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce ``tensor`` across all ranks, in place, so every rank holds the result.

    >>> import retrograd as rg
    >>> import retrograd.distributed as dist
    >>> dist.init_process_group("mpi")
    >>> t = rg.tensor([1.0, 2.0])
    >>> dist.all_reduce(t, op=dist.ReduceOp.SUM); t
    tensor([1., 2.])
    >>> dist.destroy_process_group()
    """
    pg = _check_group(group)
    arr = _array(tensor)
    op, mop = _op(pg, op, arr.dtype) if pg.comm is not None else (_check_op(op, arr.dtype), None)
    if pg.comm is None:
        return _local(pg, None, async_op, [tensor])
    buf, wb = _inout(tensor)
    req = pg.comm.Iallreduce(pg.MPI.IN_PLACE, buf, op=mop)

    def finish():
        if op == RedOpType.AVG:
            _divide_(buf, pg.size)
        wb()

    return _run(pg, [req], finish, "all_reduce", async_op, [tensor])


def reduce(
    tensor,
    dst: int | None = None,
    op=ReduceOp.SUM,
    group=None,
    async_op: bool = False,
    group_dst: int | None = None,
):
    """Reduce ``tensor`` across ranks into rank ``dst``'s tensor (others are left unchanged)."""
    pg = _check_group(group)
    dst = _one_rank("reduce", "dst", dst, group_dst)
    _check_rank(pg, dst, "dst")
    arr = _array(tensor)
    if pg.comm is None:
        _check_op(op, arr.dtype)
        return _local(pg, None, async_op, [tensor])
    op, mop = _op(pg, op, arr.dtype)
    if pg.rank == dst:
        buf, wb = _inout(tensor)
        req = pg.comm.Ireduce(pg.MPI.IN_PLACE, buf, op=mop, root=dst)

        def finish():
            if op == RedOpType.AVG:
                _divide_(buf, pg.size)
            wb()

    else:
        req = pg.comm.Ireduce(_wire(arr), None, op=mop, root=dst)
        finish = None
    return _run(pg, [req], finish, "reduce", async_op, [tensor])


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce ``input_list[i]`` across ranks and store the result for rank ``i`` in its
    ``output``."""
    pg = _check_group(group)
    out = _array(output)
    _check_list(pg, input_list, out, "reduce_scatter")
    if pg.comm is None:
        _check_op(op, out.dtype)
        return _local(pg, lambda: _store(output, _array(input_list[0])), async_op, [output])
    op, mop = _op(pg, op, out.dtype)
    send = _wire(np.stack([_array(t) for t in input_list]))
    recv = np.empty(out.shape, send.dtype)
    req = pg.comm.Ireduce_scatter_block(send, recv, op=mop)

    def finish():
        if op == RedOpType.AVG:
            _divide_(recv, pg.size)
        _store(output, recv)

    return _run(pg, [req], finish, "reduce_scatter", async_op, [output])


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Like ``reduce_scatter`` with the inputs concatenated (or stacked) in one tensor."""
    pg = _check_group(group)
    out, inp = _array(output), _array(input)
    if inp.size != out.size * pg.size or inp.dtype != out.dtype:
        raise RuntimeError(
            f"reduce_scatter_tensor: input of shape {tuple(inp.shape)} ({inp.dtype}) must have "
            f"world_size ({pg.size}) x output numel ({out.size}) elements of dtype {out.dtype}"
        )
    if pg.comm is None:
        _check_op(op, out.dtype)
        return _local(pg, lambda: _store(output, inp), async_op, [output])
    op, mop = _op(pg, op, out.dtype)
    send = _wire(inp)
    recv = np.empty(out.size, send.dtype)
    req = pg.comm.Ireduce_scatter_block(send, recv, op=mop)

    def finish():
        if op == RedOpType.AVG:
            _divide_(recv, pg.size)
        _store(output, recv)

    return _run(pg, [req], finish, "reduce_scatter_tensor", async_op, [output])


# --- data movement ---------------------------------------------------------------------------
def broadcast(
    tensor, src: int | None = None, group=None, async_op: bool = False, group_src: int | None = None
):
    """Copy rank ``src``'s ``tensor`` into ``tensor`` on every other rank. Give exactly one of
    ``src`` (global rank) and ``group_src`` (rank in ``group``; the same with one group)."""
    pg = _check_group(group)
    src = _one_rank("broadcast", "src", src, group_src)
    _check_rank(pg, src, "src")
    if pg.comm is None:
        return _local(pg, None, async_op, [tensor])
    buf, wb = _inout(tensor)
    req = pg.comm.Ibcast(buf, root=src)
    return _run(pg, [req], wb if pg.rank != src else None, "broadcast", async_op, [tensor])


def all_gather(tensor_list, tensor, group=None, async_op: bool = False):
    """Fill ``tensor_list[i]`` with rank ``i``'s ``tensor`` on every rank."""
    pg = _check_group(group)
    arr = _array(tensor)
    _check_list(pg, tensor_list, arr, "all_gather")
    if pg.comm is None:
        return _local(pg, lambda: _store(tensor_list[0], arr), async_op, tensor_list)
    send = _wire(arr)
    recv = np.empty((pg.size, *arr.shape), send.dtype)
    req = pg.comm.Iallgather(send, recv)

    def finish():
        for t, part in zip(tensor_list, recv):
            _store(t, part)

    return _run(pg, [req], finish, "all_gather", async_op, tensor_list)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op: bool = False):
    """Gather every rank's ``input_tensor`` into ``output_tensor`` (concatenated along dim 0,
    or stacked: any shape with world_size x numel elements)."""
    pg = _check_group(group)
    out, inp = _array(output_tensor), _array(input_tensor)
    if out.size != inp.size * pg.size or inp.dtype != out.dtype:
        raise RuntimeError(
            f"all_gather_into_tensor: output of shape {tuple(out.shape)} ({out.dtype}) must have "
            f"world_size ({pg.size}) x input numel ({inp.size}) elements of dtype {inp.dtype}"
        )
    if pg.comm is None:
        return _local(pg, lambda: _store(output_tensor, inp), async_op, [output_tensor])
    send = _wire(inp)
    buf, wb = _inout(output_tensor)
    req = pg.comm.Iallgather(send, buf.reshape(-1))
    return _run(pg, [req], wb, "all_gather_into_tensor", async_op, [output_tensor])


def gather(
    tensor,
    gather_list=None,
    dst: int | None = None,
    group=None,
    async_op: bool = False,
    group_dst: int | None = None,
):
    """Collect every rank's ``tensor`` into ``gather_list`` on rank ``dst``."""
    pg = _check_group(group)
    dst = _one_rank("gather", "dst", dst, group_dst)
    _check_rank(pg, dst, "dst")
    arr = _array(tensor)
    if pg.rank == dst:
        _check_list(pg, gather_list, arr, "gather")
    elif gather_list:
        raise ValueError("gather: gather_list must be None or empty on non-destination ranks")
    if pg.comm is None:
        return _local(pg, lambda: _store(gather_list[0], arr), async_op, gather_list or [])
    send = _wire(arr)
    recv = np.empty((pg.size, *arr.shape), send.dtype) if pg.rank == dst else None
    req = pg.comm.Igather(send, recv, root=dst)

    def finish():
        if recv is not None:
            for t, part in zip(gather_list, recv):
                _store(t, part)

    return _run(pg, [req], finish, "gather", async_op, gather_list or [])


def scatter(
    tensor,
    scatter_list=None,
    src: int | None = None,
    group=None,
    async_op: bool = False,
    group_src: int | None = None,
):
    """Send ``scatter_list[i]`` from rank ``src`` into ``tensor`` on rank ``i``."""
    pg = _check_group(group)
    src = _one_rank("scatter", "src", src, group_src)
    _check_rank(pg, src, "src")
    arr = _array(tensor)
    if pg.rank == src:
        _check_list(pg, scatter_list, arr, "scatter")
    elif scatter_list:
        raise ValueError("scatter: scatter_list must be None or empty on non-source ranks")
    if pg.comm is None:
        return _local(pg, lambda: _store(tensor, _array(scatter_list[0])), async_op, [tensor])
    send = _wire(np.stack([_array(t) for t in scatter_list])) if pg.rank == src else None
    recv = np.empty(arr.shape, _wire(arr[:0]).dtype)
    req = pg.comm.Iscatter(send, recv, root=src)
    return _run(pg, [req], lambda: _store(tensor, recv), "scatter", async_op, [tensor])


def all_to_all_single(
    output,
    input,
    output_split_sizes=None,
    input_split_sizes=None,
    group=None,
    async_op: bool = False,
):
    """Split ``input`` along dim 0 into world_size equal chunks; chunk ``i`` goes to rank ``i``,
    and ``output`` receives the chunks from every rank in rank order (equal splits only)."""
    pg = _check_group(group)
    out, inp = _array(output), _array(input)
    if output_split_sizes is not None or input_split_sizes is not None:
        raise NotImplementedError("all_to_all_single: only equal splits are supported")
    if out.shape != inp.shape or inp.shape[0] % pg.size:
        raise RuntimeError(
            f"all_to_all_single: input {tuple(inp.shape)} and output {tuple(out.shape)} must "
            f"have the same shape with dim 0 divisible by world_size={pg.size}"
        )
    if pg.comm is None:
        return _local(pg, lambda: _store(output, inp), async_op, [output])
    send = _wire(inp)
    recv = np.empty_like(send)
    req = pg.comm.Ialltoall(send, recv)
    return _run(pg, [req], lambda: _store(output, recv), "all_to_all_single", async_op, [output])


def barrier(group=None, async_op: bool = False, device_ids=None, timeout=None):
    """Wait until every rank reaches this call (bounded by ``timeout``, or else by the group
    timeout)."""
    pg = _check_group(group)
    if pg.comm is None:
        return _local(pg, None, async_op, [])
    w = Work(pg, [pg.comm.Ibarrier()], None, ("barrier", pg.next_seq()), [])
    if async_op:
        return w
    w.wait(timeout)
    return None


def monitored_barrier(group=None, timeout=None, wait_all_ranks: bool = False):
    """A barrier that raises ``DistBackendError`` naming the ranks that did not arrive."""
    pg = _check_group(group)
    if pg.comm is None:
        return None
    w = Work(pg, [pg.comm.Ibarrier()], None, ("monitored_barrier", pg.next_seq()))
    w.wait(timeout)
    return None


# --- point to point --------------------------------------------------------------------------
def isend(
    tensor, dst: int | None = None, group=None, tag: int = 0, group_dst: int | None = None
) -> Work:
    """Start sending ``tensor`` to rank ``dst``."""
    pg = _check_group(group)
    dst = _one_rank("isend", "dst", dst, group_dst)
    _check_rank(pg, dst, "dst")
    if pg.comm is None:
        raise RuntimeError("isend: a world of size 1 has no other rank to send to")
    buf = _wire(_array(tensor))
    return Work(pg, [pg.comm.Isend(buf, dest=dst, tag=tag)], None, ("send", pg.next_seq()))


def irecv(
    tensor, src: int | None = None, group=None, tag: int = 0, group_src: int | None = None
) -> Work:
    """Start receiving into ``tensor`` from rank ``src`` (any rank when None)."""
    pg = _check_group(group)
    if src is not None and group_src is not None:
        raise ValueError("irecv: can't specify both src and group_src")
    src = src if src is not None else group_src
    if pg.comm is None:
        raise RuntimeError("irecv: a world of size 1 has no other rank to receive from")
    if src is not None:
        _check_rank(pg, src, "src")
    buf, wb = _inout(tensor)
    source = pg.MPI.ANY_SOURCE if src is None else src
    req = pg.comm.Irecv(buf, source=source, tag=tag)
    return Work(pg, [req], wb, ("recv", pg.next_seq()), [tensor])


def send(
    tensor, dst: int | None = None, group=None, tag: int = 0, group_dst: int | None = None
) -> None:
    """Send ``tensor`` to rank ``dst`` and wait until it is delivered."""
    isend(tensor, dst, group, tag, group_dst).wait()


def recv(
    tensor, src: int | None = None, group=None, tag: int = 0, group_src: int | None = None
) -> int:
    """Receive into ``tensor``; returns the sender's rank."""
    pg = _check_group(group)
    if src is not None and group_src is not None:
        raise ValueError("recv: can't specify both src and group_src")
    src = src if src is not None else group_src
    if pg.comm is None:
        raise RuntimeError("recv: a world of size 1 has no other rank to receive from")
    buf, wb = _inout(tensor)
    status = pg.MPI.Status()
    source = pg.MPI.ANY_SOURCE if src is None else src
    req = pg.comm.Irecv(buf, source=source, tag=tag)
    pg.wait_all([req], ("recv", pg.next_seq()), statuses=[status])
    wb()
    return status.Get_source()


# --- Python objects (pickled into byte buffers) ----------------------------------------------
def all_gather_object(object_list: list, obj, group=None) -> None:
    """Fill ``object_list[i]`` with rank ``i``'s picklable ``obj``."""
    pg = _check_group(group)
    if len(object_list) != pg.size:
        raise RuntimeError(
            f"all_gather_object: object_list must have world_size={pg.size} entries; "
            f"got {len(object_list)}"
        )
    if pg.comm is None:
        object_list[0] = obj
        return
    data = np.frombuffer(pickle.dumps(obj), np.uint8)
    counts = np.zeros(pg.size, np.int64)
    pg.wait_all(
        [pg.comm.Iallgather(np.array([data.size], np.int64), counts)],
        ("all_gather_object", pg.next_seq()),
    )
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
    recv = np.empty(int(counts.sum()), np.uint8)
    MPI = pg.MPI
    req = pg.comm.Iallgatherv(data, [recv, counts.tolist(), displs.tolist(), MPI.BYTE])
    pg.wait_all([req], ("all_gather_object", pg.next_seq()))
    for i in range(pg.size):
        object_list[i] = pickle.loads(recv[displs[i] : displs[i] + counts[i]].tobytes())


def broadcast_object_list(
    object_list: list,
    src: int | None = None,
    group=None,
    device=None,
    group_src: int | None = None,
) -> None:
    """Replace ``object_list``'s items on every rank by rank ``src``'s (picklable) items."""
    pg = _check_group(group)
    src = _one_rank("broadcast_object_list", "src", src, group_src)
    _check_rank(pg, src, "src")
    if pg.comm is None:
        return
    n = np.zeros(1, np.int64)
    if pg.rank == src:
        data = np.frombuffer(pickle.dumps(list(object_list)), np.uint8)
        n[0] = data.size
    pg.wait_all([pg.comm.Ibcast(n, root=src)], ("broadcast_object_list", pg.next_seq()))
    if pg.rank != src:
        data = np.empty(int(n[0]), np.uint8)
    pg.wait_all([pg.comm.Ibcast(data, root=src)], ("broadcast_object_list", pg.next_seq()))
    if pg.rank != src:
        items = pickle.loads(data.tobytes())
        object_list[: len(items)] = items

"""``DistributedDataParallel``: one model replica per MPI rank, gradients averaged in buckets.

How a step works (world size > 1):

* construction: parameters and buffers are broadcast from rank 0 (coalesced by dtype), and
  parameters are assigned to buckets of about ``bucket_cap_mb`` (the first one 1 MiB, so that
  communication starts early) in *reverse* registration order, which is roughly the order in
  which backward produces their gradients;
* forward: the autograd graph of the output is walked once to find which
  parameter is reached (an unreached one is unused in this iteration);
* backward: a post-accumulate-grad hook on every parameter copies its gradient, once complete,
  into its bucket's flat contiguous buffer; a full bucket starts a non-blocking ``Iallreduce``
  (buckets start in index order on every rank so the MPI calls match), which runs while
  backward computes the remaining gradients;
* end of backward: the hook that completes the last expected gradient waits for all buckets
  (bounded by the process-group timeout), divides by the world size and copies the averages
  back into ``.grad`` (or makes ``.grad`` a view of the bucket with
  ``gradient_as_bucket_view=True``). Finishing inside backward means ``optimizer.step()``
  needs no hook. A reduction that never completes (a parameter got no gradient although
  ``find_unused_parameters=False``) is reported by the next forward, as in PyTorch.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

from ...autograd.grad_mode import STATE
from ...autograd.node import Node
from ...tensor import Tensor
from ..modules.module import Module

__all__ = ["DistributedDataParallel"]

_FIRST_BUCKET_BYTES = 2**20  # torch.distributed._DEFAULT_FIRST_BUCKET_BYTES


class _Bucket:
    __slots__ = ("index", "params", "offsets", "flat", "pending", "req", "dtype")

    def __init__(self, index, params, dtype):
        self.index = index
        self.params = params
        self.dtype = dtype
        self.offsets = []
        off = 0
        for p in params:
            self.offsets.append(off)
            off += p._data.size
        self.flat = np.zeros(off, dtype)
        self.pending = 0
        self.req = None

    def view(self, i):
        p, off = self.params[i], self.offsets[i]
        return self.flat[off : off + p._data.size].reshape(p._data.shape)


def _tensors_in(obj, out):
    if isinstance(obj, Tensor):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            _tensors_in(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _tensors_in(o, out)
    return out


def _leaf_uses(outputs, wanted: dict) -> dict:
    """id(param) -> number of graph edges from ``outputs`` into that leaf."""
    uses = {}
    seen = set()
    stack = []
    for t in outputs:
        if t.grad_fn is not None:
            stack.append(t.grad_fn)
        elif id(t) in wanted:
            uses[id(t)] = uses.get(id(t), 0) + 1
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        for e in n.next:
            if e is None:
                continue
            t = e[0]
            if isinstance(t, Node):
                if id(t) not in seen:
                    stack.append(t)
            elif id(t) in wanted:
                uses[id(t)] = uses.get(id(t), 0) + 1
    return uses


class DistributedDataParallel(Module):
    """Data parallelism over the ranks of ``rg.distributed``: each rank runs ``module`` on its
    share of the batch and gradients are averaged across ranks during backward.

    Call ``rg.distributed.init_process_group`` first; with a world of size 1 this is a thin
    wrapper. ``state_dict`` keys carry the ``module.`` prefix, as in PyTorch.

    >>> import retrograd as rg
    >>> import retrograd.distributed as dist
    >>> dist.init_process_group("mpi")
    >>> model = rg.nn.parallel.DistributedDataParallel(rg.nn.Linear(3, 1))
    >>> model(rg.ones(2, 3)).sum().backward()
    >>> model.module.weight.grad.shape
    retrograd.Size([1, 3])
    >>> dist.destroy_process_group()
    """

    def __init__(
        self,
        module: Module,
        device_ids=None,
        output_device=None,
        dim: int = 0,
        broadcast_buffers: bool | None = None,
        init_sync: bool = True,
        process_group=None,
        bucket_cap_mb: float | None = None,
        find_unused_parameters: bool = False,
        check_reduction: bool = False,
        gradient_as_bucket_view: bool = False,
        static_graph: bool = False,
        forward_sync_buffers: bool | None = None,
    ):
        super().__init__()
        from ... import distributed as dist

        self._pg = dist.process_group._check_group(process_group)
        if not any(p.requires_grad for p in module.parameters()):
            raise RuntimeError(
                "DistributedDataParallel is not needed when a module doesn't have any "
                "parameter that requires a gradient."
            )
        self.module = module
        self.dim = dim
        self.device_ids = device_ids
        # PyTorch 2.13: ``broadcast_buffers`` is the older spelling of ``forward_sync_buffers``
        # (which always syncs buffers at init); both default to syncing
        if forward_sync_buffers is not None:
            self.broadcast_buffers = forward_sync_buffers
            init_sync_buffers = True
        else:
            self.broadcast_buffers = True if broadcast_buffers is None else broadcast_buffers
            init_sync_buffers = self.broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.static_graph = static_graph
        self.require_backward_grad_sync = True
        self.require_forward_param_sync = True
        self.bucket_bytes_cap = int((25 if bucket_cap_mb is None else bucket_cap_mb) * 2**20)
        self._params = [p for p in module.parameters() if p.requires_grad]
        self._names = {id(p): n for n, p in module.named_parameters() if p.requires_grad}
        self._buckets = self._build_buckets()
        self._where = {}  # id(param) -> (bucket, slot)
        for b in self._buckets:
            for i, p in enumerate(b.params):
                self._where[id(p)] = (b, i)
        self._remaining = None  # id(param) -> gradient contributions still expected
        self._started = False  # a gradient of the prepared iteration has arrived
        self._left = 0  # params whose gradient is not yet in its bucket
        self._next_bucket = 0
        self._used = None
        self._handles = []
        # instrumentation (read by benchmarks/distributed.py)
        self.comm_stats = {
            "reductions": 0,
            "wait_s": 0.0,
            "copy_s": 0.0,
            "buckets": 0,
            "overlapped": 0,
        }
        if self._pg.size > 1:
            self._verify_shapes()
            if init_sync:
                bufs = list(module.buffers()) if init_sync_buffers else []
                self._broadcast_coalesced(self._params + bufs)
            for p in self._params:
                self._handles.append(p.register_post_accumulate_grad_hook(self._grad_ready))

    # --- setup ---------------------------------------------------------------------------
    def _build_buckets(self) -> list:
        # as in PyTorch the first bucket is small (1 MiB): the last layers' gradients, ready
        # first, start travelling while backward is still computing the others
        buckets, cur, cur_bytes = [], {}, {}
        for p in reversed(self._params):
            dt = p._data.dtype
            cur.setdefault(dt, []).append(p)
            cur_bytes[dt] = cur_bytes.get(dt, 0) + p._data.nbytes
            cap = (
                min(_FIRST_BUCKET_BYTES, self.bucket_bytes_cap)
                if not buckets
                else (self.bucket_bytes_cap)
            )
            if cur_bytes[dt] >= cap:
                buckets.append(_Bucket(len(buckets), cur.pop(dt), dt))
                cur_bytes[dt] = 0
        for dt, ps in cur.items():
            buckets.append(_Bucket(len(buckets), ps, dt))
        return buckets

    def _verify_shapes(self):
        from ... import distributed as dist

        sig = [len(self._params)] + [hash(tuple(p.shape)) % (2**31) for p in self._params]
        sig = np.array(
            [len(sig), int(np.sum(sig) % (2**31)), sum(p.numel() for p in self._params)], np.int64
        )
        lo, hi = Tensor._make(sig.copy()), Tensor._make(sig.copy())
        dist.all_reduce(lo, dist.ReduceOp.MIN)
        dist.all_reduce(hi, dist.ReduceOp.MAX)
        if not np.array_equal(lo._data, hi._data):
            raise RuntimeError(
                f"DistributedDataParallel: rank {self._pg.rank}: the model's parameters differ "
                "in number or shape across ranks (every rank must build the same model)"
            )

    def _broadcast_coalesced(self, tensors, src: int = 0):
        """Broadcast ``tensors`` from ``src`` with one message per dtype."""
        from ... import distributed as dist

        groups = {}
        for t in tensors:
            groups.setdefault(t._data.dtype, []).append(t)
        for dt, ts in groups.items():
            flat = Tensor._make(np.concatenate([t._data.reshape(-1) for t in ts]).astype(dt))
            dist.broadcast(flat, src)
            off = 0
            for t in ts:
                n = t._data.size
                np.copyto(t._data, flat._data[off : off + n].reshape(t._data.shape))
                t._bump()
                off += n

    # --- forward -------------------------------------------------------------------------
    def forward(self, *inputs, **kwargs):
        if self._pg.size == 1:
            return self.module(*inputs, **kwargs)
        if self._started and self._left and self._remaining is not None:
            # backward ran but some gradient never came (a forward without backward is fine)
            missing = [self._names.get(k, "?") for k, v in self._remaining.items() if v > 0]
            self._remaining = None
            raise RuntimeError(
                "Expected to have finished reduction in the prior iteration before starting a "
                "new one. This error indicates that your module has parameters that were not "
                "used in producing loss. You can enable unused parameter detection by passing "
                "the keyword argument `find_unused_parameters=True` to "
                "`retrograd.nn.parallel.DistributedDataParallel`. Parameters that did not "
                f"receive a gradient on rank {self._pg.rank}: {missing[:20]}"
            )
        if self.broadcast_buffers and self.require_forward_param_sync:
            bufs = list(self.module.buffers())
            if bufs:
                self._broadcast_coalesced(bufs)
        out = self.module(*inputs, **kwargs)
        if STATE.enabled and self.require_backward_grad_sync:
            self._prepare_for_backward(_tensors_in(out, []))
        else:
            self._remaining = None
        return out

    def _prepare_for_backward(self, outputs):
        wanted = {id(p): p for p in self._params}
        uses = _leaf_uses(outputs, wanted)
        # the engine sums a leaf's contributions and runs its post-accumulate hooks once per
        # backward (PyTorch's AccumulateGrad contract), so one call per reachable parameter
        self._remaining = {id(p): min(1, uses.get(id(p), 0)) for p in self._params}
        self._next_bucket = 0
        self._started = False
        for b in self._buckets:
            b.pending = len(b.params)
            b.req = None
        self._left = len(self._params)
        unused = [p for p in self._params if self._remaining[id(p)] == 0]
        if unused and not self.find_unused_parameters:
            # same as PyTorch: wait for gradients that will never come; reported next forward
            self._used = None
            return
        self._used = np.ones(len(self._params), np.int32) if self.find_unused_parameters else None
        index = {id(p): i for i, p in enumerate(self._params)}
        for p in unused:
            self._used[index[id(p)]] = 0
            b, i = self._where[id(p)]
            b.view(i)[...] = 0
            self._slot_ready(b)
        if self._left == 0 and self._remaining is not None:  # nothing needs a gradient
            self._remaining = None

    # --- backward ------------------------------------------------------------------------
    def _grad_ready(self, p):
        rem = self._remaining
        if rem is None:  # no_sync(), eval forward, or no forward since the last reduction
            return
        k = id(p)
        n = rem.get(k, 0) - 1
        if n < 0:
            raise RuntimeError(
                f"DistributedDataParallel: parameter {self._names.get(k, '?')} received more "
                "gradients than its uses in the last forward (backward twice per forward, or "
                "the parameter is also used outside the module's forward)"
            )
        rem[k] = n
        self._started = True
        if n > 0:
            return
        t0 = time.perf_counter()
        b, i = self._where[k]
        dst = b.view(i)
        src = p._grad._data
        if not np.shares_memory(dst, src):
            np.copyto(dst, src, casting="unsafe")
        self.comm_stats["copy_s"] += time.perf_counter() - t0
        self._slot_ready(b)

    def _slot_ready(self, b):
        b.pending -= 1
        self._left -= 1
        if b.pending == 0:
            self._launch_ready()
        elif any(x.req is not None for x in self._buckets[: self._next_bucket]):
            # MPI progresses non-blocking collectives only inside MPI calls: poke it
            self._pg.test_all([x.req for x in self._buckets[: self._next_bucket]])
        if self._left == 0:
            self._finalize()

    def _launch_ready(self):
        MPI = self._pg.MPI
        bs = self._buckets
        while self._next_bucket < len(bs) and bs[self._next_bucket].pending == 0:
            b = bs[self._next_bucket]
            b.req = self._pg.comm.Iallreduce(MPI.IN_PLACE, b.flat, op=MPI.SUM)
            self._next_bucket += 1

    def _finalize(self):
        pg = self._pg
        t0 = time.perf_counter()
        reqs = [b.req for b in self._buckets]
        # buckets whose all-reduce already finished while backward was still running
        self.comm_stats["overlapped"] += sum(
            1 for r in reqs[: self._next_bucket - 1] if r is not None and r.Test()
        )
        seq = pg.next_seq()
        pg.wait_all(reqs, ("DistributedDataParallel gradient all_reduce", seq))
        used = self._used
        if used is not None:
            from ... import distributed as dist

            ut = Tensor._make(used)
            dist.all_reduce(ut, dist.ReduceOp.MAX)
            used = ut._data
        self.comm_stats["wait_s"] += time.perf_counter() - t0
        self.comm_stats["reductions"] += 1
        self.comm_stats["buckets"] += len(self._buckets)
        index = {id(p): i for i, p in enumerate(self._params)} if used is not None else None
        for b in self._buckets:
            b.flat /= b.flat.dtype.type(pg.size)
            for i, p in enumerate(b.params):
                if used is not None and not used[index[id(p)]]:
                    continue  # unused on every rank: .grad stays as it was (None)
                v = b.view(i)
                g = p._grad
                if self.gradient_as_bucket_view:
                    if g is None or not np.shares_memory(g._data, v):
                        p._grad = Tensor._make(v)
                    else:
                        g._bump()
                elif g is None:
                    p._grad = Tensor._make(v.copy())
                else:
                    np.copyto(g._data, v, casting="unsafe")
                    g._bump()
        self._remaining = None
        for b in self._buckets:
            b.req = None

    # --- API -----------------------------------------------------------------------------
    @contextmanager
    def no_sync(self):
        """Skip gradient synchronisation inside the block: gradients accumulate locally and
        are averaged by the first backward after it.

        >>> import retrograd as rg, retrograd.distributed as dist
        >>> dist.init_process_group("mpi")
        >>> ddp = rg.nn.parallel.DistributedDataParallel(rg.nn.Linear(2, 1))
        >>> with ddp.no_sync():
        ...     ddp(rg.ones(1, 2)).sum().backward()
        >>> ddp(rg.ones(1, 2)).sum().backward()
        >>> dist.destroy_process_group()
        """
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    def bucket_sizes(self) -> list:
        """Number of parameters in each gradient bucket, in all-reduce order (for inspection)."""
        return [len(b.params) for b in self._buckets]

    def extra_repr(self) -> str:
        return f"world_size={self._pg.size}, buckets={len(self._buckets)}"

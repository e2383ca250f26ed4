"""Run under ``mpiexec -n N``: every collective against NumPy on data each rank can rebuild.

Rank r's input is drawn from a generator seeded with r, so every rank can compute the expected
result of a collective from all ranks' inputs without communicating. Prints one line per check
and exits 1 on the first mismatch.
"""

import sys

import numpy as np

import retrograd as rg
import retrograd.distributed as dist

dist.init_process_group("mpi", timeout=30)
R, N = dist.get_rank(), dist.get_world_size()
failures = []


def data(r, dtype, shape=(3, 4)):
    g = np.random.default_rng(100 + r)
    if np.dtype(dtype).kind == "f":
        return g.standard_normal(shape).astype(dtype)
    return g.integers(-50, 50, shape).astype(dtype)


def check(name, got, want):
    got = got.numpy() if isinstance(got, rg.Tensor) else got
    ok = got.dtype == want.dtype and got.shape == want.shape and np.allclose(got, want, rtol=1e-6)
    if R == 0:
        print(("ok  " if ok else "BAD ") + name, flush=True)
    if not ok:
        failures.append(f"{name}: got {got!r} want {want!r}")


for dtype in (np.float32, np.int64):
    dn = np.dtype(dtype).name
    alld = np.stack([data(r, dtype) for r in range(N)])
    mine = data(R, dtype)
    for opname, ref in [
        ("SUM", alld.sum(0)),
        ("MAX", alld.max(0)),
        ("MIN", alld.min(0)),
        ("PRODUCT", alld.prod(0)),
    ]:
        t = rg.tensor(mine)
        dist.all_reduce(t, op=getattr(dist.ReduceOp, opname))
        check(f"all_reduce {opname} {dn}", t, ref.astype(dtype))
    t = rg.tensor(mine)
    dist.all_reduce(t, op=dist.ReduceOp.AVG)
    if dtype == np.float32:
        want = (alld.sum(0) / np.float32(N)).astype(dtype)
    else:
        s = alld.sum(0)
        want = (np.sign(s) * (np.abs(s) // N)).astype(dtype)  # truncation, like NCCL
    check(f"all_reduce AVG {dn}", t, want)
    # async handle
    t = rg.tensor(mine)
    w = dist.all_reduce(t, async_op=True)
    w.wait()
    check(f"all_reduce async {dn} (completed={w.is_completed()})", t, alld.sum(0))
    # non-contiguous view: result written back through the view
    base = rg.tensor(np.ascontiguousarray(np.stack([mine, mine], -1)))
    view = base[..., 0]
    dist.all_reduce(view)
    check(f"all_reduce strided view {dn}", base[..., 0], alld.sum(0))
    check(f"all_reduce strided view untouched {dn}", base[..., 1], mine)
    # broadcast from the last rank
    t = rg.tensor(mine)
    dist.broadcast(t, src=N - 1)
    check(f"broadcast src={N - 1} {dn}", t, alld[N - 1])
    # all_gather / all_gather_into_tensor
    outs = [rg.zeros(3, 4, dtype=rg.tensor(mine).dtype) for _ in range(N)]
    dist.all_gather(outs, rg.tensor(mine))
    check(f"all_gather {dn}", np.stack([o.numpy() for o in outs]), alld)
    out = rg.zeros(N * 3, 4, dtype=rg.tensor(mine).dtype)
    dist.all_gather_into_tensor(out, rg.tensor(mine))
    check(f"all_gather_into_tensor {dn}", out, alld.reshape(N * 3, 4))
    # reduce_scatter: rank r's list item i is data(r*10+i); rank i gets sum over r
    lists = [[data(r * 10 + i, dtype) for i in range(N)] for r in range(N)]
    for opname, f in [("SUM", np.sum), ("MAX", np.max)]:
        out = rg.zeros(3, 4, dtype=rg.tensor(mine).dtype)
        ins = [rg.tensor(a) for a in lists[R]]
        dist.reduce_scatter(out, ins, op=getattr(dist.ReduceOp, opname))
        want = f(np.stack([lists[r][R] for r in range(N)]), 0).astype(dtype)
        check(f"reduce_scatter {opname} {dn}", out, want)
    out = rg.zeros(3, 4, dtype=rg.tensor(mine).dtype)
    dist.reduce_scatter_tensor(out, rg.tensor(np.concatenate(lists[R])))
    check(f"reduce_scatter_tensor {dn}", out, np.stack([lists[r][R] for r in range(N)]).sum(0))
    # reduce / gather / scatter to/from rank 0
    t = rg.tensor(mine)
    dist.reduce(t, dst=0)
    check(f"reduce dst=0 {dn}", t, alld.sum(0) if R == 0 else mine)
    gl = [rg.zeros(3, 4, dtype=t.dtype) for _ in range(N)] if R == 0 else None
    dist.gather(rg.tensor(mine), gl, dst=0)
    if R == 0:
        check(f"gather {dn}", np.stack([g.numpy() for g in gl]), alld)
    t = rg.zeros(3, 4, dtype=t.dtype)
    dist.scatter(t, [rg.tensor(alld[i]) for i in range(N)] if R == 0 else None, src=0)
    check(f"scatter {dn}", t, alld[R])

# point to point: a ring, rank r -> r+1
out = rg.tensor(data(R, np.float32))
inbox = rg.zeros(3, 4)
w_send = dist.isend(out, dst=(R + 1) % N)
w_recv = dist.irecv(inbox, src=(R - 1) % N)
w_send.wait()
w_recv.wait()
check("isend/irecv ring", inbox, data((R - 1) % N, np.float32))
if R == 0:
    dist.send(rg.tensor([7.0, 8.0]), dst=N - 1, tag=5)
if R == N - 1:
    box = rg.zeros(2)
    sender = dist.recv(box, src=None, tag=5)
    check(f"recv from any source (sender={sender})", box, np.array([7.0, 8.0], np.float32))
    check("recv returns the sender's rank", np.array([sender]), np.array([0]))

objs = [None] * N
dist.all_gather_object(objs, {"rank": R, "s": "x" * R})
check("all_gather_object", np.array([o["rank"] for o in objs]), np.arange(N))
lst = [R, "hello"] if R == 0 else [None, None]
dist.broadcast_object_list(lst, src=0)
check("broadcast_object_list", np.array([lst[0]]), np.array([0]))
# all_reduce_gradients: rank r's grads are data(r); the last rank has no grad for b
ws = [rg.zeros(3, 4, requires_grad=True), rg.zeros(5, requires_grad=True)]
ws[0].grad = rg.tensor(data(R, np.float32))
if R != N - 1:
    ws[1].grad = rg.tensor(data(R, np.float32, (5,)))
dist.all_reduce_gradients(ws, bucket_cap_mb=1e-5)  # a bucket per tensor
want_w = np.stack([data(r, np.float32) for r in range(N)]).sum(0) / np.float32(N)
check("all_reduce_gradients avg", ws[0].grad, want_w)
want_b = sum(data(r, np.float32, (5,)) for r in range(N - 1)) / np.float32(N)
check("all_reduce_gradients missing grad counts as zero", ws[1].grad, want_b.astype(np.float32))
dist.barrier()
dist.destroy_process_group()
if failures:
    print(f"rank {R}:", "\n".join(failures), file=sys.stderr)
    sys.exit(1)
if R == 0:
    print("ALL OK")

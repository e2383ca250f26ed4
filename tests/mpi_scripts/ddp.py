"""Run under ``mpiexec -n 2`` (or alone): DistributedDataParallel against a single process.

Every rank also trains a plain copy of the model on the *whole* global batch (no
communication): DDP, where each rank takes its slice of the global batch, must end with the
same parameters. One line per check: ``ok``/``BAD`` name, max |difference|; exit 1 on failure.
"""

import sys

import numpy as np

import retrograd as rg
import retrograd.distributed as dist
from retrograd.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("mpi", timeout=30)
R, N = dist.get_rank(), dist.get_world_size()
F = rg.nn.functional
failures = []
B, STEPS = 32, 20  # global batch, steps

g = np.random.default_rng(0)
X = g.standard_normal((STEPS, B, 1, 28, 28)).astype(np.float32)  # MNIST-shaped inputs
Y = g.integers(0, 10, (STEPS, B))


def mnist_mlp(seed=0):
    # the mnist-mlp preset's network (784-512-256-10), without dropout so that both sides
    # see the same function (dropout masks differ by construction)
    rg.manual_seed(seed)
    return rg.models.MLP(784, [512, 256], 10, activation="relu", dropout=0.0)


def report(name, model, ref, tol=1e-5):
    d = max(
        float(np.abs(a.detach().numpy() - b.detach().numpy()).max())
        for a, b in zip(model.parameters(), ref.parameters())
    )
    ok = d <= tol
    if R == 0:
        print(f"{'ok ' if ok else 'BAD'} {name} max|diff|={d:.2e}", flush=True)
    if not ok:
        failures.append(f"{name}: {d}")


def my_slice(step, micro=None, n_micro=1):
    per = B // N
    lo = R * per
    x, y = X[step, lo : lo + per], Y[step, lo : lo + per]
    if micro is not None:
        m = per // n_micro
        x, y = x[micro * m : (micro + 1) * m], y[micro * m : (micro + 1) * m]
    return rg.tensor(x), rg.tensor(y)


def train_ref(make_opt, steps=STEPS):
    ref = mnist_mlp()
    opt = make_opt(ref.parameters())
    for s in range(steps):
        opt.zero_grad()
        F.cross_entropy(ref(rg.tensor(X[s])), rg.tensor(Y[s])).backward()
        opt.step()
    return ref


def train_ddp(make_opt, steps=STEPS, **kw):
    model = mnist_mlp(seed=1 + R)  # different init on every rank: DDP must broadcast rank 0's
    if R == 0:
        model = mnist_mlp(seed=0)
    ddp = DDP(model, **kw)
    opt = make_opt(ddp.parameters())
    for s in range(steps):
        opt.zero_grad()
        x, y = my_slice(s)
        F.cross_entropy(ddp(x), y).backward()
        opt.step()
    return ddp


def sgd(ps):
    return rg.optim.SGD(ps, lr=0.05, momentum=0.9)


ref = train_ref(sgd)
ddp = train_ddp(sgd)
report(f"(a) mnist-mlp SGD {STEPS} steps, {N} ranks x {B // N} vs 1 x {B}", ddp.module, ref)
if R == 0:
    print(f"    buckets={ddp.bucket_sizes()} reductions={ddp.comm_stats['reductions']}")
if N > 1 and ddp.comm_stats["reductions"] != STEPS:
    failures.append(f"expected {STEPS} reductions, got {ddp.comm_stats['reductions']}")

ref_adam = train_ref(lambda ps: rg.optim.AdamW(ps, lr=1e-3), steps=5)
ddp_adam = train_ddp(lambda ps: rg.optim.AdamW(ps, lr=1e-3), steps=5)
report("(a) mnist-mlp AdamW 5 steps", ddp_adam.module, ref_adam, tol=1e-4)

# (f) small buckets: several Iallreduce messages, same result
small = train_ddp(sgd, bucket_cap_mb=0.001)
nb = len(small.bucket_sizes())
if nb < 3:
    failures.append(f"bucket_cap_mb=0.001 gave only {nb} buckets")
report(f"(f) bucket_cap_mb=0.001 -> {nb} buckets {small.bucket_sizes()}", small.module, ref)
view = train_ddp(sgd, bucket_cap_mb=0.001, gradient_as_bucket_view=True)
report("(f) gradient_as_bucket_view=True", view.module, ref)

# a forward with autograd on but no backward (a validation loss, say) is allowed
probe = DDP(mnist_mlp())
probe(rg.tensor(X[0, :2]))
x0, y0 = my_slice(0)
F.cross_entropy(probe(x0), y0).backward()
ok = N == 1 or probe.comm_stats["reductions"] == 1
if R == 0:
    print(f"{'ok ' if ok else 'BAD'} forward without backward, then a normal step")
if not ok:
    failures.append("forward without backward broke the next step")

# (e) no_sync: K micro-batches per rank, gradients accumulated locally and synced on the last
K = 4
ref1 = train_ref(sgd, steps=1)
acc = DDP(mnist_mlp())
opt = sgd(acc.parameters())
opt.zero_grad()
for k in range(K):
    x, y = my_slice(0, k, K)
    if k < K - 1:
        with acc.no_sync():
            (F.cross_entropy(acc(x), y) / K).backward()
    else:
        (F.cross_entropy(acc(x), y) / K).backward()
opt.step()
report(f"(e) no_sync: {K} micro-batches x {N} ranks == one batch of {B}", acc.module, ref1)

# unused parameters and a tied weight (used twice in forward)


class Net(rg.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = rg.nn.Linear(8, 8)
        self.unused = rg.nn.Linear(8, 8)
        self.b = rg.nn.Linear(8, 2)

    def forward(self, x):
        return self.b(self.a(self.a(x).relu()))


def net_run(wrap, steps=3, **kw):
    rg.manual_seed(3)
    m = Net()
    model = DDP(m, **kw) if wrap else m
    opt = rg.optim.SGD(model.parameters(), lr=0.1)
    gx = np.random.default_rng(5).standard_normal((steps, 8, 8)).astype(np.float32)
    for s in range(steps):
        opt.zero_grad()
        x = gx[s] if not wrap else gx[s][R * (8 // N) : (R + 1) * (8 // N)]
        model(rg.tensor(x)).square().mean().backward()
        opt.step()
    return m


ref_net = net_run(False)
got = net_run(True, find_unused_parameters=True)
report("find_unused_parameters + weight used twice", got, ref_net)
if got.unused.weight.grad is not None:
    failures.append("an unused parameter got a gradient")
if N > 1:  # a world of size 1 is a thin wrapper: nothing to wait for
    try:
        net_run(True, steps=2)
        failures.append("unused parameter without find_unused_parameters did not raise")
    except RuntimeError as e:
        if "find_unused_parameters" not in str(e):
            failures.append(f"wrong error: {e}")
        if R == 0:
            print("ok  unused parameter without find_unused_parameters raises at next forward")

# broadcast_buffers: BatchNorm running statistics follow rank 0 at every forward
rg.manual_seed(7)
bn_net = rg.nn.Sequential(rg.nn.Linear(6, 4), rg.nn.BatchNorm1d(4))
bn = bn_net[1]
bn.running_mean.fill_(float(R) * 10.0)  # different on every rank before DDP
bn_ddp = DDP(bn_net)


def gathered(t):
    outs = [rg.zeros_like(t) for _ in range(N)]
    dist.all_gather(outs, t)
    return np.stack([o.numpy() for o in outs])


g_rm = gathered(bn.running_mean)
if not np.allclose(g_rm, g_rm[0]):
    failures.append(f"BatchNorm buffers not synced at construction: {g_rm}")
gb = np.random.default_rng(11)
for _ in range(2):  # train mode: each rank updates the statistics from its own slice
    bn_ddp(rg.tensor(gb.standard_normal((4, 6)).astype(np.float32) + R)).sum().backward()
before = gathered(bn.running_mean)
bn_ddp.eval()
with rg.no_grad():
    bn_ddp(rg.tensor(np.zeros((2, 6), np.float32)))  # re-broadcast first, eval: no update
after = gathered(bn.running_mean)
ok = N == 1 or (not np.allclose(before[0], before[-1]) and np.allclose(after, before[0]))
if R == 0:
    print(f"{'ok ' if ok else 'BAD'} broadcast_buffers: BatchNorm running_mean follows rank 0")
if not ok:
    failures.append(f"broadcast_buffers: before {before} after {after}")

# SyncBatchNorm: N ranks x (B/N) samples == BatchNorm on the B samples (outputs, gradients,
# running statistics); rank r holds rows [r*B/N, (r+1)*B/N) of the global batch
gs = np.random.default_rng(21)
xs = (gs.standard_normal((8, 3, 5)) * 2 + 1).astype(np.float32)
wo = gs.standard_normal((8, 3, 5)).astype(np.float32)
rg.manual_seed(0)
bn_ref = rg.nn.BatchNorm1d(3)
bn_ref.weight.data = rg.tensor([1.5, -0.5, 2.0])
sync = rg.nn.parallel.SyncBatchNorm.convert_sync_batchnorm(rg.nn.Sequential(
    rg.nn.BatchNorm1d(3)))[0]
sync.weight.data = rg.tensor([1.5, -0.5, 2.0])
lo, hi = R * 8 // N, (R + 1) * 8 // N
xr = rg.tensor(xs, requires_grad=True)
yr = bn_ref(xr)
(yr * rg.tensor(wo)).sum().backward()
xl = rg.tensor(xs[lo:hi], requires_grad=True)
yl = sync(xl)
(yl * rg.tensor(wo[lo:hi])).sum().backward()
for t in (sync.weight.grad, sync.bias.grad):
    dist.all_reduce(t)  # the parameters' gradient of the global loss
d = max(
    float(np.abs(yl.detach().numpy() - yr.detach().numpy()[lo:hi]).max()),
    float(np.abs(xl.grad.numpy() - xr.grad.numpy()[lo:hi]).max()),
    float(np.abs(sync.weight.grad.numpy() - bn_ref.weight.grad.numpy()).max()),
    float(np.abs(sync.bias.grad.numpy() - bn_ref.bias.grad.numpy()).max()),
    float(np.abs(sync.running_mean.numpy() - bn_ref.running_mean.numpy()).max()),
    float(np.abs(sync.running_var.numpy() - bn_ref.running_var.numpy()).max()),
)
ok = d < 1e-5 and type(sync).__name__ == "SyncBatchNorm"
if R == 0:
    print(f"{'ok ' if ok else 'BAD'} SyncBatchNorm == BatchNorm on the global batch "
          f"max|diff|={d:.2e}")
if not ok:
    failures.append(f"SyncBatchNorm differs: {d}")

dist.destroy_process_group()
if failures:
    print(f"rank {R} FAILED:", "\n".join(failures), file=sys.stderr)
    sys.exit(1)
if R == 0:
    print("ALL OK")

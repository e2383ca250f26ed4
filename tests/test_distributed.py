"""rg.distributed and DistributedDataParallel.

The multi-process tests launch real ``mpiexec -n N`` jobs running the scripts in
``tests/mpi_scripts/`` (each with a hard timeout); the world-size-1 tests run in-process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

import retrograd as rg
import retrograd.distributed as dist
from retrograd.nn.parallel import DistributedDataParallel as DDP

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "mpi_scripts"


def _mpiexec():
    local = Path(sys.executable).parent / "mpiexec"
    return str(local) if local.exists() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or not dist.is_mpi_available(),
    reason="mpiexec or mpi4py not installed (pip install 'retrograd[distributed]')",
)


def mpirun(script, n, *args, flags=(), timeout=90, launcher=None):
    """Run ``mpiexec -n n python script args``; returns (returncode, output, seconds)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env.pop("RETROGRAD_DIST_TIMEOUT", None)
    cmd = [launcher or MPIEXEC, *flags, "-n", str(n), sys.executable, str(SCRIPTS / script)]
    cmd += [str(a) for a in args]
    t0 = time.monotonic()
    p = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    return p.returncode, p.stdout + p.stderr, time.monotonic() - t0


@pytest.fixture
def world1():
    dist.init_process_group("mpi")
    yield
    dist.destroy_process_group()


# --- (b) collectives against NumPy, 3 real ranks ----------------------------------------------
@needs_mpi
def test_collectives_match_numpy_3_ranks():
    rc, out, _ = mpirun("collectives.py", 3)
    assert rc == 0, out
    assert "ALL OK" in out and "BAD" not in out, out
    for name in (
        "all_reduce SUM int64",
        "all_reduce AVG float32",
        "broadcast src=2 float32",
        "all_gather int64",
        "reduce_scatter MAX float32",
        "scatter int64",
    ):
        assert f"ok  {name}" in out, out


# --- (a)(e)(f) DDP == one process with the global batch ----------------------------------------
@needs_mpi
@pytest.mark.slow
def test_ddp_two_ranks_matches_single_process():
    rc, out, _ = mpirun("ddp.py", 2)
    assert rc == 0, out
    assert "ALL OK" in out and "BAD" not in out, out
    assert "reductions=20" in out  # one bucketed all-reduce per step
    assert "(e) no_sync" in out and "(f) bucket_cap_mb=0.001 -> 4 buckets" in out, out
    assert "ok  broadcast_buffers" in out and "ok  SyncBatchNorm" in out


# --- (c) failures: the survivor names the failed rank within the timeout ------------------------
@needs_mpi
def test_rank_raising_aborts_job_naming_it():
    rc, out, secs = mpirun("failure.py", 2, "raise", 20, timeout=60)
    assert rc != 0
    assert "rank 1 failed: ValueError: boom at step 3" in out, out
    # rank 0, blocked in all_reduce, reports who failed before the job is torn down
    assert "rank 0: all_reduce aborted because rank 1 failed" in out, out
    assert secs < 20, secs


@needs_mpi
@pytest.mark.parametrize("mode", ["kill", "exit"])
def test_dead_rank_named_by_survivor(mode):
    # MPICH's gforker launcher interrupts (SIGINT) the survivors once a rank dies: the
    # survivor's excepthook finds the root cause (rank 1's pid is gone) and names it
    gforker = str(Path(MPIEXEC).parent / "mpiexec.gforker")
    if not os.path.exists(gforker):
        pytest.skip("mpiexec.gforker not installed")
    rc, out, secs = mpirun("failure.py", 2, mode, 20, timeout=60, launcher=gforker)
    assert rc != 0
    # named either by rank 0's own pid check or, if gforker's SIGINT came first, its excepthook
    assert "[retrograd.distributed] aborting the job: rank 0: " in out, out
    assert "rank 1 (pid" in out and "died" in out, out
    assert secs < 20, secs


@needs_mpi
def test_killed_rank_ends_job_with_default_launcher():
    rc, out, secs = mpirun("failure.py", 2, "kill", 20, timeout=60)
    assert rc != 0 and secs < 20, (rc, secs, out)


@needs_mpi
def test_hung_rank_times_out_naming_it():
    rc, out, secs = mpirun("failure.py", 2, "hang", 3, timeout=60)
    assert rc != 0
    assert "timed out after 3 s waiting for rank 1 (pid" in out, out
    assert 3 <= secs < 15, secs


# --- (d) world size 1 without mpiexec ----------------------------------------------------------
def test_world_size_1_collectives_are_identities(world1):
    assert dist.is_initialized() and dist.get_rank() == 0 and dist.get_world_size() == 1
    t = rg.tensor([1.0, -2.0, 3.0])
    for op in (
        dist.ReduceOp.SUM,
        dist.ReduceOp.AVG,
        dist.ReduceOp.MAX,
        dist.ReduceOp.MIN,
        dist.ReduceOp.PRODUCT,
    ):
        assert dist.all_reduce(t, op=op) is None
        np.testing.assert_array_equal(t.numpy(), [1.0, -2.0, 3.0])
    w = dist.all_reduce(t, async_op=True)
    assert w.is_completed() and w.wait() and w.result() == [t]
    dist.broadcast(t, src=0)
    outs = [rg.zeros(3)]
    dist.all_gather(outs, t)
    np.testing.assert_array_equal(outs[0].numpy(), t.numpy())
    big = rg.zeros(3)
    dist.all_gather_into_tensor(big, t)
    np.testing.assert_array_equal(big.numpy(), t.numpy())
    o = rg.zeros(3)
    dist.reduce_scatter(o, [t])
    np.testing.assert_array_equal(o.numpy(), t.numpy())
    dist.reduce_scatter_tensor(o, t * 2)
    np.testing.assert_array_equal(o.numpy(), 2 * t.numpy())
    dist.barrier()
    objs = [None]
    dist.all_gather_object(objs, {"a": 1})
    assert objs == [{"a": 1}]
    assert dist.get_backend() == "mpi"
    assert dist.get_world_size(dist.group.WORLD) == 1
    with pytest.raises(NotImplementedError, match="only the default group"):
        dist.all_reduce(t, group=object())


def test_world_size_1_errors(world1):
    t = rg.zeros(3)
    with pytest.raises(RuntimeError, match="world_size=1 entries; got 2"):
        dist.all_gather([rg.zeros(3), rg.zeros(3)], t)
    with pytest.raises(RuntimeError, match="shape"):
        dist.all_gather([rg.zeros(4)], t)
    with pytest.raises(ValueError, match="Invalid src rank 1"):
        dist.broadcast(t, src=1)
    with pytest.raises(RuntimeError, match="BAND needs an integer"):
        dist.all_reduce(t, op=dist.ReduceOp.BAND)
    with pytest.raises(ValueError, match="twice"):
        dist.init_process_group("mpi")
    with pytest.raises(TypeError, match="retrograd Tensor"):
        dist.all_reduce(np.zeros(3))


def test_not_initialized_and_bad_arguments():
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="has not been initialized"):
        dist.get_rank()
    with pytest.raises(RuntimeError, match="Invalid backend"):
        dist.init_process_group("nccl")
    with pytest.raises(ValueError, match="timeout must be positive"):
        dist.init_process_group("mpi", timeout=0)
    dist.init_process_group("gloo", timeout=timedelta(seconds=5))  # alias for CPU code
    assert dist.get_world_size() == 1
    dist.destroy_process_group()
    assert not dist.is_initialized()


def test_import_does_not_initialise_mpi():
    code = (
        "import sys, retrograd as rg, retrograd.distributed as d\n"
        "d.init_process_group('mpi'); t = rg.ones(2); d.all_reduce(t)\n"
        "d.destroy_process_group()\n"
        "assert 'mpi4py.MPI' not in sys.modules, 'MPI was imported'\n"
        "print(d.is_available())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX"))}
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(env, PYTHONPATH=str(ROOT)),
        timeout=60,
    )
    assert p.returncode == 0 and p.stdout.strip() == "True", p.stderr


def test_missing_mpi4py_falls_back_with_a_clear_message(monkeypatch):
    from retrograd.distributed import process_group as pgmod

    monkeypatch.setattr(pgmod, "is_mpi_available", lambda: False)
    monkeypatch.setenv("PMI_SIZE", "2")  # a launcher announced 2 ranks
    with pytest.warns(UserWarning, match="world of 2 processes was expected, but mpi4py"):
        dist.init_process_group("mpi")
    try:
        assert dist.get_world_size() == 1
    finally:
        dist.destroy_process_group()


def test_ddp_world_size_1_is_a_thin_wrapper(world1):
    rg.manual_seed(0)
    lin = rg.nn.Linear(4, 2)
    ddp = DDP(lin)
    assert ddp.module is lin
    assert list(ddp.state_dict()) == ["module.weight", "module.bias"]
    assert lin.weight._post_hooks in (None, {})  # no hooks, no buckets to fill
    x = rg.randn(5, 4)
    ddp(x).sum().backward()
    np.testing.assert_allclose(
        lin.weight.grad.numpy(), np.tile(x.numpy().sum(0), (2, 1)), rtol=1e-6
    )
    with ddp.no_sync():
        ddp(x).sum().backward()
    np.testing.assert_allclose(
        lin.weight.grad.numpy(), 2 * np.tile(x.numpy().sum(0), (2, 1)), rtol=1e-6
    )


def test_ddp_requires_process_group_and_parameters():
    with pytest.raises(ValueError, match="has not been initialized"):
        DDP(rg.nn.Linear(2, 2))
    dist.init_process_group("mpi")
    try:
        with pytest.raises(RuntimeError, match="doesn't have any parameter"):
            DDP(rg.nn.ReLU())
    finally:
        dist.destroy_process_group()


def test_ddp_buckets_reverse_order_and_cap(world1):
    rg.manual_seed(0)
    m = rg.nn.Sequential(rg.nn.Linear(256, 256), rg.nn.Linear(256, 256), rg.nn.Linear(256, 4))
    # each 256x256 weight is 256 KiB: with a 0.2 MB cap a bucket closes once it passes the cap
    ddp = DDP(m, bucket_cap_mb=0.2)
    order = [p for b in ddp._buckets for p in b.params]
    assert [id(p) for p in order] == [id(p) for p in reversed(list(m.parameters()))]
    assert ddp.bucket_sizes() == [4, 2]  # [b3, W3, b2, W2], [b1, W1]
    assert DDP(m).bucket_sizes() == [6]
    # the first bucket is capped at 1 MiB (PyTorch's rule): it starts communicating early
    big = rg.nn.Sequential(rg.nn.Linear(1024, 1024), rg.nn.Linear(1024, 256), rg.nn.Linear(256, 4))
    assert DDP(big).bucket_sizes() == [4, 2]  # [b3, W3, b2, W2 (1 MiB)], [b1, W1 (4 MiB)]


def test_failure_monitor_names_dead_and_failed_peers(tmp_path):
    from retrograd.distributed.errors import DistBackendError
    from retrograd.distributed.failure import FailureMonitor
    from retrograd.distributed.process_group import _ProcessGroup

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that no longer exists
    host = __import__("socket").gethostname()
    mon = FailureMonitor(
        str(tmp_path / "job"), 0, 3, [host, host, "elsewhere"], [os.getpid(), child.pid, 1]
    )
    try:
        assert mon.dead_peers() == [1]  # rank 2 is on another host: not checked by pid
        pg = _ProcessGroup(0, 3, 5.0, monitor=mon)
        with pytest.raises(DistBackendError, match=r"rank 1 \(pid \d+ on .*\) died") as ei:
            pg._tick("all_reduce", 7, 0.5)
        assert ei.value.failed_ranks == (1,)
        mon.pids[1] = os.getpid()
        FailureMonitor(mon.path, 2, 3, mon.hosts, mon.pids).report_failure(
            "rank 2 failed: ValueError: x"
        )
        with pytest.raises(DistBackendError, match="because rank 2 failed: ValueError: x"):
            pg._tick("barrier", 8, 0.5)
        assert mon.laggards(8) == [1, 2]
    finally:
        mon.close()


# --- (a) end to end: `mpiexec -n 2 retrograd train mnist-mlp` == one process --------------------
@needs_mpi
@pytest.mark.slow
def test_cli_train_mnist_mlp_two_ranks_matches_one_process(tmp_path):
    import json

    from safetensors.numpy import load_file

    # dropout and random shifts off: their random draws differ by construction between a
    # global batch and its per-rank slices; everything else is the mnist-mlp preset (AdamW)
    args = [
        "-m",
        "retrograd.cli",
        "train",
        "mnist-mlp",
        "--steps",
        "20",
        "--no-progress",
        "--set",
        "model.dropout=0",
        "--set",
        "data.augment_shift=0",
        "--eval-every",
        "10",
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env = {k: v for k, v in env.items() if not k.startswith(("PMI_", "OMPI_", "PMIX"))}
    one, two = tmp_path / "one", tmp_path / "two"
    p1 = subprocess.run(
        [sys.executable, *args, "--out", str(one)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert p1.returncode == 0, p1.stderr
    p2 = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, *args, "--out", str(two)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert p2.returncode == 0, p2.stdout + p2.stderr
    assert p2.stdout.count("final: step 20") == 1  # only rank 0 reports
    a, b = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=1e-5, rtol=0, err_msg=k)
    meta = json.loads((two / "config.json").read_text())["meta"]
    assert meta["world_size"] == 2
    l1 = [json.loads(x) for x in (one / "metrics.jsonl").read_text().splitlines()]
    l2 = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    assert len(l1) == len(l2)  # one writer: no duplicated lines
    train1 = [r["loss"] for r in l1 if r["type"] == "train"]
    train2 = [r["loss"] for r in l2 if r["type"] == "train"]
    np.testing.assert_allclose(train2, train1, rtol=1e-5)  # logged loss = mean over ranks


@needs_mpi
def test_trainer_signal_on_one_rank_stops_all_ranks_at_the_same_step(tmp_path):
    rc, out, secs = mpirun("train_signal.py", 2, tmp_path / "run", timeout=90)
    assert rc == 0, out
    assert "STOPPED [(6, True, 2), (6, True, 2)]" in out, out  # SIGINT=2 seen after step 5
    assert (tmp_path / "run" / "checkpoint.safetensors").exists()

"""Timing machinery shared by the workloads: interleaved rounds, statistics, GEMM peak, memory.

The frameworks of one workload run in one process, alternating in blocks (A then B, ``rounds``
times) so that machine noise hits both alike.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

LOSS_RTOL = 1e-3  # first losses deviating more than this from PyTorch: WRONG


@dataclass
class Impl:
    """One framework's prepared workload: ``step()`` runs one training step, returns the loss."""

    name: str
    step: Callable[[], float]
    losses: list = field(default_factory=list)
    warmup_times: list = field(default_factory=list)
    times: list = field(default_factory=list)


def percentile(xs, q):
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def summary(times_s: list) -> dict:
    ms = [t * 1e3 for t in times_s]
    return {
        "median_ms": statistics.median(ms) if ms else float("nan"),
        "p10_ms": percentile(ms, 10),
        "p90_ms": percentile(ms, 90),
        "min_ms": min(ms) if ms else float("nan"),
        "n": len(ms),
        "steps_ms": ms,
    }


def _timed(step) -> tuple[float, float]:
    t0 = time.perf_counter()
    loss = step()
    return time.perf_counter() - t0, loss


def run_interleaved(impls: list[Impl], warmup: int = 5, rounds: int = 8, budget_s: float = 10.0):
    """Warm every framework up (recording its first losses), then ``rounds`` rounds of one
    block per framework. ``budget_s`` is the timed budget of the whole workload; each
    framework's block size is set from its warm-up median so both get about equal time."""
    for im in impls:
        for i in range(warmup):
            dt, loss = _timed(im.step)
            im.warmup_times.append(dt)
            im.losses.append(loss)
            if i >= 2 and dt > 0.5:  # slow steps: 3 warm-up steps are enough (spec)
                break
    per_block = budget_s / (rounds * len(impls))
    blocks = {}
    for im in impls:
        med = statistics.median(im.warmup_times[1:] or im.warmup_times)
        blocks[im.name] = max(1, int(per_block / max(med, 1e-6)))
    t0 = time.perf_counter()
    for r in range(rounds):
        if r >= 2 and time.perf_counter() - t0 > 3 * budget_s:
            break  # an overloaded machine: keep the suite's total time bounded
        for im in impls:
            if statistics.median(im.warmup_times) < 0.1:
                im.step()  # untimed: re-warm caches and thread pools after the switch
            for _ in range(blocks[im.name]):
                dt, _ = _timed(im.step)
                im.times.append(dt)
    return blocks


def loss_check(ref: list, other: list, n: int = 3) -> tuple[float, bool]:
    """Max relative deviation of the first ``n`` losses; True when within LOSS_RTOL."""
    dev = 0.0
    for a, b in zip(ref[:n], other[:n]):
        dev = max(dev, abs(a - b) / max(abs(a), 1e-12))
    return dev, dev <= LOSS_RTOL


def gemm_gflops(n: int = 1024, reps: int = 10) -> float:
    """NumPy float32 GEMM throughput (the practical peak for matmul-bound steps)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def rss_mib() -> float:
    """Current resident set size (MiB)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def maxrss_mib() -> float:
    """Peak resident set size of this process (MiB): VmHWM, which (unlike getrusage's
    ru_maxrss, kept across exec) starts afresh in a subprocess."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def blas_info() -> list:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [
        {k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
        for d in threadpool_info()
    ]


def set_threads(n: int, framework: str | None = None):
    """Limit NumPy's BLAS (threadpoolctl, BLAS only) and PyTorch's intra-op threads to ``n``."""
    from threadpoolctl import threadpool_limits

    limiter = threadpool_limits(n, user_api="blas")
    if framework != "retrograd":
        import torch

        torch.set_num_threads(n)
    return limiter


_CHILD = "RETROGRAD_BENCH_CHILD"
BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def reexec_without_blas_env(module: str, argv: list) -> int | None:
    """Re-run ``python -m module argv`` with both OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset.

    They pin OpenBLAS to an older kernel, which slows a current NumPy; unsetting them together
    lets it pick the kernel for this CPU (``blas_info()`` shows which). Returns the child's exit
    status, or None when nothing needs unsetting (or this already is the child)."""
    import subprocess
    import sys

    if os.environ.get(_CHILD) is not None or not any(v in os.environ for v in BLAS_VARS):
        return None
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARS}
    env[_CHILD] = "1"
    return subprocess.call([sys.executable, "-m", module, *argv], env=env)


def blas_env_unset() -> bool:
    return os.environ.get(_CHILD) is not None

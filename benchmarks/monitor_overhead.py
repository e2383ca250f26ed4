"""Cost of ``GradientMonitor`` on an ``mnist-cnn``-style LeNet training step (issue #5).

Two measurements on the same training loop (LeNet conv16-conv32-fc128, batch 64 of 1x28x28,
AdamW):

1. *in-monitor time*: the seconds spent inside the monitor (forward hooks, gradient recording,
   update snapshots) divided by the step time without a monitor. Robust to a busy machine,
   since both are measured in the same run.
2. *A/B*: mean step time with ``every=10`` / ``every=1`` against no monitor (interleaved
   rounds). Noisy on a shared machine; reported for completeness.

It also checks that a detached monitor leaves no hook behind (zero cost when not attached).

    PYTHONPATH=. python benchmarks/monitor_overhead.py [--steps 21] [--rounds 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import retrograd as rg
from retrograd.diagnostics import GradientMonitor


def make(seed: int = 0):
    rg.manual_seed(seed)
    model = rg.models.LeNet(channels=(16, 32), hidden=128)
    opt = rg.optim.AdamW(model.parameters(), lr=1e-3)
    return model, opt


class _Timer:
    total = 0.0


def _timed(fn):
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            _Timer.total += time.perf_counter() - t0

    return wrapper


def run(steps: int, every: int | None, x, y) -> tuple[float, float]:
    """(mean seconds per training step, mean seconds per step spent inside the monitor)."""
    import retrograd.diagnostics.monitor as M

    model, opt = make()
    mon = None
    _Timer.total = 0.0
    orig = M._act_stats
    if every is not None:
        M._act_stats = _timed(orig)  # the forward hooks' work
        mon = GradientMonitor(model, every=every)
        mon._record = _timed(mon._record)
        mon._finish_update = _timed(mon._finish_update)
        mon._pre_opt = _timed(mon._pre_opt)
        mon.attach_optimizer(opt)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = rg.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if mon is not None:
            mon.log_loss(loss)
        opt.step()
        times.append(time.perf_counter() - t0)
    M._act_stats = orig
    if mon is not None:
        mon.detach()
        assert all(not m._forward_hooks for m in model.modules()), "hooks left behind"
    return statistics.fmean(times[1:]), _Timer.total / len(times)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=21)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rg.tensor(rng.random((64, 1, 28, 28), dtype=np.float32))
    y = rg.tensor(rng.integers(0, 10, 64))
    res: dict[str, list[tuple[float, float]]] = {"none": [], "every=10": [], "every=1": []}
    run(5, None, x, y)  # warm-up (allocator, BLAS threads), so the first variant is not penalised
    for _ in range(a.rounds):
        for k, every in (("none", None), ("every=10", 10), ("every=1", 1)):
            res[k].append(run(a.steps, every, x, y))
    base = statistics.median(t for t, _ in res["none"])
    out = {}
    print(f"LeNet step without monitor: {1000 * base:.1f} ms")
    for k, v in res.items():
        m = statistics.median(t for t, _ in v)
        inside = statistics.median(i for _, i in v)
        out[k] = {
            "ms_per_step": 1000 * m,
            "ab_overhead_pct": 100 * (m / base - 1),
            "in_monitor_pct": 100 * inside / base,
        }
        if k != "none":
            print(
                f"{k:>9}: in-monitor {1000 * inside:6.2f} ms/step = {100 * inside / base:5.2f}% "
                f"of a step | A/B {1000 * m:7.1f} ms/step ({100 * (m / base - 1):+.1f}%)"
            )
    return out


if __name__ == "__main__":
    main()

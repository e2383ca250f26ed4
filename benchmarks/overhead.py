"""Per-op overhead (issue #2): forward + backward of 1,000 chained ops on a (16,) tensor."""

from __future__ import annotations

import time

import numpy as np

N_OPS = 1000  # 500 x (mul, add)


def chain(lib):
    def run():
        x0 = lib.ones(16, requires_grad=True)
        x = x0
        for _ in range(N_OPS // 2):
            x = x * 1.0001 + 0.0
        x.sum().backward()
        return x0.grad

    def run_nograd():
        with lib.no_grad():
            x = lib.ones(16)
            for _ in range(N_OPS // 2):
                x = x * 1.0001 + 0.0
        return x

    return run, run_nograd


def measure(libs: dict, rounds: int = 7, reps: int = 5) -> dict:
    """Median seconds of one chain per framework (interleaved rounds), as µs/op."""
    fns = {name: chain(lib) for name, lib in libs.items()}
    res: dict = {name: {"fwd_bwd": [], "fwd_nograd": []} for name in libs}
    for f, g in fns.values():
        f()
        g()
    for _ in range(rounds):
        for name, (f, g) in fns.items():
            for key, fn in (("fwd_bwd", f), ("fwd_nograd", g)):
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn()
                res[name][key].append((time.perf_counter() - t0) / reps / N_OPS * 1e6)
    return {name: {k: float(np.median(v)) for k, v in d.items()} for name, d in res.items()}

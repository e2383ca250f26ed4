"""CPU-time ratios at 1 thread: robust when other processes share the machine.

    .venv/bin/python -m benchmarks.cputime                 # all workloads
    .venv/bin/python -m benchmarks.cputime --only tiny,deep --steps 100

Each framework runs blocks of steps timed with ``time.process_time`` (this process's CPU
time, so time spent descheduled by other processes does not count), interleaved; reported is
the minimum per-step time over the blocks. With 1 thread, CPU time is the step's cost.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from . import WORKLOADS
from .harness import reexec_without_blas_env, set_threads

STEPS = {"mlp": 30, "cnn": 5, "gpt": 5, "tiny": 300, "deep": 30}


def measure(wl: str, steps: int, blocks: int = 5) -> dict:
    import torch

    import retrograd

    mod = importlib.import_module(f"benchmarks.{wl}")
    fns = {}
    for name, lib in (("torch", torch), ("retrograd", retrograd)):
        fns[name] = mod.build(lib, mod.make_params(), mod.make_data())[0]
        for _ in range(3):
            fns[name]()
    best = {name: float("inf") for name in fns}
    for _ in range(blocks):
        for name, step in fns.items():
            t0 = time.process_time()
            for _ in range(steps):
                step()
            best[name] = min(best[name], (time.process_time() - t0) / steps * 1e3)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks.cputime")
    ap.add_argument("--only", default=None)
    ap.add_argument("--steps", type=int, default=None, help="steps per block")
    ap.add_argument("--blocks", type=int, default=5)
    a = ap.parse_args(argv)
    rc = reexec_without_blas_env("benchmarks.cputime", list(argv or sys.argv[1:]))
    if rc is not None:
        return rc
    set_threads(1)
    print("| workload | PyTorch CPU ms/step | retrograd CPU ms/step | ratio |")
    print("|---|---|---|---|")
    for wl in a.only.split(",") if a.only else WORKLOADS:
        b = measure(wl, a.steps or STEPS[wl], a.blocks)
        t, g = b["torch"], b["retrograd"]
        print(f"| {wl} | {t:.3g} | {g:.3g} | {g / t:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Profile retrograd's training step of one workload (cProfile; or run it under py-spy).

.venv/bin/python -m benchmarks.profile deep            # top functions by own time
.venv/bin/python -m benchmarks.profile cnn --sort cumulative --steps 20
py-spy record -o deep.svg -- .venv/bin/python -m benchmarks.profile deep --no-cprofile
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import pstats
import sys
import time


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks.profile")
    ap.add_argument("workload")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--sort", default="tottime")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-cprofile", action="store_true", help="just run (for py-spy)")
    ap.add_argument("--keep-blas-env", action="store_true")
    a = ap.parse_args(argv)
    if not a.keep_blas_env:
        from .harness import reexec_without_blas_env

        rc = reexec_without_blas_env("benchmarks.profile", list(argv or sys.argv[1:]))
        if rc is not None:
            sys.exit(rc)

    from threadpoolctl import threadpool_limits

    import retrograd

    threadpool_limits(a.threads, user_api="blas")
    mod = importlib.import_module(f"benchmarks.{a.workload}")
    step = mod.build(retrograd, mod.make_params(), mod.make_data())[0]
    for _ in range(3):
        step()
    t0 = time.perf_counter()
    if a.no_cprofile:
        for _ in range(a.steps):
            step()
    else:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(a.steps):
            step()
        prof.disable()
        pstats.Stats(prof).sort_stats(a.sort).print_stats(a.top)
    print(f"{(time.perf_counter() - t0) / a.steps * 1e3:.3f} ms/step ({a.steps} steps)")


if __name__ == "__main__":
    main()

"""Run the benchmark suite: retrograd vs PyTorch eager, interleaved in one process.

    .venv/bin/python -m benchmarks.run            # full suite, 2 and 1 threads (< 10 min)
    .venv/bin/python -m benchmarks.run --quick    # a short pass
    .venv/bin/python -m benchmarks.run --only gpt --threads 2

Prints a table (median ms/step, p10-p90, ratio retrograd/PyTorch, peak memory from separate
subprocesses, achieved GFLOP/s against the NumPy GEMM peak) and writes JSON to bench-results/.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback

from . import WORKLOADS
from .harness import (
    Impl,
    blas_env_unset,
    blas_info,
    gemm_gflops,
    loss_check,
    maxrss_mib,
    reexec_without_blas_env,
    rss_mib,
    run_interleaved,
    set_threads,
    summary,
)

# Timed budget (s) of each workload per thread setting, split over rounds and frameworks.
BUDGET = {"mlp": 8.0, "cnn": 20.0, "gpt": 16.0, "tiny": 4.0, "deep": 8.0}
TARGET = {"mlp": 1.0, "cnn": 1.0, "gpt": 1.0, "tiny": 0.25, "deep": 0.7}


def _lib(name: str):
    if name.startswith("torch"):
        import torch

        return torch
    import retrograd

    return retrograd


def _impls(wl: str, frameworks: list[str]):
    mod = importlib.import_module(f"benchmarks.{wl}")
    params, data = mod.make_params(), mod.make_data()
    out, errors = [], {}
    for fw in frameworks:
        try:
            step = mod.build(_lib(fw), params, data, **_build_kw(fw))[0]
            out.append(Impl(fw, step))
        except Exception as e:  # a missing layer/op: report it, keep benchmarking the rest
            errors[fw] = f"{type(e).__name__}: {e}"
    return mod, out, errors


def _build_kw(fw: str) -> dict:
    if fw == "torch-sdpa":
        return {"sdpa": True}
    if fw == "retrograd-compiled":  # rg.compile(step): traced once, replayed (issue #6)
        return {"compiled": True}
    return {}


def _frameworks(wl: str) -> list[str]:
    extra = {"gpt": ["torch-sdpa"], "tiny": ["retrograd-compiled"], "deep": ["retrograd-compiled"]}
    return ["torch", "retrograd"] + extra.get(wl, [])


def bench_workload(wl: str, threads: int, quick: bool) -> dict:
    mod, impls, errors = _impls(wl, _frameworks(wl))
    warmup, rounds = (3, 3) if quick else (5, 8)
    budget = BUDGET[wl] / (4 if quick else 1)
    res = {"workload": wl, "threads": threads, "step_gflop": mod.STEP_FLOPS / 1e9, "errors": errors}
    good = []
    for im in impls:
        try:  # a framework whose step raises is reported, not fatal
            im.step()
            im.losses.clear()
            good.append(im)
        except Exception as e:
            errors[im.name] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
    # Fresh models for the loss check: the probe step above changed the parameters.
    if good:
        mod, impls2, _ = _impls(wl, [im.name for im in good])
        blocks = run_interleaved(impls2, warmup=warmup, rounds=rounds, budget_s=budget)
        res["blocks"] = blocks
        ref = next((im for im in impls2 if im.name == "torch"), None)
        for im in impls2:
            s = summary(im.times)
            s["first_losses"] = im.losses[:3]
            s["first_step_ms"] = im.warmup_times[0] * 1e3
            s["warmup_excess_ms"] = (
                sum(im.warmup_times) - len(im.warmup_times) * s["median_ms"] / 1e3
            ) * 1e3
            if ref is not None:
                dev, ok = loss_check(ref.losses, im.losses)
                s["loss_dev"], s["wrong"] = dev, not ok
            s["gflops"] = mod.STEP_FLOPS / (s["median_ms"] / 1e3) / 1e9
            res[im.name] = s
    return res


def _mem_child(wl: str, fw: str, threads: int, steps: int):
    """In a fresh process: build one framework's workload, run ``steps`` steps, report RSS."""
    set_threads(threads, fw)
    mod = importlib.import_module(f"benchmarks.{wl}")
    params, data = mod.make_params(), mod.make_data()
    step = mod.build(_lib(fw), params, data, **_build_kw(fw))[0]
    del params, data
    before = rss_mib()
    for _ in range(steps):
        step()
    peak = maxrss_mib()
    print(json.dumps({"peak_mib": peak, "before_mib": before, "step_mib": peak - before}))


def measure_memory(wl: str, fw: str, threads: int, steps: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.run", "--_mem", wl, fw, str(threads), str(steps)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _fmt(s: dict | None) -> str:
    if not s or "median_ms" not in s:
        return "-"
    return f"{s['median_ms']:.3g} ({s['p10_ms']:.3g}-{s['p90_ms']:.3g})"


def print_table(results: list, mem: dict, peaks: dict):
    print()
    hdr = (
        f"{'workload':8} {'thr':>3} | {'torch ms (p10-p90)':>22} | "
        f"{'retrograd ms (p10-p90)':>24} | {'ratio':>6} {'target':>6} | {'loss dev':>8} | "
        f"{'rg GF/s':>7} {'%peak':>5} {'th GF/s':>7} | "
        f"{'peak MiB th/rg (step Δ th/rg)':>30}"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        wl, th = r["workload"], r["threads"]
        t, g = r.get("torch"), r.get("retrograd")
        ratio = g["median_ms"] / t["median_ms"] if t and g else float("nan")
        ok = "" if not g else (" WRONG" if g.get("wrong") else "")
        peak = peaks.get(th, float("nan"))
        m = mem.get(wl, {})
        mt, mr = m.get("torch", {}), m.get("retrograd", {})
        ms = (
            f"{mt.get('peak_mib', float('nan')):.0f}/{mr.get('peak_mib', float('nan')):.0f} "
            f"({mt.get('step_mib', float('nan')):.0f}/{mr.get('step_mib', float('nan')):.0f})"
            if th == results[0]["threads"] and m
            else ""
        )
        print(
            f"{wl:8} {th:>3} | {_fmt(t):>22} | {_fmt(g):>24} | {ratio:>6.2f} {TARGET[wl]:>6.2f} | "
            f"{(g or {}).get('loss_dev', float('nan')):>8.1e}{ok} | "
            f"{(g or {}).get('gflops', float('nan')):>7.2f} "
            f"{100 * (g or {}).get('gflops', 0) / peak:>5.1f} "
            f"{(t or {}).get('gflops', float('nan')):>7.2f} | {ms:>30}"
        )
        sd = r.get("torch-sdpa")
        if sd:
            print(
                f"{'':8} {'':>3} | torch-sdpa {_fmt(sd)}  (retrograd/torch-sdpa "
                f"{g['median_ms'] / sd['median_ms'] if g else float('nan'):.2f})"
            )
        rc = r.get("retrograd-compiled")
        if rc:
            print(
                f"{'':8} {'':>3} | retrograd-compiled {_fmt(rc)}  (ratio to torch "
                f"{rc['median_ms'] / t['median_ms'] if t else float('nan'):.2f}, loss dev "
                f"{rc.get('loss_dev', float('nan')):.1e}{' WRONG' if rc.get('wrong') else ''})"
            )
        for fw, err in r.get("errors", {}).items():
            print(f"{'':8} {'':>3} | {fw} unavailable: {err}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="short pass: fewer rounds, 1 thread setting"
    )
    ap.add_argument("--only", default=None, help="comma-separated workloads, e.g. mlp,gpt")
    ap.add_argument("--threads", default=None, help="thread counts, e.g. 2,1 (default; --quick: 2)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    ap.add_argument("--no-overhead", action="store_true", help="skip the per-op overhead bench")
    ap.add_argument(
        "--keep-blas-env",
        action="store_true",
        help="keep OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (by default they are unset)",
    )
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=540.0,
        help="time guard: later thread settings are skipped past 60%% of it (default 540)",
    )
    ap.add_argument("--out", default="bench-results", help="folder for the JSON results")
    ap.add_argument("--_mem", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    if a._mem:
        wl, fw, th, steps = a._mem
        return _mem_child(wl, fw, int(th), int(steps))

    if not a.keep_blas_env:
        rc = reexec_without_blas_env(
            "benchmarks.run", list(argv if argv is not None else sys.argv[1:])
        )
        if rc is not None:
            return rc

    wls = a.only.split(",") if a.only else list(WORKLOADS)
    for w in wls:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    threads = [int(t) for t in (a.threads or ("2" if a.quick else "2,1")).split(",")]
    t_start = time.time()
    import numpy as np
    import torch

    import retrograd

    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "retrograd": retrograd.__version__,
        "blas": blas_info(),
        "blas_env_unset": blas_env_unset(),
        "command": " ".join([sys.executable, "-m", "benchmarks.run", *(argv or sys.argv[1:])]),
    }
    print(
        f"CPU: {info['cpu']} ({info['cores']} cores); numpy {info['numpy']}, torch {info['torch']}"
    )
    print(f"BLAS: {info['blas']}")
    results, peaks, overhead = [], {}, {}
    for th in threads:
        if th != threads[0] and time.time() - t_start > a.max_seconds * 0.6:
            print(f"\n== {th} thread(s): skipped, the run is past 60% of --max-seconds")
            continue
        limiter = set_threads(th)
        peaks[th] = gemm_gflops()
        print(f"\n== {th} thread(s): NumPy float32 GEMM peak {peaks[th]:.0f} GFLOP/s")
        for wl in wls:
            t0 = time.time()
            r = bench_workload(wl, th, a.quick)
            results.append(r)
            t, g = r.get("torch"), r.get("retrograd")
            ratio = g["median_ms"] / t["median_ms"] if t and g else float("nan")
            print(
                f"  {wl:5} torch {_fmt(t)} ms | retrograd {_fmt(g)} ms | ratio {ratio:.2f} "
                f"| {time.time() - t0:.0f}s" + (f" | errors {r['errors']}" if r["errors"] else "")
            )
        if not a.no_overhead and th == threads[0]:
            overhead = measure_overheads(a.quick)
        limiter.restore_original_limits()
    mem = {}
    if not a.no_memory:
        steps = 2 if a.quick else 3
        for wl in wls:
            mem[wl] = {
                fw: measure_memory(wl, fw, threads[0], steps) for fw in ("torch", "retrograd")
            }
    print_table(results, mem, peaks)
    if overhead:
        t, g = overhead["torch"], overhead["retrograd"]
        print(
            f"\nper-op overhead ((16,) tensor, 1000 chained ops): fwd+bwd torch {t['fwd_bwd']:.2f} "
            f"µs/op, retrograd {g['fwd_bwd']:.2f} µs/op, ratio {g['fwd_bwd'] / t['fwd_bwd']:.2f}; "
            f"no_grad fwd torch {t['fwd_nograd']:.2f}, retrograd {g['fwd_nograd']:.2f} µs/op, "
            f"ratio {g['fwd_nograd'] / t['fwd_nograd']:.2f}"
        )
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, time.strftime("bench-%Y%m%d-%H%M%S.json"))
    with open(path, "w") as f:
        json.dump(
            {
                "info": info,
                "gemm_gflops": peaks,
                "results": results,
                "memory": mem,
                "overhead_us_per_op": overhead,
                "seconds": time.time() - t_start,
            },
            f,
            indent=1,
        )
    print(f"\nwrote {path} ({time.time() - t_start:.0f}s)")
    return 0


def measure_overheads(quick: bool) -> dict:
    import torch

    import retrograd

    from .overhead import measure

    return measure({"torch": torch, "retrograd": retrograd}, rounds=3 if quick else 7)


if __name__ == "__main__":
    sys.exit(main())

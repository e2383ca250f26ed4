"""Combine several ``benchmarks.run`` JSON files into one Markdown table (median over runs).

.venv/bin/python -m benchmarks.summarize bench-results/bench-*.json
"""

from __future__ import annotations

import json
import statistics
import sys

from .run import TARGET


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def table(paths: list[str]) -> str:
    runs = [json.load(open(p)) for p in paths]
    rows: dict = {}
    for run in runs:
        for r in run["results"]:
            key = (r["workload"], r["threads"])
            d = rows.setdefault(
                key,
                {
                    "torch": [],
                    "retrograd": [],
                    "ratio": [],
                    "dev": [],
                    "gf": [],
                    "sdpa": [],
                    "compiled": [],
                    "compiled_ms": [],
                    "wrong": False,
                },
            )
            t, g = r.get("torch"), r.get("retrograd")
            if t and g:
                d["torch"].append(t["median_ms"])
                d["retrograd"].append(g["median_ms"])
                d["ratio"].append(g["median_ms"] / t["median_ms"])
                d["dev"].append(g.get("loss_dev"))
                d["gf"].append(g.get("gflops"))
                d["wrong"] |= bool(g.get("wrong"))
            if r.get("torch-sdpa") and g:
                d["sdpa"].append(g["median_ms"] / r["torch-sdpa"]["median_ms"])
            c = r.get("retrograd-compiled")
            if c and t and not c.get("wrong"):
                d["compiled"].append(c["median_ms"] / t["median_ms"])
                d["compiled_ms"].append(c["median_ms"])
    mem: dict = {}
    for run in runs:
        for wl, m in run.get("memory", {}).items():
            for fw, v in m.items():
                if "peak_mib" in v:
                    mem.setdefault((wl, fw), []).append((v["peak_mib"], v["step_mib"]))
    peaks = {int(k): [] for run in runs for k in run["gemm_gflops"]}
    for run in runs:
        for k, v in run["gemm_gflops"].items():
            peaks[int(k)].append(v)
    out = [
        "| workload | threads | PyTorch ms/step | retrograd ms/step | ratio (runs) | target "
        "| first-loss dev | retrograd GFLOP/s (% GEMM peak) | peak RSS MiB torch / rg "
        "| step RSS growth MiB torch / rg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (wl, th), d in sorted(
        rows.items(), key=lambda kv: (-kv[0][1], list(TARGET).index(kv[0][0]))
    ):
        ratio = _med(d["ratio"])
        runs_s = ", ".join(f"{x:.2f}" for x in d["ratio"])
        ok = "met" if ratio <= TARGET[wl] else "missed"
        comp = ""
        if d["compiled"]:  # rg.compile(step): the traced replay of the same step
            c = _med(d["compiled"])
            comp = (
                f"; `rg.compile` {_med(d['compiled_ms']):.3g} ms, **{c:.2f}** ("
                + ", ".join(f"{x:.2f}" for x in d["compiled"])
                + ")"
            )
            if ok == "missed" and c <= TARGET[wl]:
                ok = "met with rg.compile"
        fewer = [_med(v) for k, v in peaks.items() if k < th]
        if fewer and _med(peaks.get(th, [])) < max(fewer):
            ok += ", overloaded machine: not evidence"  # more threads, less GEMM throughput
        gf = _med(d["gf"])
        pk = _med(peaks.get(th, []))
        mt, mr = mem.get((wl, "torch"), []), mem.get((wl, "retrograd"), [])
        m_peak = m_step = "-"
        if th == max(peaks) and mt and mr:
            m_peak = f"{_med([a for a, _ in mt]):.0f} / {_med([a for a, _ in mr]):.0f}"
            m_step = f"{_med([b for _, b in mt]):.0f} / {_med([b for _, b in mr]):.0f}"
        sd = f" (vs torch-sdpa {_med(d['sdpa']):.2f})" if d["sdpa"] else ""
        out.append(
            f"| {wl} | {th} | {_med(d['torch']):.3g} | {_med(d['retrograd']):.3g} | "
            f"**{ratio:.2f}** ({runs_s}){sd}{comp} | {TARGET[wl]} ({ok}) | "
            f"{_med(d['dev']):.1e}{' WRONG' if d['wrong'] else ''} | "
            f"{gf:.2f} ({100 * gf / pk:.1f}%) | {m_peak} | {m_step} |"
        )
    ov = [run.get("overhead_us_per_op") for run in runs if run.get("overhead_us_per_op")]
    if ov:
        t = _med([o["torch"]["fwd_bwd"] for o in ov])
        g = _med([o["retrograd"]["fwd_bwd"] for o in ov])
        tn = _med([o["torch"]["fwd_nograd"] for o in ov])
        gn = _med([o["retrograd"]["fwd_nograd"] for o in ov])
        out.append("")
        out.append(
            f"Per-op overhead (1,000 chained ops on a (16,) tensor): forward+backward "
            f"PyTorch {t:.2f} µs/op, retrograd {g:.2f} µs/op (ratio {g / t:.2f}); "
            f"forward under no_grad PyTorch {tn:.2f}, retrograd {gn:.2f} µs/op "
            f"(ratio {gn / tn:.2f})."
        )
    out.append("")
    out.append(
        "NumPy float32 GEMM peak (GFLOP/s): "
        + ", ".join(f"{k} thread(s) {_med(v):.0f}" for k, v in sorted(peaks.items()))
    )
    return "\n".join(out)


if __name__ == "__main__":
    print(table(sys.argv[1:]))

"""``shakespeare-gpt`` in retrograd against the same recipe in PyTorch: loss curves and wall time.

    .venv/bin/python -m benchmarks.gpt_training                    # full 2,000 steps, 1 thread
    .venv/bin/python -m benchmarks.gpt_training --threads 2
    .venv/bin/python -m benchmarks.gpt_training --steps 200 --out /tmp/gpt-cmp   # a short look

The retrograd side is the shipped preset run through the real command line
(``retrograd train shakespeare-gpt``); its curves are read back from the run's ``metrics.jsonl``.
The PyTorch side re-implements the trainer's loop for the same config with ``torch``:

- model: nanoGPT's GPT with the parameter names, weight tying, init and exact (erf) GELU of
  ``rg.models.GPT``; by default its initial weights are *copied* from the retrograd model the
  trainer builds (same seed, same construction order), so both runs start from the same point
  and any gap between the curves is the frameworks' arithmetic (``--torch-init torch`` draws
  an independent nanoGPT-style init from ``torch.manual_seed`` instead);
- data: ``retrograd.train.data.TextData`` (``rg.data.datasets.TinyShakespeare``, 90/10 split),
  so every step sees the very same batch of windows, and evaluation uses the same fixed
  ``eval_iters`` validation batches;
- optimizer: AdamW with decay on matrices only, the same ``warmup_cosine`` lr multiplier
  (``retrograd.train.schedule.lr_lambda``) through ``LambdaLR``, gradient clipping at the same
  norm, evaluation every ``eval_every`` steps and once at the end.

The two frameworks run one after the other (never concurrently), each with the same number of
BLAS/intra-op threads. Results go to ``--out`` (JSON of both curves) and the plot to ``--plot``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

PRESET = "shakespeare-gpt"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "docs" / "img" / "gpt_val_loss.json"
DEFAULT_PLOT = ROOT / "docs" / "img" / "gpt_val_loss.png"


def loadavg() -> list[float]:
    """The 1-, 5- and 15-minute load averages (``/proc/loadavg``)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def preset_config(sets: list[str] | None = None, steps: int | None = None) -> dict[str, Any]:
    """The ``shakespeare-gpt`` config as ``retrograd train`` builds it, with ``--set`` overrides.

    >>> cfg = preset_config(["model.n_layer=1"], steps=3)
    >>> cfg["model"]["n_layer"], cfg["train"]["steps"]
    (1, 3)
    """
    from retrograd.train import apply_set, get_preset
    from retrograd.train.config import check

    cfg = get_preset(PRESET)
    extra = list(sets or [])
    if steps is not None:
        cfg["train"]["epochs"] = None
        extra = [f"train.steps={steps}"] + extra
    cfg = apply_set(cfg, extra)
    check(cfg)
    return cfg


# --- the PyTorch model ---------------------------------------------------------------------------
def build_torch_gpt(mcfg: dict[str, Any]):
    """A torch ``nn.Module`` with the architecture and parameter names of ``rg.models.GPT``.

    ``mcfg`` is the (filled-in) ``model`` section: vocab_size, block_size, n_layer, n_head,
    n_embd, dropout, bias. Initialised like nanoGPT (normal(0, 0.02), residual projections
    0.02/sqrt(2 n_layer), zero biases) from torch's global generator.
    """
    import torch
    from torch import nn
    from torch.nn import functional as F

    n_layer, n_head, n_embd = int(mcfg["n_layer"]), int(mcfg["n_head"]), int(mcfg["n_embd"])
    vocab, block = int(mcfg["vocab_size"]), int(mcfg["block_size"])
    dropout, bias = float(mcfg.get("dropout", 0.0)), bool(mcfg.get("bias", True))

    class CausalSelfAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
            self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
            self.attn_dropout = nn.Dropout(dropout)
            self.resid_dropout = nn.Dropout(dropout)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.c_attn(x).split(n_embd, dim=2)
            hs = C // n_head
            q = q.view(B, T, n_head, hs).transpose(1, 2)
            k = k.view(B, T, n_head, hs).transpose(1, 2)
            v = v.view(B, T, n_head, hs).transpose(1, 2)
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=dropout if self.training else 0.0, is_causal=True
            )
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            return self.resid_dropout(self.c_proj(y))

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
            self.gelu = nn.GELU()  # exact (erf) GELU, as rg.models.GPT
            self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
            self.attn = CausalSelfAttention()
            self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
            self.mlp = MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = nn.ModuleDict(
                dict(
                    wte=nn.Embedding(vocab, n_embd),
                    wpe=nn.Embedding(block, n_embd),
                    drop=nn.Dropout(dropout),
                    h=nn.ModuleList([Block() for _ in range(n_layer)]),
                    ln_f=nn.LayerNorm(n_embd, bias=bias),
                )
            )
            self.lm_head = nn.Linear(n_embd, vocab, bias=False)
            self.transformer.wte.weight = self.lm_head.weight  # weight tying
            self.apply(self._init_weights)
            for name, p in self.named_parameters():
                if name.endswith("c_proj.weight"):
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

        @staticmethod
        def _init_weights(m) -> None:
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

        def forward(self, idx, targets):
            T = idx.shape[1]
            pos = torch.arange(0, T, dtype=idx.dtype)
            x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
            for blk in self.transformer.h:
                x = blk(x)
            logits = self.lm_head(self.transformer.ln_f(x))
            loss = F.cross_entropy(
                logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1
            )
            return logits, loss

    return GPT()


def retrograd_initial_state(cfg: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The initial weights of the model ``retrograd train`` builds for ``cfg`` (same seed, same
    construction order as ``Trainer.__init__``), as NumPy arrays, and the filled-in model
    section (vocab_size, block_size)."""
    import copy

    from retrograd.random import manual_seed
    from retrograd.train.data import build_data
    from retrograd.train.trainer import build_model

    cfg = copy.deepcopy(cfg)
    manual_seed(int(cfg["seed"]))
    data = build_data(cfg)
    model = build_model(cfg, data)
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}, cfg["model"]


# --- the PyTorch run -----------------------------------------------------------------------------
def train_torch(cfg: dict[str, Any], threads: int, init: str = "rg",
                log_every: int = 0) -> dict[str, Any]:
    """Train the config's GPT with PyTorch exactly as ``retrograd.train.Trainer`` does.

    Returns the curves (``train``: [(step, loss)], ``val``: [(step, val_loss)]), the final
    validation loss and timings (``train_s``: sum of step times, ``eval_s``, ``wall_s``: the
    whole call including model and data set-up).
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train_torch(cfg, threads, init, log_every)
    finally:
        torch.set_num_threads(previous)


def _train_torch(cfg: dict[str, Any], threads: int, init: str, log_every: int) -> dict[str, Any]:
    import torch

    from retrograd.train.data import build_data
    from retrograd.train.schedule import lr_lambda

    wall0 = time.perf_counter()
    t = cfg["train"]
    data = build_data(cfg)
    state, mcfg = retrograd_initial_state(cfg)
    torch.manual_seed(int(cfg["seed"]))
    model = build_torch_gpt(mcfg)
    if init == "rg":
        model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    elif init != "torch":
        raise ValueError(f"init must be 'rg' or 'torch', got {init!r}")

    o = cfg["optim"]
    params = [p for p in model.parameters() if p.requires_grad]
    wd = float(o.get("weight_decay", 0.0))
    if o.get("decay_matrices_only"):
        groups: Any = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": wd},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
    else:
        groups = [{"params": params, "weight_decay": wd}]
    if o["name"] != "AdamW":
        raise ValueError(f"only AdamW is mirrored here, the config uses {o['name']}")
    opt = torch.optim.AdamW(groups, lr=float(o["lr"]), betas=tuple(o.get("betas", (0.9, 0.999))),
                            eps=float(o.get("eps", 1e-8)))
    total = int(t["steps"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg["sched"], float(o["lr"]), total))
    clip = t.get("clip_grad_norm")
    eval_every, eval_iters = int(t["eval_every"] or 0), int(t["eval_iters"])

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            losses = [float(model(torch.from_numpy(x), torch.from_numpy(y))[1].item())
                      for x, y in data.eval_batches(eval_iters)]
        model.train()
        return float(np.mean(losses))

    train_curve: list[tuple[int, float]] = []
    val_curve: list[tuple[int, float]] = []
    train_s = eval_s = 0.0
    step = 0
    model.train()
    while step < total:
        t0 = time.perf_counter()
        x, y = data.batch(step)
        opt.zero_grad(set_to_none=True)
        _, loss = model(torch.from_numpy(x), torch.from_numpy(y))
        value = float(loss.item())
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip))
        opt.step()
        sched.step()
        step += 1
        train_s += time.perf_counter() - t0
        train_curve.append((step, value))
        if log_every and step % log_every == 0:
            print(f"torch step {step}: loss {value:.4f} ({train_s / step * 1e3:.0f} ms/step)",
                  flush=True)
        if eval_every and step % eval_every == 0 and step < total:
            t0 = time.perf_counter()
            val_curve.append((step, evaluate()))
            eval_s += time.perf_counter() - t0
            print(f"torch eval @ step {step}: val loss {val_curve[-1][1]:.4f}", flush=True)
    t0 = time.perf_counter()
    val_curve.append((step, evaluate()))  # the final evaluation, as the trainer's _finish
    eval_s += time.perf_counter() - t0
    return {
        "framework": f"torch {torch.__version__}",
        "init": init,
        "threads": threads,
        "steps": step,
        "train": train_curve,
        "val": val_curve,
        "final_val_loss": val_curve[-1][1],
        "train_s": train_s,
        "eval_s": eval_s,
        "train_eval_s": train_s + eval_s,
        "wall_s": time.perf_counter() - wall0,
    }


# --- the retrograd run ---------------------------------------------------------------------------
def read_retrograd_run(run_dir: str | Path) -> dict[str, Any]:
    """Curves and timings of a finished (or partial) ``retrograd train`` run directory."""
    from retrograd.train.trainer import read_metrics

    run_dir = Path(run_dir)
    recs = read_metrics(run_dir)
    train = [(r["step"], r["loss"]) for r in recs if r.get("type") == "train"]
    val = [(r["step"], r["val_loss"]) for r in recs if r.get("type") == "eval"]
    out: dict[str, Any] = {"run_dir": str(run_dir), "train": train, "val": val,
                           "steps": train[-1][0] if train else 0,
                           "final_val_loss": val[-1][1] if val else None}
    final = run_dir / "final.json"
    if final.is_file():
        summ = json.loads(final.read_text())
        tm = summ.get("timings", {})
        out.update(finished=True, train_s=tm.get("train_s"), eval_s=tm.get("eval_s"),
                   train_eval_s=tm.get("total_train_eval_s"), sample=summ.get("sample"))
    else:
        out["finished"] = False
        out["train_s"] = float(sum(r.get("dt", 0.0) for r in recs if r.get("type") == "train"))
    return out


def retrograd_command(out_dir: str | Path, threads: int, steps: int | None = None,
                      sets: list[str] | None = None) -> list[str]:
    """The ``retrograd train shakespeare-gpt`` command line this benchmark runs."""
    cmd = [sys.executable, "-m", "retrograd.cli", "train", PRESET, "--out", str(out_dir),
           "--no-progress", "--set", f"train.threads={threads}"]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    for s in sets or []:
        cmd += ["--set", s]
    return cmd


def thread_env(threads: int) -> dict[str, str]:
    """The environment with every BLAS/OpenMP thread count pinned to ``threads``."""
    env = dict(os.environ)
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    return env


def run_retrograd(out_dir: str | Path, threads: int, steps: int | None = None,
                  sets: list[str] | None = None, log: str | Path | None = None) -> dict[str, Any]:
    """Run the shipped preset through the command line in a subprocess; returns its curves and
    the process's wall time (``wall_s``: imports, data, training, evaluation, sampling,
    report)."""
    cmd = retrograd_command(out_dir, threads, steps, sets)
    t0 = time.perf_counter()
    with open(log or os.devnull, "w") as f:
        proc = subprocess.run(cmd, cwd=ROOT, env=thread_env(threads), stdout=f,
                              stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    res = read_retrograd_run(out_dir)
    res.update(framework="retrograd", threads=threads, wall_s=wall, returncode=proc.returncode,
               command=" ".join(cmd[1:]))
    if proc.returncode != 0:
        raise RuntimeError(f"retrograd train exited with {proc.returncode}; see {log}")
    return res


# --- the figure ----------------------------------------------------------------------------------
def smooth(values: list[float], k: int) -> np.ndarray:
    """Trailing moving average over ``k`` points (fewer at the start)."""
    v = np.asarray(values, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(0, idx - k)
    return (c[idx] - c[lo]) / (idx - lo)


def plot(results: dict[str, Any], path: str | Path, target: float | None = 1.95) -> Path:
    """Validation loss (markers) and smoothed training loss (thin lines) of both runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    # the same-init curves coincide: draw PyTorch dashed on top of retrograd's solid line
    styles = {
        "retrograd": ("retrograd", "tab:blue", "-", "o", 7),
        "torch": ("PyTorch, same init", "tab:orange", "--", "x", 7),
        "torch_own_init": ("PyTorch, own init", "tab:green", ":", "^", 5),
    }
    for key, (label, color, ls, marker, ms) in styles.items():
        r = results.get(key)
        if not r or not r.get("train"):
            continue
        s, loss = zip(*r["train"])
        ax.plot(s, smooth(list(loss), 50), color=color, ls=ls, lw=0.9, alpha=0.6,
                label=f"{label}: train (50-step mean)")
        if r.get("val"):
            vs, vl = zip(*r["val"])
            ax.plot(vs, vl, color=color, ls=ls, marker=marker, ms=ms, lw=1.8,
                    label=f"{label}: val (final {vl[-1]:.4f})")
    if target is not None:
        ax.axhline(target, color="gray", ls="--", lw=0.8, label=f"target {target}")
    # zoom on the last validation points, where a gap between the runs would show
    tail = [(key, r["val"][-3:]) for key in styles if (r := results.get(key)) and r.get("val")]
    if tail and len(tail[0][1]) >= 2:
        ins = ax.inset_axes([0.2, 0.47, 0.3, 0.38])
        for key, pts in tail:
            _, color, ls, marker, ms = styles[key]
            vs, vl = zip(*pts)
            ins.plot(vs, vl, color=color, ls=ls, marker=marker, ms=ms, lw=1.5)
        if target is not None:
            ins.axhline(target, color="gray", ls="--", lw=0.8)
        ins.set_title("val, last evaluations", fontsize=7)
        ins.tick_params(labelsize=7)
        ins.grid(alpha=0.3)
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy (nats/char)")
    ax.set_title("shakespeare-gpt (4 layers, 4 heads, 128 wide, block 64, batch 12)")
    ax.set_ylim(top=min(4.5, ax.get_ylim()[1]))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Final losses, their difference and the first-step check (same init and batch)."""
    rg_r, th_r = results.get("retrograd") or {}, results.get("torch") or {}
    out: dict[str, Any] = {}
    a, b = rg_r.get("final_val_loss"), th_r.get("final_val_loss")
    if a is not None and b is not None:
        out["final_val_loss"] = {"retrograd": a, "torch": b, "abs_diff": abs(a - b)}
        out["within_0.05"] = abs(a - b) <= 0.05
    if a is not None:
        out["retrograd_le_1.95"] = a <= 1.95
    if rg_r.get("train") and th_r.get("train"):
        out["first_step_loss"] = {"retrograd": rg_r["train"][0][1], "torch": th_r["train"][0][1]}
    if rg_r.get("val") and th_r.get("val"):
        both = dict(rg_r["val"])
        diffs = [abs(both[s] - v) for s, v in th_r["val"] if s in both]
        out["max_val_curve_diff"] = max(diffs) if diffs else None
    own = (results.get("torch_own_init") or {}).get("final_val_loss")
    if own is not None:
        out["torch_own_init_final_val_loss"] = own
        if a is not None:
            out["abs_diff_vs_own_init"] = abs(a - own)
    out["seconds"] = {k: {"train_eval_s": r.get("train_eval_s"), "wall_s": r.get("wall_s")}
                      for k in ("retrograd", "torch", "torch_own_init")
                      if (r := results.get(k))}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1, help="BLAS/intra-op threads for both")
    p.add_argument("--steps", type=int, default=None, help="override train.steps (default 2000)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for both frameworks (e.g. model.n_layer=1)")
    p.add_argument("--torch-init", choices=("rg", "torch"), default="rg",
                   help="copy retrograd's initial weights (default) or draw torch's own")
    p.add_argument("--rg-run-dir", default=None,
                   help="where the retrograd run goes (default runs/gpt_training-rg)")
    p.add_argument("--reuse-rg", action="store_true",
                   help="read an already finished --rg-run-dir instead of training again")
    p.add_argument("--only", choices=("retrograd", "torch"), default=None)
    p.add_argument("--own-init", action="store_true",
                   help="also train PyTorch from its own init (torch.manual_seed(seed))")
    p.add_argument("--out", default=str(DEFAULT_JSON), help="JSON of both curves")
    p.add_argument("--plot", default=str(DEFAULT_PLOT), help="PNG of both curves")
    p.add_argument("--replot", metavar="JSON", default=None,
                   help="only redraw --plot from a JSON this script wrote")
    args = p.parse_args(argv)
    if args.replot:
        plot(json.loads(Path(args.replot).read_text()), args.plot)
        print(f"wrote {args.plot}")
        return 0

    cfg = preset_config(args.set, args.steps)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    default_dir = ROOT / "runs" / "gpt_training-rg"
    rg_dir = Path(args.rg_run_dir or default_dir)
    if args.only != "torch" and not args.reuse_rg and (rg_dir / "metrics.jsonl").exists():
        # `retrograd train --out DIR` appends to an existing metrics.jsonl: start clean
        if rg_dir != default_dir:
            p.error(f"{rg_dir} already holds a run; pass --reuse-rg or another --rg-run-dir")
        shutil.rmtree(rg_dir)
    results: dict[str, Any] = {"config": cfg, "threads": args.threads,
                               "cpu_count": os.cpu_count(), "loadavg": {}}
    if args.only != "torch":
        results["loadavg"]["retrograd_start"] = loadavg()
        if args.reuse_rg:
            results["retrograd"] = read_retrograd_run(rg_dir)
            results["retrograd"]["reused"] = True
        else:
            cmd = retrograd_command(rg_dir, args.threads, args.steps, args.set)
            print(f"retrograd: {' '.join(cmd)}", flush=True)
            results["retrograd"] = run_retrograd(rg_dir, args.threads, args.steps, args.set,
                                                 log=rg_dir.with_suffix(".log"))
        results["loadavg"]["retrograd_end"] = loadavg()
        print(f"retrograd: final val loss {results['retrograd']['final_val_loss']}", flush=True)
    if args.only != "retrograd":
        results["loadavg"]["torch_start"] = loadavg()
        results["torch"] = train_torch(cfg, args.threads, args.torch_init,
                                       log_every=int(cfg["train"]["log_every"]))
        results["loadavg"]["torch_end"] = loadavg()
        print(f"torch: final val loss {results['torch']['final_val_loss']:.4f}", flush=True)
        if args.own_init and args.torch_init == "rg":
            results["torch_own_init"] = train_torch(cfg, args.threads, "torch",
                                                    log_every=int(cfg["train"]["log_every"]))
            results["loadavg"]["torch_own_init_end"] = loadavg()
    results["summary"] = summarize(results)
    out.write_text(json.dumps(results, indent=1) + "\n")
    plot(results, args.plot)
    print(json.dumps(results["summary"], indent=1))
    for k in ("retrograd", "torch", "torch_own_init"):
        r = results.get(k)
        if r:
            print(f"{k}: train+eval {r.get('train_eval_s') or 0:.1f} s, "
                  f"wall {r.get('wall_s') or 0:.1f} s")
    print(f"wrote {out} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

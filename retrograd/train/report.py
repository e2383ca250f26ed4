"""Plots (matplotlib, Agg) and a self-contained ``report.html`` for a run directory."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _smooth(y: np.ndarray, k: int) -> np.ndarray:
    if len(y) < k or k <= 1:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    head = c[1:k] / np.arange(1, k)
    return np.concatenate([head, (c[k:] - c[:-k]) / k])


def make_plots(run_dir: Path, records: list[dict[str, Any]]) -> list[Path]:
    """Write loss.png, accuracy.png (classifiers), lr.png and grad_norms.png; returns the paths."""
    plt = _plt()
    train = [r for r in records if r.get("type") == "train"]
    evals = [r for r in records if r.get("type") == "eval"]
    grads = [r for r in records if r.get("type") == "grad"]
    paths: list[Path] = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        p = run_dir / name
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(p)

    if train:
        s = np.array([r["step"] for r in train])
        loss = np.array([r["loss"] for r in train])
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        ax.plot(s, loss, color="tab:blue", alpha=0.25, lw=0.8, label="train (per step)")
        ax.plot(s, _smooth(loss, max(1, len(loss) // 50)), color="tab:blue",
                label="train (smoothed)")
        if evals:
            ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-",
                    color="tab:orange", label="validation")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        if loss.min() > 0 and loss.max() / max(loss.min(), 1e-12) > 20:
            ax.set_yscale("log")
        ax.legend()
        ax.set_title("loss")
        save(fig, "loss.png")

        fig, ax = plt.subplots(figsize=(6.4, 2.8))
        ax.plot(s, [r["lr"] for r in train], color="tab:green")
        ax.set_xlabel("step")
        ax.set_ylabel("learning rate")
        ax.set_title("learning-rate schedule")
        save(fig, "lr.png")

    acc = [r for r in evals if "val_acc" in r]
    if acc:
        fig, ax = plt.subplots(figsize=(6.4, 3.2))
        ax.plot([r["step"] for r in acc], [100 * r["val_acc"] for r in acc], "o-",
                color="tab:purple")
        ax.set_xlabel("step")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title("accuracy")
        ax.grid(alpha=0.3)
        save(fig, "accuracy.png")

    if grads:
        names = list(grads[-1]["norms"])
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        cmap = plt.get_cmap("viridis")
        for i, name in enumerate(names):
            pts = [(r["step"], r["norms"][name]) for r in grads if name in r["norms"]]
            xs, ys = zip(*pts)
            ax.plot(xs, np.maximum(np.array(ys), 1e-12), lw=0.9,
                    color=cmap(i / max(1, len(names) - 1)), label=name)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("gradient L2 norm")
        ax.set_title("per-layer gradient norms (input side dark, output side light)")
        if len(names) <= 12:
            ax.legend(fontsize=7, ncol=2)
        save(fig, "grad_norms.png")
    return paths


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(path.name)}</figcaption></figure>")


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in rows)
    return f"<table>{body}</table>"


def _confusion(cm: list[list[int]]) -> str:
    cm_a = np.asarray(cm)
    head = "".join(f"<th>{j}</th>" for j in range(len(cm_a)))
    rows = []
    for i, row in enumerate(cm_a):
        cells = "".join(
            f'<td class="{"diag" if i == j else ("err" if v else "")}">{v}</td>'
            for j, v in enumerate(row)
        )
        rows.append(f"<tr><th>{i}</th>{cells}</tr>")
    return (f'<table class="cm"><tr><th>true \\ predicted</th>{head}</tr>{"".join(rows)}</table>'
            f"<p>{confusion_summary(cm)}</p>")


def confusion_summary(cm: list[list[int]]) -> str:
    """One line: per-class recall extremes and the most frequent confusion."""
    a = np.asarray(cm, dtype=np.int64)
    recall = np.diag(a) / np.maximum(1, a.sum(axis=1))
    off = a.copy()
    np.fill_diagonal(off, 0)
    i, j = np.unravel_index(int(off.argmax()), off.shape)
    worst = int(recall.argmin())
    return (f"lowest recall: class {worst} ({100 * recall[worst]:.1f}%); "
            f"most frequent confusion: {i} predicted as {j} ({int(off[i, j])} times)")


CSS = """body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:2px 8px;
text-align:right}th{background:#f4f4f4}pre{background:#f7f7f7;padding:1em;overflow:auto;
white-space:pre-wrap}figure{margin:1em 0}img{max-width:100%}.cm td.diag{background:#d9f2d9}
.cm td.err{background:#fbe3e3}"""


def write_report(run_dir: str | Path) -> Path:
    """Make the plots and write ``report.html`` (every image embedded as base64)."""
    run_dir = Path(run_dir)
    records = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()
               if ln.strip()]
    cfg = json.loads((run_dir / "config.json").read_text())
    final_path = run_dir / "final.json"
    final = json.loads(final_path.read_text()) if final_path.exists() else {}
    plots = make_plots(run_dir, records)
    title = f"retrograd run: {cfg.get('preset') or 'custom'} ({cfg['model']['name']})"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    metric_rows = [(k, f"{v:.4f}" if isinstance(v, float) else v) for k, v in final.items()
                   if k in ("step", "val_loss", "val_acc", "train_loss", "steps_per_s")]
    if "val_acc" in final:
        metric_rows.append(("validation accuracy", f"{100 * final['val_acc']:.2f}%"))
    parts.append("<h2>Final metrics</h2>" + _table(metric_rows))
    timings = final.get("timings", {})
    if timings:
        parts.append("<h2>Timings</h2>" + _table([(k, f"{v:.1f} s") for k, v in timings.items()]))
    if final.get("confusion"):
        parts.append("<h2>Confusion matrix (validation)</h2>" + _confusion(final["confusion"]))
    if final.get("sample"):
        parts.append("<h2>Sample</h2><pre>" + html.escape(final["sample"]) + "</pre>")
    parts.append("<h2>Plots</h2>" + "".join(_img(p) for p in plots))
    parts.append("<h2>Configuration</h2><pre>" + html.escape(json.dumps(cfg, indent=2))
                 + "</pre></body></html>")
    out = run_dir / "report.html"
    out.write_text("\n".join(parts), encoding="utf-8")
    return out

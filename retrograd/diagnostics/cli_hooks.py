"""Glue between the ``retrograd`` command line and the diagnostics; the CLI dispatches here.

- ``retrograd train PRESET --monitor`` -> :func:`make_monitor` (a Trainer callback that writes
  ``monitor.json``, ``monitor.txt``, ``monitor.html`` and ``monitor.png`` into the run dir).
- ``retrograd doctor RUN_DIR [--steps N] [--every K]`` -> :func:`doctor`: judges the run's
  ``monitor.json`` if it has one, else trains a short monitored probe from the checkpoint
  (on a copy: the run directory's checkpoint is not changed) and prints the verdicts.
- ``retrograd lr-find PRESET [--num-iter N] [--start-lr A] [--end-lr B] [--out PNG]
  [--set KEY=VALUE]`` -> :func:`lr_find`.
- ``retrograd attribute RUN_DIR --prompt TEXT | --index I [--method M] [--steps N]
  [--out FILE]`` -> :func:`attribute`.

Each returns an exit status (0 = success) and prints its result.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from .attribution import METHODS
from .attribution import attribute as _attribute
from .lr_finder import lr_find as _lr_find
from .monitor import GradientMonitor, load_history, plot_history
from .verdicts import diagnose

__all__ = [
    "make_monitor",
    "MonitorCallback",
    "doctor",
    "lr_find",
    "attribute",
    "write_monitor_files",
]


def write_monitor_files(mon: GradientMonitor, out_dir: str | Path, stem: str = "monitor") -> dict:
    """Save a monitor's history (JSON), report (text, HTML) and plot (PNG) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / f"{stem}.json",
        "txt": out / f"{stem}.txt",
        "html": out / f"{stem}.html",
        "png": out / f"{stem}.png",
    }
    mon.save(paths["json"])
    paths["txt"].write_text(mon.report() + "\n")
    paths["html"].write_text(
        "<!doctype html><meta charset=utf-8><title>retrograd monitor</title>" + mon.to_html() + "\n"
    )
    if mon.history["records"]:
        mon.plot(paths["png"])
    return {k: str(v) for k, v in paths.items()}


class MonitorCallback:
    """Trainer callback (``on_start`` / ``on_step`` / ``on_end``) running a
    :class:`GradientMonitor`.

    The monitor is created before the first step (the trainer's model and optimizer exist by
    then), so the first step is recorded too, and hooks ``optimizer.step`` so gradients and
    update ratios are measured around it."""

    def __init__(self, every: int = 10, quiet: bool = False) -> None:
        self.every = every
        self.quiet = quiet
        self.monitor: GradientMonitor | None = None

    def on_start(self, trainer) -> None:
        self.monitor = GradientMonitor(trainer.model, every=self.every)
        self.monitor.attach_optimizer(trainer.optimizer)
        self.monitor._count = trainer.step  # align with the trainer's step (resumed runs)

    def on_step(self, trainer, step: int, loss: float) -> None:
        if self.monitor is None:  # a trainer without on_start: start recording from here
            self.on_start(trainer)
        self.monitor.log_loss(loss, step=step - 1)

    def on_end(self, trainer) -> None:
        if self.monitor is None:
            return
        self.monitor.detach()
        paths = write_monitor_files(self.monitor, trainer.run_dir)
        if not self.quiet:
            vs = self.monitor.verdicts()
            print(
                "monitor: "
                + ("healthy" if not vs else "; ".join(v.kind for v in vs))
                + f" (details: {paths['txt']})"
            )


def make_monitor(trainer_cfg: dict | None = None, every: int | None = None) -> MonitorCallback:
    """The callback for ``retrograd train --monitor``; ``every`` defaults to the config's
    ``train.monitor_every`` or 10."""
    if every is None:
        every = int(((trainer_cfg or {}).get("train", {}) or {}).get("monitor_every", 10) or 10)
    return MonitorCallback(every=every)


# --- doctor -----------------------------------------------------------------------------------


def _doctor_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="retrograd doctor")
    p.add_argument(
        "--steps",
        type=int,
        default=30,
        help="probe steps when the run has no monitor.json (default 30)",
    )
    p.add_argument("--every", type=int, default=1, help="record every K probe steps")
    p.add_argument("--probe", action="store_true", help="probe even if monitor.json exists")
    p.add_argument("--html", help="also write the report as HTML to this file")
    return p


def doctor(run_dir: str | Path, argv: list[str] | None = None) -> int:
    """``retrograd doctor RUN_DIR``: print the per-layer table and the health verdicts."""
    opts = _doctor_parser().parse_args(list(argv or []))
    run_dir = Path(run_dir)
    hist_path = run_dir / "monitor.json"
    if hist_path.is_file() and not opts.probe:
        # NOTE: the run directory's files are only read; the probe below trains a copy in memory.
        hist = load_history(hist_path)
        vs = diagnose(hist)
        print(f"{run_dir}: verdicts from the monitor recorded during training ({hist_path})")
        txt = run_dir / "monitor.txt"
        if txt.is_file():
            print(txt.read_text().rstrip())
        else:
            for v in vs:
                print(v)
            if not vs:
                print("healthy: no problem detected")
        return 0
    from ..train import load_run

    tr = load_run(run_dir)
    lr = float(tr.optimizer.param_groups[0]["lr"])
    print(
        f"{run_dir}: no monitor.json; probing {opts.steps} training steps from the checkpoint "
        f"(step {tr.step}, lr {lr:g} as the schedule left it) on a copy"
    )
    mon = GradientMonitor(tr.model, every=opts.every)
    mon.attach_optimizer(tr.optimizer)
    from ..train.trainer import compute_loss

    try:
        for k in range(opts.steps):
            x, y = tr.data.batch(tr.step + k)
            tr.model.train()
            tr.optimizer.zero_grad(set_to_none=True)
            loss, _ = compute_loss(tr.model, tr.data, x, y)
            mon.log_loss(loss)
            loss.backward()
            tr.optimizer.step()
    finally:
        mon.detach()
    print(mon.report())
    if opts.html:
        Path(opts.html).write_text(mon.to_html())
        print(f"html: {opts.html}")
    return 0


# --- lr-find ----------------------------------------------------------------------------------


def _lr_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="retrograd lr-find")
    p.add_argument("--num-iter", type=int, default=200)
    p.add_argument("--start-lr", type=float, default=1e-7)
    p.add_argument("--end-lr", type=float, default=10.0)
    p.add_argument("--smooth", type=float, default=0.05)
    p.add_argument("--diverge-th", type=float, default=5.0)
    p.add_argument("--width", type=float, default=0.1, help="smoothing width in decades")
    p.add_argument("--out", help="PNG of loss vs lr (default lr_find_<preset>.png)")
    p.add_argument("--json", help="also write lrs/losses/suggestion as JSON here")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    return p


def lr_find(preset: str, argv: list[str] | None = None) -> int:
    """``retrograd lr-find PRESET``: run the LR range test on the preset's model and data."""
    opts = _lr_parser().parse_args(list(argv or []))
    from ..train import Trainer, apply_set, get_preset
    from ..train.trainer import compute_loss

    cfg = apply_set(get_preset(preset), list(opts.set))
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(cfg, d, progress=False, quiet=True, readonly=True)
        data = tr.data

        def batches():
            k = 0
            while True:
                yield data.batch(k)
                k += 1

        def step_fn(model, loss_fn, batch):
            return compute_loss(model, data, batch[0], batch[1])[0]

        res = _lr_find(
            tr.model,
            None,
            batches(),
            tr.optimizer,
            start_lr=opts.start_lr,
            end_lr=opts.end_lr,
            num_iter=opts.num_iter,
            smooth=opts.smooth,
            diverge_th=opts.diverge_th,
            step_fn=step_fn,
            width=opts.width,
        )
    print(f"{preset}: " + res.text)
    print(f"preset lr: {cfg['optim']['lr']:g}")
    out = opts.out or f"lr_find_{preset}.png"
    res.plot(out)
    print(f"plot: {out}")
    if opts.json:
        Path(opts.json).write_text(json.dumps(res.to_dict()))
    return 0


# --- attribute --------------------------------------------------------------------------------


def _attr_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="retrograd attribute")
    p.add_argument("--method", choices=METHODS, default="integrated_gradients")
    p.add_argument("--steps", type=int, default=32, help="integrated-gradients steps")
    p.add_argument("--target", type=int, help="class / token id to explain (default: predicted)")
    p.add_argument("--out", help="HTML (text models) or PNG (image models) output file")
    return p


def attribute(
    run_dir: str | Path,
    prompt: str | None = None,
    index: int | None = None,
    argv: list[str] | None = None,
) -> int:
    """``retrograd attribute RUN_DIR --prompt TEXT`` (text models: which earlier characters
    drove the next one) or ``--index I`` (classifiers: a saliency map of validation example I)."""
    opts = _attr_parser().parse_args(list(argv or []))
    from ..creation import tensor as _tensor
    from ..train import load_run

    tr = load_run(run_dir)
    data = tr.data
    if data.kind == "lm":
        if prompt is None:
            print("retrograd attribute: a text model needs --prompt", file=sys.stderr)
            return 2
        ids = data.encode(prompt)
        if not ids:
            print("retrograd attribute: empty prompt", file=sys.stderr)
            return 2
        ids = ids[-int(tr.cfg["data"].get("block_size", len(ids))) :]
        x = _tensor([ids])
        a = _attribute(tr.model, x, target=opts.target, method=opts.method, steps=opts.steps)
        nxt = data.decode([int(a.target[0])])
        print(f"next character predicted: {nxt!r}")
        print(a.text(decode=data.decode))
        if a.completeness_error is not None:
            print(
                f"completeness: attributions sum within {100 * a.completeness_error:.2f}% of "
                "score(prompt) - score(zero embedding)"
            )
        out = opts.out or str(Path(run_dir) / "attribution.html")
        Path(out).write_text(
            "<!doctype html><meta charset=utf-8>"
            f"<p>next character: <b>{nxt!r}</b></p>" + a.html(decode=data.decode)
        )
        print(f"html: {out}")
        return 0
    if index is None:
        print("retrograd attribute: a classifier needs --index I", file=sys.stderr)
        return 2
    if not 0 <= index < len(data.x_val):
        print(
            f"retrograd attribute: --index {index} out of range [0, {len(data.x_val)})",
            file=sys.stderr,
        )
        return 2
    x = _tensor(data.x_val[index : index + 1])
    a = _attribute(tr.model, x, target=opts.target, method=opts.method, steps=opts.steps)
    print(
        f"example {index}: label {int(data.y_val[index])}, predicted {int(a.target[0])}, "
        f"method {opts.method}"
    )
    out = opts.out or str(Path(run_dir) / f"attribution_{index}.png")
    if getattr(data, "image", False):
        side = int(round((x.numel()) ** 0.5))
        a.plot(out, image=x._data.reshape(side, side), image_shape=(side, side))
    else:
        import numpy as np

        vals = np.asarray(a.attributions).reshape(-1)
        print("feature attributions: " + ", ".join(f"x{i}={v:+.3g}" for i, v in enumerate(vals)))
        a.plot(out)
    print(f"plot: {out}")
    return 0


def _plot(history_path: str, out: str) -> str:
    """Re-plot a saved monitor history (for scripts)."""
    return plot_history(load_history(history_path), out)

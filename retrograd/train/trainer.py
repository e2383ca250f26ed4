"""The training loop behind ``retrograd train``: build everything from a config, train with
periodic evaluation and checkpoints, survive SIGINT/SIGTERM, resume bit for bit, write a report.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..nn import functional as F
from ..random import manual_seed
from ..tensor import Tensor
from . import checkpoint as ckpt
from .config import ConfigError, check
from .data import build_data
from .dist import is_main_process, rank, world_size
from .progress import Progress, fmt_duration
from .schedule import lr_lambda, make_scheduler

CKPT_NAME = "checkpoint.safetensors"
WEIGHTS_NAME = "model.safetensors"


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf; the parameters keep their values from before that step."""


def choose_threads(setting: int | str | None) -> int | None:
    """Apply ``train.threads``: a number of BLAS threads, or None/"auto".

    "auto" keeps the BLAS default unless the machine is already busy (1-minute load average at
    least the number of cores); then it uses 1 thread, because spinning BLAS threads that
    compete for busy cores made training steps 10-20x slower in our measurements.
    """
    n: int | None
    if setting in (None, "auto"):
        try:
            busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
        except OSError:
            busy = False
        n = 1 if busy else None
    else:
        n = int(setting)
    if n:
        from .. import set_num_threads

        set_num_threads(n)
    return n


# --- building blocks from a config ------------------------------------------------------------
def build_model(cfg: dict, data) -> nn.Module:
    """The model of ``cfg["model"]``; missing sizes (inputs, classes, vocab) come from ``data``.

    Fills those sizes into ``cfg`` so that ``config.json`` describes the model completely.
    """
    from .. import models

    m = cfg["model"]
    kw = {k: v for k, v in m.items() if k != "name"}
    name = m["name"]
    if data.kind == "lm":
        kw.setdefault("vocab_size", data.vocab_size)
        if name == "GPT":
            kw.setdefault("block_size", data.block_size)
    else:
        if name == "MLP":
            kw.setdefault("in_features", int(np.prod(data.x_train.shape[1:])))
            kw.setdefault("out_features", data.num_classes)
            kw.setdefault("hidden", [128])
        elif name in ("LeNet", "ResNet"):
            kw.setdefault("in_channels", data.x_train.shape[1])
            kw.setdefault("num_classes", data.num_classes)
    if (data.kind == "lm") != (name in ("GPT", "CharRNN")):
        raise ConfigError(f"model {name} does not fit task {cfg['task']!r} "
                          f"(text models: GPT, CharRNN; classifiers: MLP, LeNet, ResNet)")
    m.update(kw)
    if name == "GPT":
        return models.GPT(models.GPTConfig(**kw))
    if name in ("LeNet", "ResNet"):
        for key in ("channels", "widths", "blocks"):
            if isinstance(kw.get(key), list):
                kw[key] = tuple(kw[key])
    return getattr(models, name)(**kw)


def build_optimizer(cfg: dict, model: nn.Module):
    """The optimizer of ``cfg["optim"]``. ``decay_matrices_only`` (AdamW) puts biases and norm
    weights in a group without weight decay, like nanoGPT."""
    from .. import optim

    o = dict(cfg["optim"])
    name = o.pop("name")
    matrices_only = o.pop("decay_matrices_only", False)
    if "betas" in o:
        o["betas"] = tuple(o["betas"])
    params: Any = [p for p in model.parameters() if p.requires_grad]
    if matrices_only:
        wd = o.pop("weight_decay", 0.0)
        params = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": wd},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
    return getattr(optim, name)(params, **o)


def total_steps(cfg: dict, data) -> int:
    """``train.steps``, or ``train.epochs`` full passes over the training set when given."""
    t = cfg["train"]
    if t.get("epochs"):
        if not hasattr(data, "steps_per_epoch"):
            raise ConfigError("train.epochs needs a finite data set; use train.steps for text")
        return int(math.ceil(float(t["epochs"]) * data.steps_per_epoch))
    return int(t["steps"])


def grad_norms(model: nn.Module) -> dict[str, float]:
    """The L2 norm of the gradient of each module that owns parameters (read from the arrays)."""
    out: dict[str, float] = {}
    for mname, mod in model.named_modules():
        sq, seen = 0.0, False
        for p in mod.parameters(recurse=False):
            if p.grad is not None:
                g = p.grad._data
                sq += float(np.dot(g.ravel(), g.ravel()))
                seen = True
        if seen:
            out[mname or "(root)"] = math.sqrt(sq)
    return out


def compute_loss(model: nn.Module, data, x: np.ndarray, y: np.ndarray) -> tuple[Tensor, Tensor]:
    """Forward one batch; returns ``(loss, logits)``."""
    xt, yt = Tensor._make(x), Tensor._make(y)
    if data.kind == "lm":
        logits, loss = model(xt, yt)
        return loss, logits
    logits = model(xt)
    return F.cross_entropy(logits, yt), logits


def evaluate(model: nn.Module, data, cfg: dict, confusion: bool = False) -> dict[str, Any]:
    """Validation metrics: ``val_loss`` (+ ``val_acc``, optionally ``confusion``, for classifiers).

    Runs in eval mode under ``no_grad`` and restores the previous mode.
    """
    was = model.training
    model.eval()
    out: dict[str, Any] = {}
    with no_grad():
        if data.kind == "lm":
            losses = [float(compute_loss(model, data, x, y)[0].item())
                      for x, y in data.eval_batches(int(cfg["train"]["eval_iters"]))]
            out["val_loss"] = float(np.mean(losses))
        else:
            bs = int(cfg["train"]["eval_batch_size"])
            total, correct = 0.0, 0
            preds = []
            for i in range(0, len(data.x_val), bs):
                x, y = data.x_val[i : i + bs], data.y_val[i : i + bs]
                loss, logits = compute_loss(model, data, x, y)
                total += float(loss.item()) * len(y)
                p = logits._data.argmax(axis=1)
                correct += int((p == y).sum())
                preds.append(p)
            n = len(data.x_val)
            out["val_loss"] = total / n
            out["val_acc"] = correct / n
            if confusion:
                cm = np.zeros((data.num_classes, data.num_classes), dtype=np.int64)
                np.add.at(cm, (data.y_val, np.concatenate(preds)), 1)
                out["confusion"] = cm.tolist()
    model.train(was)
    return out


# --- run directory ------------------------------------------------------------------------------
def new_run_dir(preset: str | None, out: str | None) -> Path:
    """``out`` if given, else ``runs/<preset>-<timestamp>`` (made unique)."""
    if out:
        path = Path(out)
        if (path / "metrics.jsonl").exists() or (path / "checkpoint.safetensors").exists():
            # never mix two runs' logs or overwrite a checkpoint by accident
            raise SystemExit(
                f"{path} already holds a run; continue it with `--resume {path}` or pass "
                "another --out directory"
            )
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / f"{preset or 'custom'}-{stamp}"
        base, i = path, 1
        while path.exists():
            i += 1
            path = base.with_name(f"{base.name}-{i}")
    return path


class MetricsLog:
    """``metrics.jsonl``: one JSON object per line (train steps, evaluations, gradient norms)."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        if resume_step is not None and path.exists():
            # drop what an interrupted run logged after its last checkpoint
            keep = [ln for ln in path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
            path.write_text("".join(ln + "\n" for ln in keep))
        self._f = open(path, "a" if resume_step is not None else "w", buffering=1)

    def log(self, rec: dict[str, Any]) -> None:
        self._f.write(json.dumps(rec) + "\n")

    def close(self) -> None:
        self._f.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


# --- the trainer ---------------------------------------------------------------------------------
class Trainer:
    """Train the model of a config, writing everything into ``run_dir``.

    Args:
        cfg: a full config (see :mod:`retrograd.train.config`).
        run_dir: where config, metrics, checkpoints, plots and the report go.
        resume: continue from ``run_dir/checkpoint.safetensors``.
        progress: show a bar/log lines (a bar only when stdout is a terminal).
        max_steps: stop (with a checkpoint, as on Ctrl-C) once this step is reached, without
            changing the schedule; used to simulate an interruption.
        callbacks: objects with optional ``on_start(trainer)``, ``on_step(trainer, step, loss)``
            and ``on_end(trainer)``.

    >>> from retrograd.train import Trainer, get_preset
    >>> cfg = get_preset("moons-mlp"); cfg["train"]["steps"] = 5
    >>> import tempfile; d = tempfile.mkdtemp()
    >>> Trainer(cfg, d, progress=False, quiet=True).fit()["step"]
    5
    """

    def __init__(self, cfg: dict, run_dir: str | Path, resume: bool = False,
                 progress: bool = True, max_steps: int | None = None,
                 callbacks: list | None = None, quiet: bool = False,
                 readonly: bool = False) -> None:
        check(cfg)
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.quiet = quiet
        self.progress_enabled = progress and not quiet
        self.max_steps = max_steps
        self.callbacks = list(callbacks or [])
        self.seed = int(cfg["seed"])
        self._stop_signal: int | None = None
        self.threads = choose_threads(cfg["train"].get("threads"))
        manual_seed(self.seed)
        self.data = build_data(cfg)
        self.model = build_model(cfg, self.data)
        self.optimizer = build_optimizer(cfg, self.model)
        self.total = total_steps(cfg, self.data)
        base_lr = float(cfg["optim"]["lr"])
        self.scheduler = make_scheduler(self.optimizer,
                                        lr_lambda(cfg["sched"], base_lr, self.total))
        self.step = 0
        self.timings: dict[str, float] = {"train_s": 0.0, "eval_s": 0.0, "ckpt_s": 0.0}
        self.last_eval: dict[str, Any] = {}
        if resume:
            self._load(self.run_dir / CKPT_NAME)
        elif is_main_process():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._write_config()
        self.metrics = (MetricsLog(self.run_dir / "metrics.jsonl", self.step if resume else None)
                        if is_main_process() and not readonly else None)
        # data parallelism (`mpiexec -n N retrograd train`): gradients averaged during backward
        self.ddp = None
        if world_size() > 1:
            from ..nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(self.model)

    # -- persistence --
    def _write_config(self) -> None:
        meta = {
            "seed": self.seed,
            "total_steps": self.total,
            "world_size": world_size(),
            "argv": sys.argv,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "num_params": sum(p.numel() for p in self.model.parameters()),
            "data_order": "each step's batch is derived from (seed, step)",
        }
        out = {**self.cfg, "meta": meta}
        (self.run_dir / "config.json").write_text(json.dumps(out, indent=2) + "\n")

    def _extra(self) -> dict[str, Any]:
        return {"model_name": self.cfg["model"]["name"], "preset": self.cfg.get("preset"),
                "seed": self.seed, "timings": self.timings}

    def save(self) -> Path:
        """Write the checkpoint (atomically) and return its path."""
        t0 = time.perf_counter()
        path = self.run_dir / CKPT_NAME
        if is_main_process():
            ckpt.save_checkpoint(path, self.model, self.optimizer, self.scheduler, self.step,
                                 self._extra())
        self.timings["ckpt_s"] += time.perf_counter() - t0
        return path

    def _load(self, path: Path) -> None:
        ck = ckpt.read_checkpoint(path)
        meta = ck.get("meta") or {}
        want, got = self.cfg["model"]["name"], meta.get("model_name")
        if got != want:
            raise ckpt.CheckpointError(
                f"cannot resume: {path} holds a {got} model (preset {meta.get('preset')}), "
                f"but this run builds a {want} model (preset {self.cfg.get('preset')})"
            )
        try:
            self.step = ckpt.restore(ck, self.model, self.optimizer, self.scheduler)
        except (RuntimeError, ValueError, KeyError) as e:
            raise ckpt.CheckpointError(
                f"cannot resume from {path}: it does not match this model/optimizer ({e})"
            ) from None
        self.timings.update(meta.get("timings", {}))

    # -- signals --
    def _on_signal(self, signum, frame) -> None:
        if self._stop_signal is not None or getattr(self, "_seen_signal", None):
            raise KeyboardInterrupt  # second Ctrl-C: stop right now
        if world_size() > 1:  # all ranks must stop after the same step: see _agree
            self._seen_signal = signum
            return
        self._stop_signal = signum

    def _install_signals(self):
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread
                pass
        return old

    # -- the loop --
    def _sync_gradients(self) -> None:
        """Average gradients across processes (a no-op for a single process or under DDP)."""
        if world_size() > 1 and getattr(self, "ddp", None) is None:
            from .. import distributed

            distributed.all_reduce_gradients(self.model)

    def _agree(self, loss: float) -> float:
        """With several processes: the loss averaged over ranks, and a stop signal seen by any
        rank stops every rank after this same step (one small all-reduce)."""
        if world_size() == 1:
            return loss
        from .. import distributed

        sig = getattr(self, "_seen_signal", None) or 0
        t = Tensor._make(np.array([loss, float(sig > 0), float(sig)], np.float64))
        distributed.all_reduce(t)
        if t._data[1] > 0 and self._stop_signal is None:
            self._stop_signal = int(round(t._data[2] / t._data[1]))
        return float(t._data[0] / world_size())

    def train_step(self) -> float:
        x, y = self.data.batch(self.step, rank(), world_size())
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        ddp = getattr(self, "ddp", None)
        loss, _ = compute_loss(ddp if ddp is not None else self.model, self.data, x, y)
        value = float(loss.item())
        if not math.isfinite(value):
            dtypes = {str(p.dtype) for p in self.model.parameters()}
            hint = (" float16 overflows above 65504: train in float32 or lower the lr."
                    if "retrograd.float16" in dtypes else
                    " Try a lower learning rate or gradient clipping (train.clip_grad_norm).")
            raise NonFiniteLossError(
                f"non-finite loss ({value}) at step {self.step}; the parameters keep their values "
                f"from before this step.{hint}"
            )
        loss.backward()
        self._sync_gradients()
        return value

    def fit(self) -> dict[str, Any]:
        """Train to the end (or until a signal/``max_steps``); returns the final summary."""
        cfg, t = self.cfg, self.cfg["train"]
        main = is_main_process()
        unit = "tok" if self.data.kind == "lm" else "samples"
        bar = self.progress_enabled and sys.stdout.isatty()
        prog = Progress(self.total, self.step, bar, int(t["log_every"]), unit) if (
            self.progress_enabled and main) else None
        say = prog.write if prog else (lambda m: None if self.quiet else print(m, flush=True))
        if main and not self.quiet:
            n = sum(p.numel() for p in self.model.parameters())
            verb = "resuming at" if self.step else "starting at"
            say(f"{cfg.get('preset') or 'custom'}: {cfg['model']['name']} ({n:,} parameters), "
                f"{self.total} steps, {verb} step {self.step}; run dir {self.run_dir}")
            if self.threads == 1 and t.get("threads") in (None, "auto"):
                say("the machine is busy: using 1 BLAS thread (set train.threads to override)")
        old = self._install_signals()
        eval_every, ckpt_every = int(t["eval_every"] or 0), int(t["ckpt_every"] or 0)
        gn_every = int(t["grad_norm_every"] or 0)
        clip = t.get("clip_grad_norm")
        interrupted = False
        for cb in self.callbacks:
            if hasattr(cb, "on_start"):
                cb.on_start(self)
        try:
            while self.step < self.total:
                if self._stop_signal is not None or (
                        self.max_steps is not None and self.step >= self.max_steps):
                    interrupted = True
                    break
                t0 = time.perf_counter()
                lr = float(self.optimizer.param_groups[0]["lr"])
                loss = self._agree(self.train_step())
                norms = grad_norms(self.model) if gn_every and self.step % gn_every == 0 else None
                if clip:
                    nn.utils.clip_grad_norm_(self.model.parameters(), float(clip))
                self.optimizer.step()
                self.scheduler.step()
                self.step += 1
                dt = time.perf_counter() - t0
                self.timings["train_s"] += dt
                if main:
                    self.metrics.log({"type": "train", "step": self.step, "loss": loss, "lr": lr,
                                      "dt": round(dt, 5)})
                    if norms is not None:
                        self.metrics.log({"type": "grad", "step": self.step, "norms": norms})
                    if prog:
                        prog.update(self.step, loss, lr, self.data.samples_per_step, dt)
                for cb in self.callbacks:
                    if hasattr(cb, "on_step"):
                        cb.on_step(self, self.step, loss)
                if main and eval_every and self.step % eval_every == 0 and self.step < self.total:
                    self._evaluate(say)
                if ckpt_every and self.step % ckpt_every == 0 and self.step < self.total:
                    self.save()
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)
            if prog:
                prog.close()
        if interrupted:
            path = self.save()
            if main:
                why = (signal.Signals(self._stop_signal).name if self._stop_signal
                       else f"max_steps={self.max_steps}")
                say(f"stopped at step {self.step} ({why}); checkpoint saved to {path}\n"
                    f"resume with: retrograd train --resume {self.run_dir}")
                self.metrics.close()
            return {"step": self.step, "interrupted": True, "signal": self._stop_signal,
                    "checkpoint": str(path)}
        return self._finish(say)

    def _evaluate(self, say, confusion: bool = False) -> dict[str, Any]:
        t0 = time.perf_counter()
        res = evaluate(self.model, self.data, self.cfg, confusion=confusion)
        self.timings["eval_s"] += time.perf_counter() - t0
        rec = {"type": "eval", "step": self.step, "val_loss": res["val_loss"]}
        if "val_acc" in res:
            rec["val_acc"] = res["val_acc"]
        self.metrics.log(rec)
        acc = f", val acc {100 * res['val_acc']:.2f}%" if "val_acc" in res else ""
        say(f"eval @ step {self.step}: val loss {res['val_loss']:.4f}{acc}")
        self.last_eval = res
        return res

    def _finish(self, say) -> dict[str, Any]:
        path = self.save()
        summary: dict[str, Any] = {"step": self.step, "interrupted": False,
                                   "checkpoint": str(path)}
        for cb in self.callbacks:
            if hasattr(cb, "on_end"):
                cb.on_end(self)
        if not is_main_process():
            return summary
        from ..io import save

        save(self.model.state_dict(), self.run_dir / WEIGHTS_NAME)
        res = self._evaluate(say, confusion=self.data.kind != "lm")
        train_losses = [r["loss"] for r in read_metrics(self.run_dir)[-200:]
                        if r.get("type") == "train"]
        summary.update({k: v for k, v in res.items() if k != "confusion"})
        summary["train_loss"] = float(np.mean(train_losses[-50:])) if train_losses else None
        if "confusion" in res:
            summary["confusion"] = res["confusion"]
        if self.data.kind == "lm":
            summary["sample"] = self.sample(self.cfg["train"]["sample_prompt"],
                                            int(self.cfg["train"]["sample_tokens"]))
        self.timings["total_train_eval_s"] = self.timings["train_s"] + self.timings["eval_s"]
        summary["timings"] = dict(self.timings)
        summary["steps_per_s"] = self.step / max(1e-9, self.timings["train_s"])
        (self.run_dir / "final.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.metrics.close()
        from .report import write_report

        summary["report"] = str(write_report(self.run_dir))
        if not self.quiet:
            say(f"done in {fmt_duration(self.timings['train_s'])} of training; "
                f"report: {summary['report']}")
        return summary

    def sample(self, prompt: str, tokens: int, temperature: float = 0.8,
               top_k: int | None = None) -> str:
        """Generate text from a text model (seeded from the run's seed, so repeatable)."""
        from ..creation import tensor as _tensor

        manual_seed(self.seed)
        ids = self.data.encode(prompt) or [0]
        out = self.model.generate(_tensor([ids]), tokens, temperature=temperature, top_k=top_k)
        return self.data.decode(out[0].tolist())


def load_run(run_dir: str | Path) -> Trainer:
    """A Trainer restored from a run's config and latest checkpoint (for eval/sample/diagnostics).

    It opens nothing for writing: ``metrics.jsonl`` and the checkpoint are left as they are.
    """
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.json)")
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("meta", None)
    tr = Trainer(cfg, run_dir, resume=True, progress=False, quiet=True, readonly=True)
    tr.model.eval()
    return tr

"""The ``retrograd`` command: train presets, evaluate and sample runs, run the demo and diagnostics.

    retrograd presets
    retrograd train mnist-cnn --epochs 3 --out runs/cnn
    retrograd train --resume runs/cnn
    retrograd eval runs/cnn
    retrograd sample runs/gpt --prompt "ROMEO:" --tokens 500
    retrograd demo
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

EXIT_USAGE = 2


class CLIError(Exception):
    """A user mistake: printed as one line (no traceback), exit status 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="retrograd",
        description="Train and inspect small neural networks with retrograd.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a preset (see `retrograd presets`) or a config file")
    t.add_argument("preset", nargs="?", help="preset name; optional with --resume or --config")
    t.add_argument("--steps", type=int, help="optimizer steps (overrides epochs)")
    t.add_argument("--epochs", type=float, help="passes over the training set")
    t.add_argument("--lr", type=float, help="peak learning rate")
    t.add_argument("--batch-size", type=int, help="samples (sequences) per step")
    t.add_argument("--seed", type=int, help="random seed (default 0)")
    t.add_argument("--out", help="run directory (default runs/<preset>-<timestamp>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its checkpoint")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set model.n_layer=2 (repeatable)")
    t.add_argument("--config", metavar="FILE", help="a TOML or JSON config file")
    t.add_argument("--eval-every", type=int, help="evaluate every N steps")
    t.add_argument("--ckpt-every", type=int, help="checkpoint every N steps")
    t.add_argument("--max-steps", type=int, help="stop (with a checkpoint) at this step, "
                   "keeping the schedule of the full run; resume later")
    t.add_argument("--monitor", action="store_true", help="watch gradients while training "
                   "(retrograd.diagnostics)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar or step lines")

    s = sub.add_parser("sample", help="generate text from a trained text model")
    s.add_argument("run_dir")
    s.add_argument("--prompt", default="\n")
    s.add_argument("--tokens", type=int, default=500)
    s.add_argument("--temperature", type=float, default=0.8)
    s.add_argument("--top-k", type=int, default=None)
    s.add_argument("--seed", type=int, default=None)

    e = sub.add_parser("eval", help="print the validation/test metrics of a run's checkpoint")
    e.add_argument("run_dir")

    sub.add_parser("presets", help="list the presets")

    d = sub.add_parser("demo", help="train a small CNN on MNIST in a few minutes and report")
    d.add_argument("--out", help="run directory")
    d.add_argument("--steps", type=int, help="override the demo's step count")
    d.add_argument("--no-progress", action="store_true")

    doc = sub.add_parser("doctor", help="diagnose a run (gradients, activations, data)")
    doc.add_argument("run_dir")

    lf = sub.add_parser("lr-find", help="learning-rate range test for a preset")
    lf.add_argument("preset")

    at = sub.add_parser("attribute", help="which inputs drove a prediction")
    at.add_argument("run_dir")
    grp = at.add_mutually_exclusive_group(required=True)
    grp.add_argument("--prompt", help="text prompt (text models)")
    grp.add_argument("--index", type=int, help="index of a validation example (classifiers)")
    return p


# --- config assembly --------------------------------------------------------------------------
def build_config(args) -> dict[str, Any]:
    """The config for ``retrograd train``: preset/file/run config, then flags, then ``--set``."""
    from ..train import BASE, apply_set, get_preset, load_file, merge
    from ..train.config import check

    if args.resume:
        run_cfg = Path(args.resume) / "config.json"
        if not run_cfg.is_file():
            raise CLIError(f"--resume {args.resume}: not a run directory (no config.json)")
        cfg = json.loads(run_cfg.read_text())
        cfg.pop("meta", None)
        if args.preset:
            want = get_preset(args.preset)
            if (want["model"]["name"], want["preset"]) != (cfg["model"]["name"], cfg["preset"]):
                raise CLIError(
                    f"cannot resume {args.resume} as preset {args.preset!r}: that run trained a "
                    f"{cfg['model']['name']} model (preset {cfg.get('preset')!r}), and "
                    f"{args.preset!r} builds a {want['model']['name']} model. Drop the preset "
                    f"argument to continue the run as it was."
                )
    elif args.config:
        filecfg = load_file(args.config)
        base = get_preset(args.preset or filecfg["preset"]) if (
            args.preset or filecfg.get("preset")) else copy.deepcopy(BASE)
        cfg = merge(base, filecfg)
    elif args.preset:
        cfg = get_preset(args.preset)
    else:
        raise CLIError("train needs a PRESET, --config FILE or --resume RUN_DIR "
                       "(see `retrograd presets`)")
    flags = {
        "train.steps": args.steps, "train.epochs": args.epochs, "optim.lr": args.lr,
        "data.batch_size": args.batch_size, "seed": args.seed,
        "train.eval_every": args.eval_every, "train.ckpt_every": args.ckpt_every,
    }
    if args.steps is not None:
        cfg["train"]["epochs"] = None
    sets = [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
    cfg = apply_set(cfg, sets + list(args.set))
    check(cfg)
    return cfg


# --- commands -----------------------------------------------------------------------------------
def _monitor_callbacks(args, trainer_cfg) -> list:
    if not getattr(args, "monitor", False):
        return []
    hooks = _hooks()
    if hooks is None or not hasattr(hooks, "make_monitor"):
        print("warning: --monitor needs retrograd.diagnostics.cli_hooks.make_monitor, which this "
              "build lacks; training without it", file=sys.stderr)
        return []
    return [hooks.make_monitor(trainer_cfg)]


def cmd_train(args) -> int:
    from ..train import Trainer
    from ..train.trainer import new_run_dir

    dist = _init_distributed()
    cfg = build_config(args)
    run_dir = Path(args.resume) if args.resume else new_run_dir(cfg.get("preset"), args.out)
    if dist is not None:  # every rank uses rank 0's run directory
        box = [str(run_dir)]
        dist.broadcast_object_list(box, src=0)
        run_dir = Path(box[0])
    trainer = Trainer(cfg, run_dir, resume=bool(args.resume), progress=not args.no_progress,
                      max_steps=args.max_steps, callbacks=_monitor_callbacks(args, cfg))
    summary = trainer.fit()
    main = dist is None or dist.get_rank() == 0
    if dist is not None:
        dist.destroy_process_group()
    if summary.get("interrupted"):
        sig = summary.get("signal")
        return 128 + int(sig) if sig else 0
    if main:
        _print_summary(summary)
    return 0


def _init_distributed():
    """Under an MPI launcher (``mpiexec -n N retrograd train ...``) join the ranks for data
    parallelism; returns ``retrograd.distributed`` then, else None. Rank 0 may evaluate or
    write checkpoints while the others wait, hence a longer default timeout (300 s)."""
    import os

    from .. import distributed as dist

    if not dist.is_mpi_launched() or dist.is_initialized():
        return None
    dist.init_process_group("mpi", timeout=float(os.environ.get("RETROGRAD_DIST_TIMEOUT", 300)))
    if dist.get_world_size() == 1:
        dist.destroy_process_group()
        return None
    return dist


def _print_summary(summary: dict) -> None:
    from ..train.report import confusion_summary

    parts = [f"step {summary['step']}"]
    if summary.get("train_loss") is not None:
        parts.append(f"train loss {summary['train_loss']:.4f}")
    parts.append(f"val loss {summary['val_loss']:.4f}")
    if "val_acc" in summary:
        parts.append(f"test accuracy {100 * summary['val_acc']:.2f}%")
    print("final: " + " | ".join(parts))
    if summary.get("confusion"):
        print("confusion: " + confusion_summary(summary["confusion"]))
    if summary.get("sample"):
        print("sample:\n" + summary["sample"])
    if summary.get("report"):
        print(f"report: {summary['report']}")


def cmd_eval(args) -> int:
    from ..train import evaluate, load_run
    from ..train.report import confusion_summary

    tr = load_run(args.run_dir)
    res = evaluate(tr.model, tr.data, tr.cfg, confusion=tr.data.kind != "lm")
    held = "held-out" if tr.data.kind == "lm" else f"held-out {len(tr.data.x_val):,} examples"
    line = f"{args.run_dir} @ step {tr.step} ({held}): loss {res['val_loss']:.4f}"
    if "val_acc" in res:
        line += f" | accuracy {100 * res['val_acc']:.2f}%"
    print(line)
    if "confusion" in res:
        print("confusion: " + confusion_summary(res["confusion"]))
    return 0


def cmd_sample(args) -> int:
    from ..train import load_run

    tr = load_run(args.run_dir)
    if tr.data.kind != "lm":
        raise CLIError(f"{args.run_dir} holds a {tr.cfg['model']['name']} classifier; "
                       "`sample` needs a text model (shakespeare-gpt, shakespeare-rnn)")
    if args.seed is not None:
        tr.seed = args.seed
    try:
        text = tr.sample(args.prompt, args.tokens, args.temperature, args.top_k)
    except ValueError as e:
        raise CLIError(str(e)) from None
    print(text)
    return 0


def cmd_presets(args) -> int:
    from ..train import describe_presets

    print(describe_presets())
    return 0


#: What ``retrograd demo`` trains: the CNN preset, shortened to fit ~3 minutes on 2 cores.
DEMO = {"preset": "mnist-cnn", "epochs": 6}


def cmd_demo(args) -> int:
    from ..train import Trainer, apply_set, get_preset
    from ..train.trainer import new_run_dir

    cfg = get_preset(DEMO["preset"])
    sets = [f"train.epochs={DEMO['epochs']}"]
    if args.steps:
        sets = [f"train.steps={args.steps}"]
        cfg["train"]["epochs"] = None
    cfg = apply_set(cfg, sets)
    run_dir = new_run_dir("demo-" + cfg["preset"], args.out)
    print(f"retrograd demo: training {cfg['preset']} (LeNet-style CNN) on 8,000 MNIST digits, "
          f"testing on 2,000 held-out ones")
    summary = Trainer(cfg, run_dir, progress=not args.no_progress).fit()
    if summary.get("interrupted"):
        return 130
    _print_summary(summary)
    return 0


def _hooks():
    try:
        from ..diagnostics import cli_hooks
    except ImportError:
        return None
    return cli_hooks


def _dispatch(name: str, func: str, *a, **kw) -> int:
    hooks = _hooks()
    fn = getattr(hooks, func, None) if hooks is not None else None
    if fn is None:
        print(f"retrograd {name}: not available in this build "
              f"(needs retrograd.diagnostics.cli_hooks.{func})", file=sys.stderr)
        return EXIT_USAGE
    rc = fn(*a, **kw)
    return int(rc or 0)


PASS_THROUGH = ("doctor", "lr-find", "attribute")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``retrograd`` console script; returns the exit status."""
    parser = _parser()
    # diagnostics subcommands pass options they do not know on to their hooks
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in PASS_THROUGH:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.args = extra
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from ..train import ConfigError, DataError
    from ..train.checkpoint import CheckpointError

    commands = {
        "train": cmd_train, "eval": cmd_eval, "sample": cmd_sample, "presets": cmd_presets,
        "demo": cmd_demo,
        "doctor": lambda a: _dispatch("doctor", "doctor", a.run_dir, a.args),
        "lr-find": lambda a: _dispatch("lr-find", "lr_find", a.preset, a.args),
        "attribute": lambda a: _dispatch("attribute", "attribute", a.run_dir, prompt=a.prompt,
                                         index=a.index, argv=a.args),
    }
    try:
        return commands[args.command](args)
    except (CLIError, ConfigError, DataError, CheckpointError, FileNotFoundError) as e:
        print(f"retrograd {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `retrograd presets | head -1`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())

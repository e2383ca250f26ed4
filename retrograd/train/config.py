"""Run configurations: nested dicts with defaults, ``--set key=value`` overrides, TOML/JSON files.

A config has five sections (``model``, ``data``, ``optim``, ``sched``, ``train``) plus ``seed``,
``task`` and ``preset``. Keys are addressed with dots: ``model.n_layer``, ``optim.lr``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

SECTIONS = ("model", "data", "optim", "sched", "train")

#: Defaults shared by every run; presets and config files override them.
BASE: dict[str, Any] = {
    "preset": None,
    "task": "classification",
    "seed": 0,
    "model": {"name": "MLP"},
    "data": {"name": "moons", "batch_size": 64},
    "optim": {"name": "AdamW", "lr": 1e-3, "weight_decay": 0.0},
    "sched": {"name": "constant", "warmup": 0, "min_lr": 0.0},
    "train": {
        "steps": 1000,
        "epochs": None,
        "eval_every": 200,
        "ckpt_every": 500,
        "log_every": 50,
        "grad_norm_every": 10,
        "clip_grad_norm": None,
        "eval_batch_size": 500,
        "eval_iters": 20,
        "sample_tokens": 300,
        "sample_prompt": "\n",
        "threads": None,
        "monitor_every": 10,
    },
}

#: Keys that each model/data/optimizer/scheduler accepts (checked by ``--set``).
MODEL_KEYS = {
    "MLP": {"in_features", "hidden", "out_features", "activation", "dropout"},
    "LeNet": {"in_channels", "num_classes", "channels", "hidden", "batch_norm", "dropout"},
    "ResNet": {"in_channels", "num_classes", "widths", "blocks", "stem_stride", "first_stride"},
    "CharRNN": {"vocab_size", "embed_dim", "hidden_size", "num_layers", "dropout"},
    "GPT": {"block_size", "vocab_size", "n_layer", "n_head", "n_embd", "dropout", "bias"},
}
DATA_KEYS = {
    "moons": {"n_train", "n_val", "noise", "batch_size"},
    "mnist": {"root", "n_train", "n_val", "augment_shift", "batch_size", "flatten"},
    "shakespeare": {"path", "block_size", "batch_size", "val_fraction"},
}
OPTIM_KEYS = {
    "SGD": {"lr", "momentum", "weight_decay", "nesterov", "dampening"},
    "Adam": {"lr", "betas", "eps", "weight_decay"},
    "AdamW": {"lr", "betas", "eps", "weight_decay", "decay_matrices_only"},
}
SCHED_KEYS = {"name", "warmup", "min_lr", "decay_steps", "pct_start", "div_factor",
              "final_div_factor"}
SCHEDULES = ("constant", "warmup_cosine", "cosine", "onecycle")


class ConfigError(ValueError):
    """A bad configuration: unknown key, unknown preset, wrong value."""


def merge(base: dict, override: dict) -> dict:
    """A deep copy of ``base`` with ``override`` merged in (dicts merge, other values replace).

    >>> merge({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}})
    {'a': {'x': 1, 'y': 3}}
    """
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            # a new model/optimizer/dataset name starts from a clean section
            if "name" in v and v["name"] != out[k].get("name") and k in ("model", "data", "optim"):
                keep = {"batch_size"} if k == "data" and "batch_size" in out[k] else set()
                out[k] = {kk: vv for kk, vv in out[k].items() if kk in keep}
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def valid_keys(cfg: dict) -> list[str]:
    """Every dotted key that ``--set`` accepts for this config (depends on the model etc.)."""
    keys = ["seed", "task"]
    keys += [f"model.{k}" for k in sorted({"name"} | MODEL_KEYS.get(cfg["model"]["name"], set()))]
    keys += [f"data.{k}" for k in sorted({"name"} | DATA_KEYS.get(cfg["data"]["name"], set()))]
    keys += [f"optim.{k}" for k in sorted({"name"} | OPTIM_KEYS.get(cfg["optim"]["name"], set()))]
    keys += [f"sched.{k}" for k in sorted(SCHED_KEYS)]
    keys += [f"train.{k}" for k in sorted(BASE["train"])]
    return keys


def parse_value(text: str) -> Any:
    """Read a ``--set`` value: JSON when it parses (numbers, lists, true/false/null), else a string.

    >>> parse_value("3e-4"), parse_value("[64, 32]"), parse_value("relu")
    (0.0003, [64, 32], 'relu')
    """
    low = text.strip().lower()
    if low in ("true", "false", "none", "null"):
        return {"true": True, "false": False}.get(low)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_set(cfg: dict, assignments: list[str]) -> dict:
    """Apply ``key=value`` overrides; an unknown key raises ConfigError naming the valid ones."""
    cfg = copy.deepcopy(cfg)
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, _, raw = item.partition("=")
        key = key.strip()
        value = parse_value(raw)
        parts = key.split(".")
        if key.endswith(".name") and len(parts) == 2 and parts[0] in ("model", "data", "optim"):
            cfg = merge(cfg, {parts[0]: {"name": value}})
            continue
        if key not in valid_keys(cfg):
            raise ConfigError(
                f"unknown config key {key!r}. Valid keys: {', '.join(valid_keys(cfg))}"
            )
        node = cfg
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return cfg


def check(cfg: dict) -> None:
    """Raise ConfigError if any key is unknown for the chosen model, data set or optimizer."""
    allowed = set(valid_keys(cfg))
    for k in cfg:
        if k in SECTIONS:
            for kk in cfg[k]:
                if f"{k}.{kk}" not in allowed:
                    raise ConfigError(
                        f"unknown config key '{k}.{kk}'. Valid keys: {', '.join(sorted(allowed))}"
                    )
        elif k not in ("seed", "task", "preset"):
            raise ConfigError(f"unknown config section {k!r}; expected {', '.join(SECTIONS)}")
    if cfg["model"]["name"] not in MODEL_KEYS:
        raise ConfigError(f"unknown model {cfg['model']['name']!r}; expected {sorted(MODEL_KEYS)}")
    if cfg["data"]["name"] not in DATA_KEYS:
        raise ConfigError(f"unknown data set {cfg['data']['name']!r}; expected {sorted(DATA_KEYS)}")
    if cfg["optim"]["name"] not in OPTIM_KEYS:
        raise ConfigError(
            f"unknown optimizer {cfg['optim']['name']!r}; expected {sorted(OPTIM_KEYS)}"
        )
    if cfg["sched"]["name"] not in SCHEDULES:
        raise ConfigError(f"unknown schedule {cfg['sched']['name']!r}; expected {SCHEDULES}")


def load_file(path: str | Path) -> dict:
    """Read a config file: TOML (``.toml``) or JSON (anything else)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    if path.suffix == ".toml":
        import tomllib

        with open(path, "rb") as f:
            return tomllib.load(f)
    return json.loads(path.read_text())

"""Named training recipes for ``retrograd train PRESET`` (each a config override of ``BASE``)."""

from __future__ import annotations

from typing import Any

from .config import BASE, ConfigError, merge

PRESETS: dict[str, dict[str, Any]] = {
    "moons-mlp": {
        "description": "2-layer MLP on two interleaving half-moons (1,000 points, noise 0.1)",
        "task": "classification",
        "model": {"name": "MLP", "in_features": 2, "hidden": [64, 64], "out_features": 2,
                  "activation": "relu"},
        "data": {"name": "moons", "n_train": 1000, "n_val": 1000, "noise": 0.1,
                 "batch_size": 64},
        "optim": {"name": "AdamW", "lr": 1e-2, "weight_decay": 0.0},
        "sched": {"name": "cosine"},
        "train": {"steps": 600, "eval_every": 100, "ckpt_every": 300, "log_every": 50},
    },
    "mnist-mlp": {
        "description": "MLP 784-512-256-10 with dropout on MNIST (8,000 train / 2,000 test)",
        "task": "classification",
        "model": {"name": "MLP", "in_features": 784, "hidden": [512, 256], "out_features": 10,
                  "activation": "relu", "dropout": 0.2},
        "data": {"name": "mnist", "n_train": 8000, "n_val": 2000, "augment_shift": 2,
                 "batch_size": 128},
        "optim": {"name": "AdamW", "lr": 2e-3, "weight_decay": 1e-2},
        "sched": {"name": "onecycle", "pct_start": 0.2},
        "train": {"epochs": 20, "eval_every": 250, "ckpt_every": 500, "log_every": 50},
    },
    "mnist-cnn": {
        "description": "LeNet-style CNN (conv16-conv32-fc128) on MNIST with +-2 px shifts",
        "task": "classification",
        "model": {"name": "LeNet", "channels": [16, 32], "hidden": 128, "dropout": 0.25,
                  "batch_norm": False},
        "data": {"name": "mnist", "n_train": 8000, "n_val": 2000, "augment_shift": 2,
                 "batch_size": 64},
        "optim": {"name": "AdamW", "lr": 3e-3, "weight_decay": 1e-2},
        "sched": {"name": "onecycle", "pct_start": 0.2},
        "train": {"epochs": 12, "eval_every": 250, "ckpt_every": 500, "log_every": 50},
    },
    "mnist-resnet": {
        "description": "ResNet, BatchNorm: 28x28 stem, BasicBlocks 16@14x14, 32@7x7, 64@4x4; MNIST",
        "task": "classification",
        "model": {"name": "ResNet", "widths": [16, 32, 64], "blocks": 1, "stem_stride": 1,
                  "first_stride": 2},
        "data": {"name": "mnist", "n_train": 8000, "n_val": 2000, "augment_shift": 2,
                 "batch_size": 64},
        "optim": {"name": "AdamW", "lr": 3e-3, "weight_decay": 5e-4},
        "sched": {"name": "onecycle", "pct_start": 0.2},
        "train": {"epochs": 8, "eval_every": 250, "ckpt_every": 500, "log_every": 50},
    },
    "shakespeare-rnn": {
        "description": "character LSTM (embed 64, hidden 256) on Tiny Shakespeare",
        "task": "lm",
        "model": {"name": "CharRNN", "embed_dim": 64, "hidden_size": 256, "num_layers": 1,
                  "dropout": 0.0},
        "data": {"name": "shakespeare", "block_size": 64, "batch_size": 64},
        "optim": {"name": "AdamW", "lr": 3e-3, "weight_decay": 0.0},
        "sched": {"name": "warmup_cosine", "warmup": 50, "min_lr": 3e-4},
        "train": {"steps": 1000, "eval_every": 250, "ckpt_every": 500, "log_every": 50,
                  "clip_grad_norm": 1.0},
    },
    "shakespeare-gpt": {
        "description": "nanoGPT's baby GPT (4x4x128, block 64) on Tiny Shakespeare",
        "task": "lm",
        "model": {"name": "GPT", "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0,
                  "bias": True},
        "data": {"name": "shakespeare", "block_size": 64, "batch_size": 12},
        "optim": {"name": "AdamW", "lr": 1e-3, "betas": [0.9, 0.99], "weight_decay": 0.1,
                  "decay_matrices_only": True},
        "sched": {"name": "warmup_cosine", "warmup": 100, "min_lr": 1e-4, "decay_steps": 2000},
        "train": {"steps": 2000, "eval_every": 250, "ckpt_every": 500, "log_every": 50,
                  "clip_grad_norm": 1.0, "eval_iters": 20},
    },
}


def preset_names() -> list[str]:
    return list(PRESETS)


def describe_presets() -> str:
    """One line per preset: name and description."""
    width = max(map(len, PRESETS))
    return "\n".join(f"{name:<{width}}  {p['description']}" for name, p in PRESETS.items())


def get_preset(name: str) -> dict[str, Any]:
    """The full config of a preset (``BASE`` merged with the preset's overrides)."""
    if name not in PRESETS:
        raise ConfigError(
            f"unknown preset {name!r}. Valid presets: {', '.join(PRESETS)}"
        )
    over = {k: v for k, v in PRESETS[name].items() if k != "description"}
    cfg = merge(BASE, over)
    cfg["preset"] = name
    return cfg

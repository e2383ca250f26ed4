"""Checkpoints: model + optimizer + scheduler + step + RNG state, saved with ``rg.save``.

``rg.save`` writes safetensors atomically (temp file, fsync, rename), so a kill mid-write leaves
the previous checkpoint intact; ``rg.load`` detects truncated or damaged files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..tensor import Tensor


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or belongs to another model."""


def _plain(v: Any) -> Any:
    """Drop what cannot be stored (callables such as a LambdaLR's lambdas); numpy -> Python."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items() if not callable(x)}
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(x) for x in v)
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    return v


def state(model, optimizer, scheduler, step: int, extra: dict | None = None) -> dict[str, Any]:
    """Everything needed to continue training exactly where it stopped."""
    from ..random import get_rng_state

    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": _plain(scheduler.state_dict()) if scheduler is not None else None,
        "step": int(step),
        "rng": get_rng_state(),
        "meta": _plain(extra or {}),
    }


def save_checkpoint(path, model, optimizer, scheduler, step: int, extra: dict | None = None):
    """Write a checkpoint to ``path`` atomically."""
    from ..io import save

    save(state(model, optimizer, scheduler, step, extra), Path(path))


def read_checkpoint(path) -> dict[str, Any]:
    """The checkpoint stored at ``path``; CheckpointError if missing or damaged."""
    from ..io import load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        ck = load(path)
    except RuntimeError as e:
        raise CheckpointError(str(e)) from None
    if not isinstance(ck, dict) or not {"model", "optimizer", "step", "rng"} <= set(ck):
        raise CheckpointError(f"{path} is not a retrograd training checkpoint")
    return ck


def restore(ck: dict[str, Any], model, optimizer, scheduler) -> int:
    """Load a checkpoint read by :func:`read_checkpoint` into live objects; returns its step."""
    from ..random import set_rng_state

    model.load_state_dict(ck["model"])
    osd = ck["optimizer"]
    for g, live in zip(osd["param_groups"], optimizer.param_groups):
        for key, val in list(g.items()):
            if isinstance(live.get(key), tuple) and isinstance(val, list):
                g[key] = tuple(val)
    optimizer.load_state_dict(osd)
    if scheduler is not None and ck.get("scheduler") is not None:
        scheduler.load_state_dict(ck["scheduler"])
    rng = ck["rng"]
    set_rng_state(rng if isinstance(rng, Tensor) else Tensor._make(np.asarray(rng)))
    return int(ck["step"])

"""Where the trainer asks "how many processes, and which one am I?" (the seam for data parallelism).

Everything here degrades to a single process when ``retrograd.distributed`` is not initialised.
"""

from __future__ import annotations


def _dist():
    try:
        from .. import distributed as d
    except ImportError:  # pragma: no cover - the package always exists
        return None
    is_init = getattr(d, "is_initialized", None)
    if is_init is None or not is_init():
        return None
    return d


def world_size() -> int:
    """Number of training processes (1 without ``retrograd.distributed``)."""
    d = _dist()
    return int(d.get_world_size()) if d is not None else 1


def rank() -> int:
    """This process's index in ``range(world_size())`` (0 without ``retrograd.distributed``)."""
    d = _dist()
    return int(d.get_rank()) if d is not None else 0


def is_main_process() -> bool:
    """True on the process that logs, evaluates, checkpoints and writes the report."""
    return rank() == 0

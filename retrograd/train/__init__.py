"""The training loop, presets, run directories and reports behind the ``retrograd`` command."""

from .config import BASE, ConfigError, apply_set, load_file, merge
from .data import DataError
from .dist import is_main_process, rank, world_size
from .presets import PRESETS, describe_presets, get_preset, preset_names
from .trainer import NonFiniteLossError, Trainer, evaluate, load_run, read_metrics

__all__ = [
    "BASE", "ConfigError", "DataError", "NonFiniteLossError", "PRESETS", "Trainer",
    "apply_set", "describe_presets", "evaluate", "get_preset", "is_main_process", "load_file",
    "load_run", "merge", "preset_names", "rank", "read_metrics", "world_size",
]

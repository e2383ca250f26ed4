"""``DistributedSampler``: each rank gets its own equal-sized slice of the (shuffled) indices."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..random import Generator
from .sampler import Sampler

__all__ = ["DistributedSampler"]


def _dist_defaults() -> tuple[int, int]:
    """World size and rank from ``rg.distributed`` when a process group is up, else (1, 0)."""
    try:
        from .. import distributed as dist

        if dist.is_available() and dist.is_initialized():
            return int(dist.get_world_size()), int(dist.get_rank())
    except Exception:  # noqa: BLE001 - rg.distributed missing or not usable: single process
        pass
    return 1, 0


class DistributedSampler(Sampler):
    """PyTorch's partitioning: shuffle with ``seed + epoch`` (call :meth:`set_epoch` every
    epoch), pad by repeating the first indices so every rank gets ``ceil(N / replicas)``
    samples (or drop the tail with ``drop_last=True``), then rank ``r`` takes every
    ``num_replicas``-th index starting at ``r``.

    >>> import retrograd as rg
    >>> list(rg.data.DistributedSampler(range(5), num_replicas=2, rank=1, shuffle=False))
    [1, 3, 0]
    """

    def __init__(
        self,
        dataset: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_replicas is None or rank is None:
            world, me = _dist_defaults()
            num_replicas = world if num_replicas is None else num_replicas
            rank = me if rank is None else rank
        if rank >= num_replicas or rank < 0:
            raise ValueError(
                f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]"
            )
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def _index_array(self) -> np.ndarray:
        n = len(self.dataset)
        if self.shuffle:
            idx = Generator().manual_seed(self.seed + self.epoch).rng.permutation(n)
        else:
            idx = np.arange(n)
        if not self.drop_last:
            pad = self.total_size - n
            if pad > 0:
                idx = np.concatenate([idx, np.resize(idx, pad)])
        else:
            idx = idx[: self.total_size]
        return idx[self.rank : self.total_size : self.num_replicas].astype(np.int64, copy=False)

    def __iter__(self) -> Iterator[int]:
        return iter(self._index_array().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle differently (but identically on every rank) for ``epoch``."""
        self.epoch = epoch

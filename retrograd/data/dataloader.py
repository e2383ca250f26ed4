"""``DataLoader``: iterate a dataset in (shuffled) batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..tensor import Tensor
from .collate import default_collate, default_convert
from .dataset import IterableDataset, Subset, TensorDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

__all__ = ["DataLoader", "get_worker_info"]


def get_worker_info() -> None:
    """Always ``None``: batches are produced in the main process."""
    return None


class DataLoader:
    """``torch.utils.data.DataLoader`` with the same arguments and batching rules.

    Batches are built in the calling process: ``num_workers > 0`` is accepted and behaves
    like ``num_workers=0`` (NumPy work is already vectorised, and the order is identical).
    A ``TensorDataset`` with the default collate is batched by indexing whole arrays at
    once, with no per-sample Python.

    >>> import retrograd as rg
    >>> ds = rg.data.TensorDataset(rg.arange(10.0), rg.arange(10))
    >>> g = rg.Generator().manual_seed(0)
    >>> dl = rg.data.DataLoader(ds, batch_size=4, shuffle=True, generator=g)
    >>> [x.shape[0] for x, y in dl], len(dl)
    ([4, 4, 2], 3)
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Sampler | Any = None,
        batch_sampler: Any = None,
        num_workers: int = 0,
        collate_fn: Callable | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable | None = None,
        multiprocessing_context: Any = None,
        generator: Any = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        pin_memory_device: str = "",
        in_order: bool = True,
    ) -> None:
        if num_workers < 0:
            raise ValueError(
                "num_workers option should be non-negative; use num_workers=0 to disable "
                "multiprocessing."
            )
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        self.dataset = dataset
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.generator = generator
        self.prefetch_factor = prefetch_factor
        self.persistent_workers = persistent_workers
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            if shuffle not in (False, None):
                raise ValueError(
                    f"DataLoader with IterableDataset: expected unspecified shuffle option, "
                    "but got "
                    f"shuffle={shuffle}"
                )
            if sampler is not None:
                raise ValueError(
                    f"DataLoader with IterableDataset: expected unspecified sampler option, "
                    "but got "
                    f"sampler={sampler}"
                )
            if batch_sampler is not None:
                raise ValueError(
                    "DataLoader with IterableDataset: expected unspecified batch_sampler option, "
                    f"but got batch_sampler={batch_sampler}"
                )
        else:
            shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                    "and drop_last"
                )
            batch_size = None
            drop_last = False
        elif batch_size is None and drop_last:
            raise ValueError(
                "batch_size=None option disables auto-batching and is mutually exclusive with "
                "drop_last"
            )
        if sampler is None and not self._iterable:
            sampler = (
                RandomSampler(dataset, generator=generator)
                if shuffle
                else SequentialSampler(dataset)
            )
        if batch_size is not None and batch_sampler is None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self._auto_collation = batch_sampler is not None or (
            self._iterable and batch_size is not None
        )
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)
            if self.batch_size is not None:
                return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
            return n
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        return len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        if self._iterable:
            return self._iter_iterable()
        if self.batch_sampler is None:
            return (self.collate_fn(self.dataset[i]) for i in self.sampler)
        base, remap = self.dataset, None
        if isinstance(base, Subset) and isinstance(base.dataset, TensorDataset):
            base, remap = base.dataset, np.asarray(base.indices, dtype=np.int64)
        fast = (
            isinstance(base, TensorDataset)
            and self.collate_fn is default_collate
            and isinstance(self.batch_sampler, BatchSampler)
        )
        if fast:
            arrays = self.batch_sampler._array_batches()
            if arrays is not None:
                return self._iter_tensor_dataset(base, arrays, remap)
        return self._iter_map()

    @staticmethod
    def _iter_tensor_dataset(
        ds: TensorDataset, batches: Iterator[np.ndarray], remap: np.ndarray | None
    ) -> Iterator[list[Tensor]]:
        datas = [t._data for t in ds.tensors]
        for idx in batches:
            if remap is not None:
                idx = remap[idx]
            # default_collate turns tuple samples into a list of batched tensors
            yield [Tensor._make(d[idx]) for d in datas]

    def _iter_map(self) -> Iterator[Any]:
        getitems = getattr(self.dataset, "__getitems__", None)
        for indices in self.batch_sampler:
            if callable(getitems):
                samples = getitems(indices)
            else:
                samples = [self.dataset[i] for i in indices]
            yield self.collate_fn(samples)

    def _iter_iterable(self) -> Iterator[Any]:
        if self.batch_size is None:
            for sample in self.dataset:
                yield self.collate_fn(sample)
            return
        batch = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)

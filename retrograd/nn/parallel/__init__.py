"""Data parallelism (``DistributedDataParallel``, ``SyncBatchNorm``)."""

from .distributed import DistributedDataParallel
from .sync_batchnorm import SyncBatchNorm

__all__ = ["DistributedDataParallel", "SyncBatchNorm"]

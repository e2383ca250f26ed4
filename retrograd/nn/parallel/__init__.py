"""Data parallelism (``DistributedDataParallel``)."""

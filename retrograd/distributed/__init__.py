"""Distributed data parallel over MPI (``torch.distributed`` names)."""

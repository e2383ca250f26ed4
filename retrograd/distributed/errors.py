"""Exceptions raised by ``rg.distributed`` (``torch.distributed.DistError`` and friends)."""

from __future__ import annotations

__all__ = ["DistError", "DistBackendError", "DistNetworkError"]


class DistError(RuntimeError):
    """Base class of distributed errors."""


class DistBackendError(DistError):
    """A collective failed: a peer rank failed, died, or did not join within the timeout.

    ``failed_ranks`` lists the ranks blamed (empty when unknown).
    """

    def __init__(self, msg: str, failed_ranks=()):
        super().__init__(msg)
        self.failed_ranks = tuple(failed_ranks)


class DistNetworkError(DistError):
    """The launcher or the network could not be set up."""

"""Async work handles and the deadline-bounded wait used by every collective.

Collectives never block inside MPI: they start a non-blocking request and poll it with
``Test`` so that a dead or hung peer turns into a ``DistBackendError`` naming it, within the
process group's timeout, instead of a hang.
"""

from __future__ import annotations

import time

__all__ = ["Work"]


class Work:
    """Handle of a collective started with ``async_op=True`` (``torch.distributed.Work``).

    ``wait()`` blocks (bounded by the group timeout) until the result is in the output tensor;
    ``is_completed()`` tests without blocking.

    >>> import retrograd as rg
    >>> import retrograd.distributed as dist
    >>> dist.init_process_group("mpi")
    >>> t = rg.ones(3)
    >>> work = dist.all_reduce(t, async_op=True)
    >>> work.wait()
    True
    >>> dist.destroy_process_group()
    """

    __slots__ = ("_pg", "_reqs", "_finish", "_done", "_exc", "_what", "_outputs")

    def __init__(self, pg, reqs, finish=None, what: str = "collective", outputs=()):
        self._pg = pg
        self._reqs = list(reqs)
        self._finish = finish
        self._done = False
        self._exc = None
        self._what = what
        self._outputs = list(outputs)
        if not self._reqs:
            self._complete()

    def _complete(self):
        self._done = True
        fin, self._finish = self._finish, None
        if fin is not None:
            fin()

    def is_completed(self) -> bool:
        """True once the collective has finished (its output is then written)."""
        if self._done:
            return True
        if self._pg.test_all(self._reqs):
            self._complete()
        return self._done

    def wait(self, timeout=None) -> bool:
        """Block until done; raises ``DistBackendError`` if a peer failed or the timeout passed."""
        if self._done:
            if self._exc is not None:
                raise self._exc
            return True
        try:
            self._pg.wait_all(self._reqs, self._what, timeout)
        except Exception as e:
            self._exc = e
            self._done = True
            raise
        self._complete()
        return True

    def is_success(self) -> bool:
        return self._done and self._exc is None

    def exception(self):
        return self._exc

    def result(self) -> list:
        """The output tensors of the collective."""
        self.wait()
        return self._outputs

    def synchronize(self) -> None:
        self.wait()


def poll(test, deadline: float, on_tick) -> bool:
    """Call ``test()`` until it is true or ``deadline`` (monotonic) passes; spin briefly, then
    back off to short sleeps so that an idle rank does not steal a core from a busy one.
    ``on_tick(waited)`` runs about every 0.2 s (failure checks); returns False on timeout."""
    start = time.monotonic()
    spins = 0
    next_tick = start + 0.2
    while not test():
        spins += 1
        if spins > 50:
            # sleep grows to 1 ms: a fast all-reduce finishes in the spin phase
            time.sleep(min(1e-3, 2e-6 * (spins - 50)))
        now = time.monotonic()
        if now >= next_tick:
            on_tick(now - start)
            next_tick = now + 0.2
            if now >= deadline:
                return False
    return True

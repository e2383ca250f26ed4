"""Failure detection: who failed, who died, who never joined.

Every rank of a job shares a small directory (``$RETROGRAD_DIST_DIR`` or the system temp dir,
keyed by a job id chosen by rank 0). A rank that raises writes ``rank<r>.failed`` with its
error before aborting the job; a rank waiting unusually long in a collective writes
``rank<r>.wait`` with the collective's sequence number. A waiting rank checks, about five
times a second: failure files, whether peers on its own host are still alive (their pids are
exchanged at init), and MPICH's SIGUSR1 "a process failed" notification. So a failure is
named within a fraction of a second when it can be seen, and within the timeout otherwise.
"""

from __future__ import annotations

import os
import signal
import socket

__all__ = ["FailureMonitor"]

_SIGNALLED = [False]


def _on_sigusr1(signum, frame):  # hydra sends SIGUSR1 when a process of the job fails
    _SIGNALLED[0] = True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child stays a zombie until its launcher reaps it
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


class FailureMonitor:
    """The shared job directory plus the peers' host names and pids."""

    def __init__(self, path: str, rank: int, size: int, hosts: list, pids: list):
        self.path = path
        self.rank = rank
        self.size = size
        self.hosts = hosts
        self.pids = pids
        self.host = socket.gethostname()
        self._wait_seq = -1
        self._old_usr1 = None  # the directory is created on the first write only
        if hasattr(signal, "SIGUSR1"):
            try:
                if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
                    self._old_usr1 = signal.signal(signal.SIGUSR1, _on_sigusr1)
            except ValueError:  # not the main thread
                pass

    def close(self):
        if self._old_usr1 is not None:
            signal.signal(signal.SIGUSR1, self._old_usr1)
            self._old_usr1 = None

    def _file(self, rank: int, kind: str) -> str:
        return os.path.join(self.path, f"rank{rank}.{kind}")

    def _write(self, kind: str, text: str, create: bool = True) -> None:
        try:
            if create:
                os.makedirs(self.path, exist_ok=True)
            with open(self._file(self.rank, kind), "w") as f:
                f.write(text)
        except OSError:
            pass

    def report_failure(self, msg: str) -> None:
        self._write("failed", msg)

    def ack(self) -> None:
        """Tell a failed rank that this one has seen its failure (it may then abort)."""
        self._write("ack", "", create=False)

    def acked(self, rank: int) -> bool:
        return os.path.exists(self._file(rank, "ack"))

    def failures(self) -> dict:
        """rank -> message, for every rank that reported a failure (self excluded)."""
        out = {}
        try:
            names = os.listdir(self.path)
        except OSError:
            return out
        for n in names:
            if n.endswith(".failed") and n.startswith("rank"):
                try:
                    r = int(n[4:-7])
                except ValueError:
                    continue
                if r == self.rank:
                    continue
                try:
                    with open(os.path.join(self.path, n)) as f:
                        out[r] = f.read().strip()
                except OSError:
                    out[r] = f"rank {r} failed"
        return out

    def dead_peers(self) -> list:
        """Ranks on this host whose process no longer exists."""
        return [
            r
            for r in range(self.size)
            if r != self.rank and self.hosts[r] == self.host and not _pid_alive(self.pids[r])
        ]

    def note_waiting(self, seq: int, what: str) -> None:
        if self._wait_seq == seq:
            return
        self._wait_seq = seq
        self._write("wait", f"{seq} {what}")

    def laggards(self, seq: int) -> list:
        """Ranks not known to have reached collective ``seq``."""
        out = []
        for r in range(self.size):
            if r == self.rank:
                continue
            try:
                with open(self._file(r, "wait")) as f:
                    s = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                s = -1
            if s < seq:
                out.append(r)
        return out

    def signalled(self) -> bool:
        return _SIGNALLED[0]

    def describe(self, rank: int) -> str:
        return f"rank {rank} (pid {self.pids[rank]} on {self.hosts[rank]})"

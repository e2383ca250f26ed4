"""The default process group: ``init_process_group`` over MPI (mpi4py), or a size-1 world.

MPI is never initialised at ``import retrograd``: mpi4py is imported on the first
``init_process_group`` that needs it. Without a launcher (``mpiexec``/``srun``) the group is a
local world of size 1 where every collective is an identity, and MPI is not touched at all.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import socket
import sys
import tempfile
import time
import uuid
import warnings
from datetime import timedelta

import numpy as np

from .errors import DistBackendError
from .failure import FailureMonitor
from .work import poll

__all__ = [
    "init_process_group",
    "destroy_process_group",
    "is_available",
    "is_mpi_available",
    "is_mpi_launched",
    "is_initialized",
    "get_rank",
    "get_world_size",
    "get_backend",
    "Backend",
    "GroupMember",
    "group",
]

DEFAULT_TIMEOUT = 60.0  # seconds; RETROGRAD_DIST_TIMEOUT overrides it

_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")
_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")


class Backend(str):
    """Backend names (``torch.distributed.Backend``). ``"mpi"`` is the transport; ``"gloo"``
    is accepted as an alias so that CPU code written for PyTorch runs unchanged."""

    MPI = "mpi"
    GLOO = "gloo"
    NCCL = "nccl"


class GroupMember:
    """``dist.group.WORLD`` (an alias of ``group=None``: the default group is the only one)."""

    WORLD = None
    NON_GROUP_MEMBER = -100


group = GroupMember


class _ProcessGroup:
    """World state: rank, size, the MPI communicators and the failure monitor."""

    def __init__(self, rank, size, timeout, MPI=None, comm=None, ctrl=None, monitor=None):
        self.rank = rank
        self.size = size
        self.timeout = timeout
        self.MPI = MPI
        self.comm = comm  # collectives
        self.ctrl = ctrl  # shutdown barrier, never mixed with user collectives
        self.monitor = monitor
        self.seq = 0
        self.backend = "mpi"

    # --- waiting with a deadline ---------------------------------------------------------
    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def test_all(self, reqs, statuses=None) -> bool:
        try:
            return bool(self.MPI.Request.Testall(reqs, statuses))
        except self.MPI.Exception as e:
            raise DistBackendError(f"rank {self.rank}: MPI error: {e}") from e

    def wait_all(self, reqs, what, timeout=None, statuses=None) -> None:
        name, seq = what if isinstance(what, tuple) else (what, self.seq)
        t = self.timeout if timeout is None else _seconds(timeout)
        deadline = time.monotonic() + t
        ok = poll(
            lambda: self.test_all(reqs, statuses), deadline, lambda w: self._tick(name, seq, w)
        )
        if not ok:
            self._tick(name, seq, t)  # a failure seen at the last moment names its rank
            lag = self.monitor.laggards(seq) if self.monitor is not None else []
            who = ", ".join(self.monitor.describe(r) for r in lag) if lag else "unknown ranks"
            raise _peer_error(
                f"rank {self.rank}: {name} (collective #{seq}) timed out after {t:g} s waiting "
                f"for {who}: they did not join it (alive but hung or busy, or calling a "
                "different collective). Raise the limit with init_process_group(timeout=...) "
                "or RETROGRAD_DIST_TIMEOUT.",
                lag,
            )

    def _tick(self, name, seq, waited):
        mon = self.monitor
        if mon is None:
            return
        fails = mon.failures()
        if fails:
            ranks = sorted(fails)
            raise _peer_error(
                f"rank {self.rank}: {name} aborted because " + "; ".join(fails[r] for r in ranks),
                ranks,
            )
        dead = mon.dead_peers()
        if dead:
            raise _peer_error(
                f"rank {self.rank}: {name} aborted because "
                + ", ".join(mon.describe(r) for r in dead)
                + " died (killed, or exited without reporting an error)",
                dead,
            )
        if waited > 1.0:
            mon.note_waiting(seq, name)
        if mon.signalled() and waited > 1.0:
            raise _peer_error(
                f"rank {self.rank}: {name} aborted: the MPI launcher reported that a process "
                f"of the job failed (ranks that did not join: {mon.laggards(seq)})",
                mon.laggards(seq),
            )


def _peer_error(msg, ranks) -> DistBackendError:
    e = DistBackendError(msg, ranks)
    e._peer_failure = True  # the excepthook aborts at once instead of blaming this rank
    return e


class _State:
    pg: _ProcessGroup | None = None
    old_excepthook = None
    atexit_registered = False


def _seconds(timeout) -> float:
    t = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    if not t > 0:
        raise ValueError(f"timeout must be positive; got {timeout!r}")
    return t


def _launcher_size() -> int | None:
    """World size announced by an MPI launcher's environment, or None when not launched."""
    for v in _SIZE_VARS:
        if v in os.environ:
            try:
                return int(os.environ[v])
            except ValueError:
                pass
    if any(v in os.environ for v in _RANK_VARS):
        n = os.environ.get("SLURM_NTASKS") or os.environ.get("SLURM_NPROCS")
        return int(n) if n and n.isdigit() else 0  # launched, size known only to MPI
    return None


def is_available() -> bool:
    """True: the package works everywhere (a size-1 world when MPI is missing)."""
    return True


def is_mpi_available() -> bool:
    """True when mpi4py can be imported (it is not imported here)."""
    return importlib.util.find_spec("mpi4py") is not None


def is_mpi_launched() -> bool:
    """True when an MPI launcher (``mpiexec``, ``srun --mpi=...``) started this process."""
    return _launcher_size() is not None


def is_initialized() -> bool:
    """Whether ``init_process_group`` has been called (and not destroyed)."""
    return _State.pg is not None


def _default_pg() -> _ProcessGroup:
    pg = _State.pg
    if pg is None:
        raise ValueError(
            "Default process group has not been initialized, please make sure to call "
            "init_process_group."
        )
    return pg


def _check_group(group) -> _ProcessGroup:
    if group is not None and group is not _State.pg:
        raise NotImplementedError("only the default group (group=None) is supported")
    return _default_pg()


def get_rank(group=None) -> int:
    """This process's rank in the default group (0..world_size-1).

    >>> import retrograd.distributed as dist
    >>> dist.init_process_group("mpi"); dist.get_rank()
    0
    >>> dist.destroy_process_group()
    """
    return _check_group(group).rank


def get_world_size(group=None) -> int:
    """Number of processes in the default group."""
    return _check_group(group).size


def get_backend(group=None) -> str:
    return _check_group(group).backend


def init_process_group(
    backend: str | None = None,
    init_method: str | None = None,
    timeout: timedelta | float | None = None,
    world_size: int = -1,
    rank: int = -1,
    store=None,
    group_name: str = "",
    pg_options=None,
    device_id=None,
) -> None:
    """Join the job's processes into the default group.

    Run the script under ``mpiexec -n N`` (or ``srun --mpi=pmix``): rank and size come from MPI
    (``init_method`` and ``store`` are accepted and ignored: the launcher is the rendezvous).
    Without a launcher the world has size 1. ``timeout`` (seconds or ``timedelta``; default
    ``$RETROGRAD_DIST_TIMEOUT`` or 60 s) bounds every collective: a failed, dead or hung peer
    makes it raise ``DistBackendError`` naming that rank, and an uncaught error on any rank
    aborts the whole job (after writing ``rank r failed: ...``).

    >>> import retrograd.distributed as dist
    >>> dist.init_process_group(backend="mpi")
    >>> dist.get_world_size()
    1
    >>> dist.destroy_process_group()
    """
    if _State.pg is not None:
        raise ValueError("trying to initialize the default process group twice!")
    name = (backend or "mpi").lower()
    if name not in ("mpi", "gloo", "cpu:mpi", "cpu:gloo"):
        raise RuntimeError(
            f"Invalid backend {backend!r}: retrograd runs on the CPU over MPI; use 'mpi' "
            "(or its alias 'gloo')"
        )
    if timeout is None:
        timeout = float(os.environ.get("RETROGRAD_DIST_TIMEOUT", DEFAULT_TIMEOUT))
    t = _seconds(timeout)
    expected = _launcher_size()
    want = world_size if world_size > 0 else (expected or 1)

    if expected is None and world_size in (-1, 1):
        if rank not in (-1, 0):
            raise ValueError(f"rank {rank} is out of range for world_size 1")
        _State.pg = _ProcessGroup(0, 1, t)
        return
    if not is_mpi_available():
        if want > 1:
            warnings.warn(
                f"retrograd.distributed: a world of {want} processes was expected, but mpi4py "
                "is not installed, so this process runs alone as a world of size 1 (every "
                "rank will train the whole model independently). Install the extra: "
                "pip install 'retrograd[distributed]'.",
                UserWarning,
                stacklevel=2,
            )
        _State.pg = _ProcessGroup(0, 1, t)
        return

    import mpi4py

    if "mpi4py.MPI" not in sys.modules:
        mpi4py.rc.threads = True
        mpi4py.rc.thread_level = "funneled"  # only the main thread calls MPI
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    size, me = world.Get_size(), world.Get_rank()
    if world_size > 0 and world_size != size:
        raise ValueError(f"world_size={world_size} but the MPI launcher started {size} processes")
    if rank >= 0 and rank != me:
        raise ValueError(f"rank={rank} but MPI assigned rank {me} to this process")
    if size == 1:
        _State.pg = _ProcessGroup(0, 1, t, MPI)
        return

    pg = _ProcessGroup(me, size, t, MPI)
    deadline = time.monotonic() + t

    def bounded(req, what):
        if not poll(lambda: pg.test_all([req]), deadline, lambda w: None):
            raise DistBackendError(
                f"rank {me}: init_process_group timed out after {t:g} s in {what}: not all "
                f"{size} ranks called init_process_group"
            )

    comm, req = world.Idup()
    bounded(req, "creating the communicator")
    ctrl, req = world.Idup()
    bounded(req, "creating the communicator")
    for c in (comm, ctrl):
        c.Set_errhandler(MPI.ERRORS_RETURN)
    pg.comm, pg.ctrl = comm, ctrl

    # rank 0 names the shared job directory (failure files), everyone learns pids and hosts
    buf = np.zeros(1024, np.uint8)
    if me == 0:
        root = os.environ.get("RETROGRAD_DIST_DIR") or tempfile.gettempdir()
        path = os.path.join(root, f"retrograd-dist-{uuid.uuid4().hex[:12]}").encode()
        buf[: len(path)] = np.frombuffer(path, np.uint8)
    bounded(comm.Ibcast(buf, root=0), "sharing the job directory")
    path = bytes(buf).rstrip(b"\0").decode()
    mine = np.zeros(264, np.uint8)
    host = socket.gethostname().encode()[:255]
    mine[:8] = np.frombuffer(np.int64(os.getpid()).tobytes(), np.uint8)
    mine[8 : 8 + len(host)] = np.frombuffer(host, np.uint8)
    allinfo = np.zeros((size, 264), np.uint8)
    bounded(comm.Iallgather(mine, allinfo), "exchanging pids")
    pids = [int(np.frombuffer(row[:8].tobytes(), np.int64)[0]) for row in allinfo]
    hosts = [bytes(row[8:]).rstrip(b"\0").decode() for row in allinfo]
    pg.monitor = FailureMonitor(path, me, size, hosts, pids)
    _State.pg = pg
    if _State.old_excepthook is None:
        _State.old_excepthook = sys.excepthook
        sys.excepthook = _excepthook
    if not _State.atexit_registered:
        atexit.register(_at_exit)
        _State.atexit_registered = True


def _shutdown_barrier(pg: _ProcessGroup, what: str) -> None:
    req = pg.ctrl.Ibarrier()
    seq = pg.next_seq()
    pg.wait_all([req], (what, seq))


def destroy_process_group(group=None) -> None:
    """Leave the default group (a bounded barrier, then the communicators are freed)."""
    pg = _check_group(group)
    try:
        if pg.comm is not None:
            _shutdown_barrier(pg, "destroy_process_group")
            pg.comm.Free()
            pg.ctrl.Free()
            if pg.rank == 0:
                _remove_dir(pg)
    finally:
        if pg.monitor is not None:
            pg.monitor.close()
        _State.pg = None
        if _State.old_excepthook is not None:
            sys.excepthook = _State.old_excepthook
            _State.old_excepthook = None


def _abort(pg: _ProcessGroup, code: int = 1) -> None:
    _State.pg = None  # no end-of-program barrier if Abort returns
    try:
        sys.stderr.flush()
        sys.stdout.flush()
        pg.MPI.COMM_WORLD.Abort(code)
    finally:
        os._exit(code)


def _excepthook(tp, val, tb):
    """An uncaught error on one rank would leave the others blocked forever (and this rank in
    MPI_Finalize): report it, let the peers notice, then abort the whole job."""
    prev = _State.old_excepthook or sys.__excepthook__
    pg = _State.pg
    if pg is None or pg.comm is None:
        prev(tp, val, tb)
        return
    mon = pg.monitor
    peer = getattr(val, "_peer_failure", False)
    if not peer:
        # e.g. the SIGINT a launcher sends to the survivors once a rank died: blame the root cause
        cause = _peer_cause(pg)
        if cause:
            peer = True
            what = f"{tp.__name__}: {val}" if str(val) else tp.__name__
            val = f"rank {pg.rank}: {what} after {cause}"
    if peer:
        # the one line that matters first: the launcher may cut the output short
        print(f"[retrograd.distributed] aborting the job: {val}", file=sys.stderr, flush=True)
        if isinstance(val, BaseException):
            prev(tp, val, tb)
        mon.ack()
        time.sleep(0.1)  # let the failed rank see the ack before the directory goes
        _remove_dir(pg)
        _abort(pg)
        return
    prev(tp, val, tb)
    msg = f"rank {pg.rank} failed: {tp.__name__}: {val}"
    mon.report_failure(msg)
    print(
        f"[retrograd.distributed] {msg} (pid {os.getpid()} on {mon.host}); aborting all "
        f"{pg.size} ranks",
        file=sys.stderr,
    )
    # give the peers blocked in a collective a moment to print who failed
    end = time.monotonic() + min(3.0, pg.timeout)
    others = [r for r in range(pg.size) if r != pg.rank]
    while time.monotonic() < end:
        if all(mon.acked(r) for r in others):
            time.sleep(0.3)  # let their message reach the launcher before it kills them
            break
        time.sleep(0.05)
    _remove_dir(pg)
    _abort(pg)


def _peer_cause(pg: _ProcessGroup) -> str | None:
    """A description of the peers that failed or died, or None."""
    mon = pg.monitor
    try:
        fails = mon.failures()
        if fails:
            return "; ".join(fails[r] for r in sorted(fails))
        dead = mon.dead_peers()
    except Exception:  # noqa: BLE001 - best effort while crashing
        return None
    if dead:
        return ", ".join(mon.describe(r) for r in dead) + " died (killed, or exited)"
    return None


def _remove_dir(pg: _ProcessGroup) -> None:
    if pg.monitor is not None:
        import shutil

        shutil.rmtree(pg.monitor.path, ignore_errors=True)


def _at_exit():
    """A rank that exits while its peers still wait in a collective must not hang in
    MPI_Finalize: a bounded barrier, then an abort naming the ranks still running."""
    pg = _State.pg
    if pg is None or pg.comm is None:
        return
    try:
        _shutdown_barrier(pg, "the end-of-program barrier (process exit)")
        if pg.rank == 0:
            _remove_dir(pg)
    except DistBackendError as e:
        print(
            f"[retrograd.distributed] rank {pg.rank}: aborting the job at exit: {e}",
            file=sys.stderr,
        )
        _abort(pg)

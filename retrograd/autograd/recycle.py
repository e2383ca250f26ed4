"""Reuse of large arrays that the graph frees, so training steps stop paying page faults.

A freshly allocated array of a few MB costs a page fault for every 4 KiB on first touch
(glibc hands large freed blocks back to the OS); on a virtual machine that is ~1.5 us per
page, more than the arithmetic done in it. A training step frees and re-allocates the same
large activations and gradients every time, so the pool here keeps such buffers.

One mechanism, reference counts: large outputs are handed out as views of a pool buffer, and
a buffer is reused once ``sys.getrefcount`` shows only the pool refers to it (every array
derived from it, a view, a slice, a Tensor's array, a memoryview, holds a reference). Arrays
made elsewhere join the pool through ``give`` when the caller's reference is provably the
last one. That is the reasoning NumPy's own temporary elision uses.
``RETROGRAD_RECYCLE=0`` turns the mechanism off.
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 20  # smaller arrays come from malloc's free lists without page faults
CAP_BYTES = 256 << 20  # the most the pool keeps (idle buffers are dropped first)

_ENABLED = os.environ.get("RETROGRAD_RECYCLE", "1") != "0"
_pool: dict = {}  # (shape, dtype) -> buffers (lent out as views, or idle)
_pool_bytes = [0]
_lock = threading.Lock()
# a buffer's references when it is idle, counted inside a loop over its list: the list, the
# loop variable, getrefcount's argument
_IDLE = 3


def give(arr) -> None:
    """Put ``arr`` in the pool if the caller's reference (the argument) is its only one.

    Call as ``give(a)`` with ``a`` a local variable holding the last reference: 3 references
    are then expected (that local, this parameter, ``getrefcount``'s argument).
    """
    if (
        not _ENABLED
        or type(arr) is not np.ndarray
        or arr.nbytes < MIN_BYTES
        or arr.base is not None
        or sys.getrefcount(arr) != 3
    ):
        return
    fl = arr.flags
    if fl.c_contiguous and fl.writeable and fl.owndata:
        with _lock:
            _add(arr)


def give_tensor(t) -> None:
    """``give`` the array of Tensor ``t`` when ``t`` (the caller's last reference to it) is
    about to be dropped and owns the only reference to its array."""
    if not _ENABLED or sys.getrefcount(t) != 3:
        return
    arr = t._data
    # references: t._data, this local, getrefcount's argument
    if type(arr) is np.ndarray and arr.nbytes >= MIN_BYTES and sys.getrefcount(arr) == 3:
        t._data = None  # the Tensor is unreachable: it is dropped right after this
        give(arr)


def empty(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array, a view of an idle pool buffer of that shape and dtype when
    there is one (however the arrays made from it died: a conv output consumed by a ReLU
    dies in the forward pass, without passing through backward's release)."""
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize
    for s in shape:
        nbytes *= s
    if nbytes < MIN_BYTES or not _ENABLED:
        return np.empty(shape, dtype)
    key = (tuple(shape), dtype)
    with _lock:
        for base in _pool.get(key, ()):
            if sys.getrefcount(base) == _IDLE:
                return base.view()
        base = np.empty(shape, dtype)
        return base.view() if _add(base) else base


def _add(base: np.ndarray) -> bool:
    """Keep ``base`` in the pool, making room among idle buffers (lock held); False when the
    pool is full of buffers in use."""
    if _pool_bytes[0] + base.nbytes > CAP_BYTES:
        _drop_idle()
        if _pool_bytes[0] + base.nbytes > CAP_BYTES:
            return False
    _pool.setdefault((base.shape, base.dtype), []).append(base)
    _pool_bytes[0] += base.nbytes
    return True


def _drop_idle() -> None:
    """Forget the pool buffers no array refers to any more (lock held)."""
    for key in list(_pool):
        keep = []
        for base in _pool[key]:
            if sys.getrefcount(base) == _IDLE:
                _pool_bytes[0] -= base.nbytes
            else:
                keep.append(base)
        if keep:
            _pool[key] = keep
        else:
            del _pool[key]


def empty_like(a: np.ndarray, dtype=None) -> np.ndarray:
    """``empty(a.shape, dtype or a.dtype)`` (C order)."""
    return empty(a.shape, a.dtype if dtype is None else dtype)


def clear() -> None:
    """Forget every pool buffer (frees those no array refers to)."""
    with _lock:
        _pool.clear()
        _pool_bytes[0] = 0


def pool_bytes() -> int:
    """Bytes of the buffers in the pool, in use or idle."""
    return _pool_bytes[0]


def idle_bytes() -> int:
    """Bytes of the pool buffers no array refers to now."""
    with _lock:
        return sum(
            b.nbytes for lst in _pool.values() for b in lst if sys.getrefcount(b) == _IDLE
        )


def donated(t):
    """The array of gradient Tensor ``t`` when a vjp may overwrite it in place, else None.

    The engine hands a vjp its incoming gradient from a list it drops right after the call;
    when that list entry and the vjp's own parameter are the only references to ``t`` (and
    ``t`` is the only holder of its array), nothing can read the array again, so the vjp may
    write its result there instead of into a fresh array. Call as ``donated(g)`` from the
    vjp with ``g`` its parameter: 4 references to ``t`` are then expected (the engine's list,
    that parameter, this parameter, ``getrefcount``'s argument).
    """
    if not _ENABLED or sys.getrefcount(t) != 4:
        return None
    arr = t._data
    # references: t._data, this local, getrefcount's argument
    if type(arr) is not np.ndarray or sys.getrefcount(arr) != 3:
        return None
    fl = arr.flags
    if not (fl.c_contiguous and fl.writeable):
        return None
    if arr.base is None:
        return arr if fl.owndata else None
    base = arr.base
    # a whole view of a pool buffer, which then has these references: the pool's list,
    # arr.base, this local, getrefcount's argument
    if (
        type(base) is np.ndarray
        and base.shape == arr.shape
        and base.dtype == arr.dtype
        and sys.getrefcount(base) == 4
    ):
        return arr
    return None

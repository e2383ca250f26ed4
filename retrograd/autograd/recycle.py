"""Reuse of large arrays that the graph frees, so training steps stop paying page faults.

A freshly allocated array of a few MB costs a page fault for every 4 KiB on first touch
(glibc hands large freed blocks back to the OS); on a virtual machine that is ~1.5 us per
page, more than the arithmetic done in it. A training step frees and re-allocates the same
large activations and gradients every time, so arrays that backward frees are kept here and
handed to the next op that needs an output of that shape and dtype.

An array is taken in only when nothing else can see it: the caller passes its one remaining
reference, and ``sys.getrefcount`` proves there is no other (a view, a Tensor, a memoryview,
a user's variable would each hold one). That is the reasoning NumPy's own temporary elision
uses. ``RETROGRAD_RECYCLE=0`` turns the mechanism off.
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 20  # smaller arrays come from malloc's free lists without page faults
CAP_BYTES = 256 << 20  # the most kept at once (older shapes are dropped first)

_ENABLED = os.environ.get("RETROGRAD_RECYCLE", "1") != "0"
_free: dict = {}  # (shape, dtype) -> [arrays]; insertion order = age
_held = [0]  # bytes kept
_lock = threading.Lock()


def give(arr) -> None:
    """Keep ``arr`` for reuse if the caller's reference (the argument) is its only one.

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
    if not (fl.c_contiguous and fl.writeable and fl.owndata):
        return
    key = (arr.shape, arr.dtype)
    with _lock:
        _free.setdefault(key, []).append(arr)
        _held[0] += arr.nbytes
        while _held[0] > CAP_BYTES and _free:
            old = next(iter(_free))
            lst = _free[old]
            _held[0] -= lst.pop(0).nbytes
            if not lst:
                del _free[old]


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
    """An uninitialised array, reused when one of that shape and dtype is free.

    Large arrays are handed out as views of a buffer the pool keeps (``_lent``): every array
    derived from one (slices, reshapes, the view itself) refers to that buffer, so when its
    reference count is back to the pool's own, nothing can see it any more and it is reused,
    however the arrays made from it died (a conv output consumed by a ReLU dies in the
    forward pass, without passing through backward's release)."""
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize
    for s in shape:
        nbytes *= s
    if nbytes < MIN_BYTES or not _ENABLED:
        return np.empty(shape, dtype)
    key = (tuple(shape), dtype)
    with _lock:
        lst = _free.get(key)
        if lst:
            arr = lst.pop()
            _held[0] -= arr.nbytes
            if not lst:
                del _free[key]
            return arr
        bases = _lent.get(key)
        if bases:
            for base in bases:
                # references: the list, this loop variable, getrefcount's argument
                if sys.getrefcount(base) == 3:
                    return base.view()
            base = None
        if _lent_bytes[0] + nbytes > CAP_BYTES:
            _drop_idle_lent()
            if _lent_bytes[0] + nbytes > CAP_BYTES:
                return np.empty(shape, dtype)
        base = np.empty(shape, dtype)
        _lent.setdefault(key, []).append(base)
        _lent_bytes[0] += nbytes
        return base.view()


_lent: dict = {}  # (shape, dtype) -> buffers whose views are handed out
_lent_bytes = [0]


def _drop_idle_lent() -> None:
    """Forget the lent buffers no array refers to any more (called with the lock held)."""
    for key in list(_lent):
        keep = []
        for base in _lent[key]:
            # references: the old list, this loop variable, getrefcount's argument
            if sys.getrefcount(base) == 3:
                _lent_bytes[0] -= base.nbytes
            else:
                keep.append(base)
        if keep:
            _lent[key] = keep
        else:
            del _lent[key]


def empty_like(a: np.ndarray, dtype=None) -> np.ndarray:
    """``empty(a.shape, dtype or a.dtype)`` (C order)."""
    return empty(a.shape, a.dtype if dtype is None else dtype)


def clear() -> None:
    """Drop every kept array and forget the lent ones (frees what nothing refers to)."""
    with _lock:
        _free.clear()
        _held[0] = 0
        _lent.clear()
        _lent_bytes[0] = 0


def held_bytes() -> int:
    """Bytes kept for reuse now."""
    return _held[0]


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
    # a whole view of a lent buffer, which then has these references: the pool's list,
    # arr.base, this local, getrefcount's argument
    if (
        type(base) is np.ndarray
        and base.shape == arr.shape
        and base.dtype == arr.dtype
        and sys.getrefcount(base) == 4
    ):
        return arr
    return None

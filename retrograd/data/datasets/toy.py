"""Toy 2-D classification data: moons, circles, spirals, blobs.

Every generator returns ``(X, y)`` as rg tensors: ``X`` float32 ``(n_samples, n_features)``
and ``y`` int64 ``(n_samples,)``. ``random_state`` is an int seed, a NumPy ``RandomState``,
or ``None`` (then the global rg RNG is used). The constructions follow scikit-learn's
``make_moons``, ``make_circles`` and ``make_blobs`` (with an int seed they draw from
``np.random.RandomState`` in the same order).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...random import _rng
from ...tensor import Tensor

__all__ = ["make_moons", "make_circles", "make_spirals", "make_blobs"]


def _state(random_state: Any) -> np.random.RandomState:
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if random_state is None:
        return np.random.RandomState(int(_rng(None).integers(0, 2**32 - 1)))
    return np.random.RandomState(int(random_state))


def _split(n_samples: Any) -> tuple[int, int]:
    if isinstance(n_samples, (tuple, list)):
        if len(n_samples) != 2:
            raise ValueError("When a tuple, n_samples must have exactly two elements.")
        return int(n_samples[0]), int(n_samples[1])
    return int(n_samples) // 2, int(n_samples) - int(n_samples) // 2


def _finish(
    X: np.ndarray, y: np.ndarray, shuffle: bool, noise: float | None, rs
) -> tuple[Tensor, Tensor]:
    if shuffle:
        idx = np.arange(X.shape[0])
        rs.shuffle(idx)
        X, y = X[idx], y[idx]
    if noise is not None:
        X = X + rs.normal(scale=noise, size=X.shape)
    return Tensor._make(X.astype(np.float32)), Tensor._make(y.astype(np.int64))


def make_moons(
    n_samples: int | tuple[int, int] = 100,
    *,
    shuffle: bool = True,
    noise: float | None = None,
    random_state: Any = None,
) -> tuple[Tensor, Tensor]:
    """Two interleaving half circles (class 0 on top, class 1 below, shifted right).

    >>> import retrograd as rg
    >>> X, y = rg.data.datasets.make_moons(200, noise=0.1, random_state=0)
    >>> X.shape, X.dtype, y.dtype, int(y.sum())
    (retrograd.Size([200, 2]), retrograd.float32, retrograd.int64, 100)
    """
    n_out, n_in = _split(n_samples)
    rs = _state(random_state)
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    X = np.vstack(
        [
            np.append(np.cos(t_out), 1 - np.cos(t_in)),
            np.append(np.sin(t_out), 1 - np.sin(t_in) - 0.5),
        ]
    ).T
    y = np.hstack([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    return _finish(X, y, shuffle, noise, rs)


def make_circles(
    n_samples: int | tuple[int, int] = 100,
    *,
    shuffle: bool = True,
    noise: float | None = None,
    random_state: Any = None,
    factor: float = 0.8,
) -> tuple[Tensor, Tensor]:
    """A large circle (class 0) around a smaller one (class 1, radius ``factor``).

    >>> import retrograd as rg
    >>> X, y = rg.data.datasets.make_circles(10, random_state=0, shuffle=False)
    >>> y.tolist()
    [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    """
    if not 0 <= factor < 1:
        raise ValueError("'factor' has to be between 0 and 1.")
    n_out, n_in = _split(n_samples)
    rs = _state(random_state)
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.vstack(
        [
            np.append(np.cos(t_out), np.cos(t_in) * factor),
            np.append(np.sin(t_out), np.sin(t_in) * factor),
        ]
    ).T
    y = np.hstack([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    return _finish(X, y, shuffle, noise, rs)


def make_spirals(
    n_samples: int = 100,
    n_classes: int = 3,
    *,
    noise: float = 0.2,
    turns: float = 1.0,
    shuffle: bool = True,
    random_state: Any = None,
) -> tuple[Tensor, Tensor]:
    """``n_classes`` interleaved spiral arms from the origin (the CS231n spiral data set):
    arm ``k`` has radius ``0..1`` and angle ``4*turns*(k .. k+1)`` plus Gaussian ``noise``.

    >>> import retrograd as rg
    >>> X, y = rg.data.datasets.make_spirals(300, 3, random_state=0)
    >>> X.shape, sorted(set(y.tolist()))
    (retrograd.Size([300, 2]), [0, 1, 2])
    """
    rs = _state(random_state)
    counts = [
        n_samples // n_classes + (1 if k < n_samples % n_classes else 0) for k in range(n_classes)
    ]
    xs, ys = [], []
    for k, n in enumerate(counts):
        r = np.linspace(0.0, 1.0, n)
        t = np.linspace(4.0 * turns * k, 4.0 * turns * (k + 1), n) + rs.standard_normal(n) * noise
        xs.append(np.c_[r * np.sin(t), r * np.cos(t)])
        ys.append(np.full(n, k, np.int64))
    return _finish(np.concatenate(xs), np.concatenate(ys), shuffle, None, rs)


def make_blobs(
    n_samples: int | list[int] = 100,
    n_features: int = 2,
    *,
    centers: int | np.ndarray | None = None,
    cluster_std: float | list[float] = 1.0,
    center_box: tuple[float, float] = (-10.0, 10.0),
    shuffle: bool = True,
    random_state: Any = None,
) -> tuple[Tensor, Tensor]:
    """Gaussian blobs around ``centers`` (default: 3 uniform in ``center_box``).

    >>> import retrograd as rg
    >>> X, y = rg.data.datasets.make_blobs(30, centers=3, random_state=0)
    >>> X.shape, [int((y == k).sum()) for k in range(3)]
    (retrograd.Size([30, 2]), [10, 10, 10])
    """
    rs = _state(random_state)
    if isinstance(n_samples, (int, np.integer)):
        if centers is None:
            centers = 3
        if isinstance(centers, (int, np.integer)):
            centers = rs.uniform(center_box[0], center_box[1], size=(int(centers), n_features))
        else:
            centers = np.asarray(centers, dtype=np.float64)
            n_features = centers.shape[1]
        k = centers.shape[0]
        per = [int(n_samples) // k] * k
        for i in range(int(n_samples) % k):
            per[i] += 1
    else:
        per = [int(n) for n in n_samples]
        if centers is None:
            centers = rs.uniform(center_box[0], center_box[1], size=(len(per), n_features))
        centers = np.asarray(centers, dtype=np.float64)
        if len(centers) != len(per):
            raise ValueError(
                f"Length of `n_samples` not consistent with number of centers. Got n_samples = "
                f"{n_samples} and centers = {centers}"
            )
        n_features = centers.shape[1]
    stds = (
        np.full(len(per), cluster_std, dtype=np.float64)
        if np.isscalar(cluster_std)
        else np.asarray(cluster_std)
    )
    xs = [rs.normal(loc=centers[i], scale=stds[i], size=(n, n_features)) for i, n in enumerate(per)]
    ys = [np.full(n, i, np.int64) for i, n in enumerate(per)]
    return _finish(np.concatenate(xs), np.concatenate(ys), shuffle, None, rs)

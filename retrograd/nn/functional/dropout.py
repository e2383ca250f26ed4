"""Dropout family. Masks come from retrograd's default generator, so ``rg.manual_seed``
makes them reproducible."""

from __future__ import annotations

import numpy as np

from ...random import _rng
from ...tensor import Tensor

__all__ = [
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "alpha_dropout",
    "feature_alpha_dropout",
]


def _check_p(p):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _apply_mask(input: Tensor, keep: np.ndarray, p: float, inplace: bool) -> Tensor:
    dt = input._data.dtype
    scale = np.zeros((), dt) if p == 1.0 else dt.type(1.0 / (1.0 - p))
    mask = Tensor._make(keep.astype(dt) * scale)
    out = input * mask
    if inplace and not input.requires_grad:
        input.copy_(out)
        return input
    return out


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` while
    ``training``; identity otherwise.

    >>> import retrograd as rg
    >>> _ = rg.manual_seed(0)
    >>> rg.nn.functional.dropout(rg.ones(4), 0.5).tolist()  # doctest: +SKIP
    [2.0, 0.0, 2.0, 2.0]
    """
    _check_p(p)
    if not training or p == 0.0:
        return input
    keep = _rng(None).random(input._data.shape, dtype=np.float32) >= p
    return _apply_mask(input, keep, p, inplace)


def _feature_dropout(
    input: Tensor, p: float, training: bool, inplace: bool, nspatial: int, name: str
) -> Tensor:
    _check_p(p)
    nd = input._data.ndim
    if nd not in (nspatial + 1, nspatial + 2):
        raise RuntimeError(
            f"{name}: Expected {nspatial + 1}D or {nspatial + 2}D input, but received a {nd}D "
            f"input of shape {list(input._data.shape)}"
        )
    if not training or p == 0.0:
        return input
    lead = input._data.shape[: nd - nspatial]
    keep = _rng(None).random(lead, dtype=np.float32) >= p
    keep = keep.reshape(lead + (1,) * nspatial)
    return _apply_mask(input, keep, p, inplace)


def dropout1d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    """Zero whole channels of (N, C, L) or (C, L) inputs."""
    return _feature_dropout(input, p, training, inplace, 1, "dropout1d")


def dropout2d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    """Zero whole channels of (N, C, H, W) or (C, H, W) inputs."""
    return _feature_dropout(input, p, training, inplace, 2, "dropout2d")


def dropout3d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) inputs."""
    return _feature_dropout(input, p, training, inplace, 3, "dropout3d")


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _alpha(input, p, training, keep_shape):
    _check_p(p)
    if not training or p == 0.0:
        return input
    dt = input._data.dtype
    alpha_p = -_SELU_ALPHA * _SELU_SCALE
    if p == 1.0:
        return input * 0.0
    keep = (_rng(None).random(keep_shape, dtype=np.float32) >= p).astype(dt)
    a = 1.0 / np.sqrt((alpha_p**2 * p + 1) * (1 - p))
    b = -a * alpha_p * p
    mask = Tensor._make(
        np.broadcast_to(keep, input._data.shape).astype(dt)
        if keep.shape != input._data.shape
        else keep
    )
    fill = Tensor._make(((1 - np.broadcast_to(keep, input._data.shape)) * alpha_p).astype(dt))
    return (input * mask + fill) * float(a) + float(b)


def alpha_dropout(
    input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False
) -> Tensor:
    """Dropout for SELU networks: dropped units take SELU's negative saturation value and an
    affine map keeps mean and variance."""
    return _alpha(input, p, training, input._data.shape)


def feature_alpha_dropout(
    input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False
) -> Tensor:
    nd = input._data.ndim
    shape = input._data.shape[:2] + (1,) * (nd - 2)
    return _alpha(input, p, training, shape)

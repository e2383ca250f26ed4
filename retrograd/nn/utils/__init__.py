"""``rg.nn.utils``: gradient clipping and parameter/vector conversion."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ...tensor import Tensor
from . import rnn  # noqa: F401

__all__ = [
    "clip_grad_norm_",
    "clip_grad_norm",
    "clip_grad_value_",
    "parameters_to_vector",
    "vector_to_parameters",
    "get_total_norm",
    "clip_grads_with_norm_",
]


def _as_list(tensors) -> list:
    if isinstance(tensors, Tensor):
        return [tensors]
    return list(tensors)


def _norm64(arr: np.ndarray, norm_type: float) -> float:
    """A p-norm accumulated in float64 (no float32 overflow for huge gradients)."""
    a = np.abs(arr.astype(np.float64, copy=False)).reshape(-1)
    if norm_type == float("inf"):
        return float(a.max()) if a.size else 0.0
    if norm_type == float("-inf"):
        return float(a.min()) if a.size else float("inf")
    if norm_type == 0:
        return float(np.count_nonzero(a))
    if norm_type == 2:
        # scale by the max so squaring cannot overflow even in float64
        m = float(a.max()) if a.size else 0.0
        if m == 0.0 or not np.isfinite(m):
            return m
        return m * float(np.sqrt(np.sum((a / m) ** 2)))
    return float(np.sum(a**norm_type) ** (1.0 / norm_type))


def get_total_norm(
    tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None
) -> Tensor:
    """The p-norm of the norms of ``tensors`` (as if concatenated), as a 0-d tensor.

    >>> import retrograd as rg
    >>> rg.nn.utils.get_total_norm([rg.tensor([3.0, 4.0])])
    tensor(5.)
    """
    ts = [t for t in _as_list(tensors) if t is not None]
    norm_type = float(norm_type)
    dt = ts[0]._data.dtype if ts else np.dtype(np.float32)
    if not ts:
        return Tensor._make(np.zeros((), dt))
    norms = np.array([_norm64(t._data, norm_type) for t in ts], np.float64)
    total = _norm64(norms, norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
            "so it cannot be clipped. To disable this error and scale the gradients by the "
            "non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    with np.errstate(over="ignore"):
        return Tensor._make(np.asarray(total, dt))


def clip_grads_with_norm_(parameters, max_norm: float, total_norm: Tensor, foreach=None) -> None:
    """Scale the gradients by ``min(1, max_norm / (total_norm + 1e-6))``."""
    params = [p for p in _as_list(parameters) if p.grad is not None]
    tn = float(total_norm._data) if isinstance(total_norm, Tensor) else float(total_norm)
    coef = float(max_norm) / (tn + 1e-6)
    if coef >= 1.0:  # clamped to 1: nothing to do (PyTorch multiplies by 1)
        return
    for p in params:
        g = p.grad
        g._data *= g._data.dtype.type(coef)
        g._bump()


def clip_grad_norm_(
    parameters,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach=None,
) -> Tensor:
    """Rescale gradients in place so that their total norm is at most ``max_norm``; returns
    the total norm before clipping (computed in float64, so 1e19 float32 grads do not
    overflow). A non-finite norm raises with ``error_if_nonfinite``.

    >>> import retrograd as rg
    >>> w = rg.tensor([0.0, 0.0], requires_grad=True)
    >>> w.grad = rg.tensor([3.0, 4.0])
    >>> rg.nn.utils.clip_grad_norm_([w], 1.0)
    tensor(5.)
    """
    params = [p for p in _as_list(parameters) if p.grad is not None]
    if not params:
        return Tensor._make(np.zeros((), np.float32))
    total = get_total_norm([p.grad for p in params], norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(params, max_norm, total, foreach)
    return total


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Deprecated alias of :func:`clip_grad_norm_`."""
    import warnings

    warnings.warn(
        "`torch.nn.utils.clip_grad_norm` is now deprecated in favor of "
        "`torch.nn.utils.clip_grad_norm_`.",
        FutureWarning,
        stacklevel=2,
    )
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient into ``[-clip_value, clip_value]`` in place."""
    c = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            np.clip(p.grad._data, -c, c, out=p.grad._data)
            p.grad._bump()


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated into one vector (differentiable).

    >>> import retrograd as rg
    >>> rg.nn.utils.parameters_to_vector(rg.nn.Linear(2, 3).parameters()).shape
    retrograd.Size([9])
    """
    from ...ops.movement import cat

    return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy slices of ``vec`` into the parameters' data (in place)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    pointer = 0
    for p in parameters:
        n = p._data.size
        p._data[...] = vec._data[pointer : pointer + n].reshape(p._data.shape)
        p._bump()
        pointer += n

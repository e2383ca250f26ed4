"""Normalisation: batch_norm, layer_norm (fused primitive), group_norm, rms_norm, normalize,
instance_norm, local_response_norm."""

from __future__ import annotations

import numpy as np

from ...ops.nn_ops import layer_norm
from ...tensor import Tensor

__all__ = ["batch_norm", "layer_norm", "group_norm", "rms_norm", "normalize", "instance_norm"]


def _bshape(x: Tensor, t: Tensor) -> Tensor:
    """Per-channel (dim 1) tensor reshaped to broadcast against ``x``."""
    return t.reshape(1, -1, *([1] * (x._data.ndim - 2)))


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation over every dim but the channel dim 1.

    In training mode the batch statistics normalise and (when given) the running buffers are
    updated in place: ``running = (1 - momentum) * running + momentum * stat`` with the
    unbiased batch variance. In eval mode the running statistics normalise.

    >>> import retrograd as rg
    >>> y = rg.nn.functional.batch_norm(rg.randn(8, 3), None, None, training=True)
    >>> y.shape
    retrograd.Size([8, 3])
    """
    x = input
    if x._data.ndim < 2:
        raise ValueError(f"batch_norm(): expected at least 2D input (got {x._data.ndim}D input)")
    c = x._data.shape[1]
    for name, t in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if t is not None and t._data.size != c:
            raise RuntimeError(
                f"batch_norm(): {name} should contain {c} elements not {t._data.size}"
            )
    axes = (0,) + tuple(range(2, x._data.ndim))
    if training:
        n = x._data.size // c if c else 0
        if n <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size "
                f"{list(x._data.shape)}"
            )
        mean = x.mean(axes, keepdim=True)
        xc = x - mean
        var = (xc * xc).mean(axes, keepdim=True)
        if running_mean is not None or running_var is not None:
            m = x._data.dtype.type(momentum)
            bm = mean._data.reshape(-1)
            bv = var._data.reshape(-1) * (n / (n - 1))
            if running_mean is not None:
                rm = running_mean._data
                rm *= 1 - m
                rm += m * bm.astype(rm.dtype, copy=False)
                running_mean._bump()
            if running_var is not None:
                rv = running_var._data
                rv *= 1 - m
                rv += m * bv.astype(rv.dtype, copy=False)
                running_var._bump()
        out = xc * (var + eps).rsqrt()
    else:
        if running_mean is None or running_var is None:
            raise RuntimeError(
                "batch_norm(): running_mean and running_var must be defined in eval mode"
            )
        rm = Tensor._make(running_mean._data.astype(x._data.dtype, copy=False))
        rv = Tensor._make(running_var._data.astype(x._data.dtype, copy=False))
        scale = (rv + eps).rsqrt()
        out = (x - _bshape(x, rm)) * _bshape(x, scale)
    if weight is not None:
        out = out * _bshape(x, weight)
    if bias is not None:
        out = out + _bshape(x, bias)
    return out


def instance_norm(
    input: Tensor,
    running_mean=None,
    running_var=None,
    weight=None,
    bias=None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each (sample, channel) slice over its spatial dims."""
    x = input
    axes = tuple(range(2, x._data.ndim))
    mean = x.mean(axes, keepdim=True)
    xc = x - mean
    out = xc * ((xc * xc).mean(axes, keepdim=True) + eps).rsqrt()
    if weight is not None:
        out = out * _bshape(x, weight)
    if bias is not None:
        out = out + _bshape(x, bias)
    return out


def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise over groups of channels (and the spatial dims) per sample.

    >>> import retrograd as rg
    >>> rg.nn.functional.group_norm(rg.randn(2, 4, 3), 2).shape
    retrograd.Size([2, 4, 3])
    """
    x = input
    if x._data.ndim < 2:
        raise RuntimeError(f"group_norm(): expected at least 2D input, got {x._data.ndim}D")
    n, c = x._data.shape[:2]
    if c % num_groups:
        raise RuntimeError(
            f"Expected number of channels in input to be divisible by num_groups, but got input "
            f"of shape {list(x._data.shape)} and num_groups={num_groups}"
        )
    xg = x.reshape(n, num_groups, -1)
    mean = xg.mean(-1, keepdim=True)
    xc = xg - mean
    out = (xc * ((xc * xc).mean(-1, keepdim=True) + eps).rsqrt()).reshape(x._data.shape)
    if weight is not None:
        out = out * _bshape(x, weight)
    if bias is not None:
        out = out + _bshape(x, bias)
    return out


def rms_norm(
    input: Tensor, normalized_shape, weight: Tensor | None = None, eps: float | None = None
) -> Tensor:
    """``x / sqrt(mean(x^2) + eps) * weight`` over the trailing ``normalized_shape`` dims;
    ``eps=None`` means ``finfo(input.dtype).eps`` (PyTorch).

    >>> import retrograd as rg
    >>> rg.nn.functional.rms_norm(rg.ones(2, 3), (3,)).tolist()[0]
    [1.0, 1.0, 1.0]
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    xs = tuple(input._data.shape)
    if xs[len(xs) - k :] != shape:
        raise RuntimeError(
            f"Given normalized_shape={list(shape)}, expected input with shape [*, "
            f"{', '.join(map(str, shape))}], but got input of size{list(xs)}"
        )
    if eps is None:
        eps = float(np.finfo(input._data.dtype).eps)
    axes = tuple(range(len(xs) - k, len(xs)))
    out = input * ((input * input).mean(axes, keepdim=True) + eps).rsqrt()
    return out * weight if weight is not None else out


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None) -> Tensor:
    """``x / max(||x||_p, eps)`` along ``dim``.

    >>> import retrograd as rg
    >>> rg.nn.functional.normalize(rg.tensor([[3.0, 4.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """
    from ...ops.reduce import vector_norm

    n = vector_norm(input, p, dim, keepdim=True)
    return input / n.clamp_min(eps).expand_as(input)


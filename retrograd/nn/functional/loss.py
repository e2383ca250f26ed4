"""Loss functions. ``cross_entropy`` with class indices is a fused primitive (stable
log-softmax + NLL, hand-written vjp); the rest are composites of stable ops."""

from __future__ import annotations

import math
import warnings

import numpy as np

from ...autograd.node import apply
from ...ops import elementwise as E
from ...ops.nn_ops import BCEWithLogits, BinaryCrossEntropy, cross_entropy_indices
from ...ops.reduce import log_softmax
from ...tensor import Tensor

__all__ = [
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "kl_div",
    "cosine_embedding_loss",
    "gaussian_nll_loss",
    "margin_ranking_loss",
    "soft_margin_loss",
    "hinge_embedding_loss",
    "triplet_margin_loss",
    "multi_margin_loss",
    "poisson_nll_loss",
    "multilabel_soft_margin_loss",
    "triplet_margin_with_distance_loss",
]

_REDUCTIONS = ("none", "mean", "sum")


def _legacy(size_average, reduce, reduction):
    """PyTorch's deprecated ``size_average``/``reduce`` arguments mapped to ``reduction``."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def _reduce(loss: Tensor, reduction: str, weight=None) -> Tensor:
    """``loss`` (times the elementwise ``weight``, if any) reduced as ``reduction`` says."""
    if weight is not None:
        loss = loss * weight
    if reduction == "mean":
        if loss._data.size == 0:  # mean over no elements is nan (PyTorch), without a warning
            return loss.sum() * float("nan")
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _check_same_size(input: Tensor, target: Tensor, name: str) -> None:
    if tuple(input._data.shape) != tuple(target._data.shape):
        warnings.warn(
            f"{name}: Using a target size (retrograd.Size({list(target._data.shape)})) that is "
            f"different to the input size (retrograd.Size({list(input._data.shape)})). This will "
            "likely lead to incorrect results due to broadcasting. Please ensure they have the "
            "same size.",
            UserWarning,
            stacklevel=3,
        )


def _t(x, like: Tensor) -> Tensor:
    if isinstance(x, Tensor):
        return x
    return Tensor._make(np.asarray(x, like._data.dtype))


# --- cross entropy / nll -----------------------------------------------------------------------


def _class_last_2d(input: Tensor):
    """(N, C, d1..dk) -> (N*d1*..*dk, C), (C,) -> (1, C); also the shape of per-element loss."""
    nd = input._data.ndim
    if nd == 1:
        return input.unsqueeze(0), ()
    if nd == 2:
        return input, (input._data.shape[0],)
    c = input._data.shape[1]
    rest = (input._data.shape[0],) + tuple(input._data.shape[2:])
    return input.movedim(1, -1).reshape(-1, c), rest


def _check_targets(input: Tensor, tgt: np.ndarray, ignore_index: int, op: str):
    nd = input._data.ndim
    c = input._data.shape[1] if nd > 1 else input._data.shape[0]
    exp_shape = () if nd == 1 else (input._data.shape[0],) + tuple(input._data.shape[2:])
    if tgt.shape != exp_shape:
        if nd >= 2 and tgt.ndim >= 1 and tgt.shape[0] != input._data.shape[0]:
            raise ValueError(
                f"Expected input batch_size ({input._data.shape[0]}) to match target batch_size "
                f"({tgt.shape[0]})."
            )
        raise RuntimeError(
            f"{op}(): expected target of shape {list(exp_shape)} for input of shape "
            f"{list(input._data.shape)}, got {list(tgt.shape)}"
        )
    flat = tgt.reshape(-1)
    bad = (flat != ignore_index) & ((flat < 0) | (flat >= c))
    if bad.any():
        v = int(flat[bad][0])
        raise IndexError(f"{op}(): Target {v} is out of bounds [0, {c}) for {c} classes.")
    return c


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross entropy between logits ``input`` and class indices (or class probabilities of
    the same shape). Stable for any logits (a fused log-softmax + NLL).

    >>> import retrograd as rg
    >>> x = rg.tensor([[1000.0, 0.0, -1000.0]], requires_grad=True)
    >>> rg.nn.functional.cross_entropy(x, rg.tensor([2]))
    tensor(2000., grad_fn=<NllLossBackward0>)
    """
    reduction = _legacy(size_average, reduce, reduction)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if not isinstance(target, Tensor):
        target = Tensor._make(np.asarray(target))
    if input._data.dtype.kind != "f":
        raise RuntimeError(
            f"cross_entropy(): expected floating point logits, got {input.dtype.name}"
        )
    tgt = target._data
    if tgt.dtype.kind == "f":
        if tgt.shape != input._data.shape:
            raise TypeError(
                f"cross_entropy(): target has dtype {target.dtype.name} and shape "
                f"{list(tgt.shape)}: expected integer class indices (int64, shape "
                f"{[input._data.shape[0]] if input._data.ndim > 1 else []}) or probabilities of "
                f"the same shape as the input {list(input._data.shape)}"
            )
        return _cross_entropy_probs(input, target, weight, reduction, label_smoothing)
    if tgt.dtype.kind not in "iu":
        raise TypeError(
            f"cross_entropy(): expected integer class indices (or probabilities of shape (N,C)) "
            f"as target, got dtype {target.dtype.name}"
        )
    c = _check_targets(input, tgt, ignore_index, "cross_entropy")
    if weight is not None and weight._data.shape != (c,):
        raise RuntimeError(
            f"cross_entropy(): weight tensor should be defined either for all {c} classes or no "
            f"classes but got weight tensor of shape: {list(weight._data.shape)}"
        )
    z2, rest = _class_last_2d(input)
    out = cross_entropy_indices(
        z2,
        tgt.reshape(-1).astype(np.int64, copy=False),
        weight,
        ignore_index,
        label_smoothing,
        reduction,
    )
    if reduction == "none":
        return out.reshape(rest)
    return out


def _cross_entropy_probs(input, target, weight, reduction, label_smoothing):
    nd = input._data.ndim
    cdim = 1 if nd > 1 else 0
    c = input._data.shape[cdim]
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / c
    logp = log_softmax(input, cdim)
    if weight is not None:
        shape = [1] * nd
        shape[cdim] = c
        logp = logp * weight.reshape(shape)
    loss = -(logp * target).sum(cdim)
    if reduction == "mean":
        n = input._data.shape[0] if nd > 1 else 1
        if input._data.size == 0:
            return loss.sum() * float("nan")
        return loss.sum() / (input._data.size // c if nd > 2 else n)
    return _reduce(loss, reduction)


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` at class indices ``target``;
    'mean' divides by the total weight of the non-ignored targets.

    >>> import retrograd as rg
    >>> rg.nn.functional.nll_loss(rg.tensor([[-1.0, -2.0]]), rg.tensor([1]))
    tensor(2.)
    """
    reduction = _legacy(size_average, reduce, reduction)
    tgt = target._data
    if tgt.dtype.kind not in "iu":
        raise TypeError(
            f"nll_loss(): expected integer class indices as target, got dtype {target.dtype.name}"
        )
    _check_targets(input, tgt, ignore_index, "nll_loss")
    z2, rest = _class_last_2d(input)
    t = tgt.reshape(-1)
    mask = t != ignore_index
    safe = np.where(mask, t, 0)
    picked = z2[np.arange(t.shape[0]), safe]
    wt = (weight._data[safe] if weight is not None else np.ones(t.shape[0], z2._data.dtype)) * mask
    wt = Tensor._make(wt.astype(z2._data.dtype))
    per = -picked * wt
    if reduction == "none":
        return per.reshape(rest)
    if reduction == "sum":
        return per.sum()
    if reduction != "mean":
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return per.sum() / wt.sum()


# --- regression ---------------------------------------------------------------------------------


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    weight=None,
) -> Tensor:
    """Mean squared error; warns (like PyTorch) when the shapes differ and would broadcast.

    >>> import retrograd as rg
    >>> rg.nn.functional.mse_loss(rg.tensor([1.0, 3.0]), rg.tensor([0.0, 0.0]))
    tensor(5.)
    """
    reduction = _legacy(size_average, reduce, reduction)
    target = _t(target, input)
    _check_same_size(input, target, "mse_loss")
    d = input - target
    loss = d * d
    return _reduce(loss, reduction, weight)


def l1_loss(
    input: Tensor,
    target: Tensor,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    weight=None,
) -> Tensor:
    """Mean absolute error."""
    reduction = _legacy(size_average, reduce, reduction)
    target = _t(target, input)
    _check_same_size(input, target, "l1_loss")
    loss = (input - target).abs()
    return _reduce(loss, reduction, weight)


def smooth_l1_loss(
    input: Tensor,
    target: Tensor,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Tensor:
    """``0.5 d^2 / beta`` for ``|d| < beta``, else ``|d| - 0.5 beta``; plain L1 at beta 0."""
    reduction = _legacy(size_average, reduce, reduction)
    target = _t(target, input)
    _check_same_size(input, target, "smooth_l1_loss")
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    d = input - target
    a = d.abs()
    if beta == 0:
        return _reduce(a, reduction)
    loss = E.where(a < beta, d * d * (0.5 / beta), a - 0.5 * beta)
    return _reduce(loss, reduction)


def huber_loss(
    input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0, weight=None
) -> Tensor:
    """``0.5 d^2`` for ``|d| < delta``, else ``delta (|d| - 0.5 delta)``."""
    target = _t(target, input)
    _check_same_size(input, target, "huber_loss")
    d = input - target
    a = d.abs()
    loss = E.where(a < delta, d * d * 0.5, (a - 0.5 * delta) * delta)
    return _reduce(loss, reduction, weight)


# --- binary --------------------------------------------------------------------------------------


def binary_cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    """BCE on probabilities; each log is clamped at -100 so p in {0, 1} stays finite.

    >>> import retrograd as rg
    >>> rg.nn.functional.binary_cross_entropy(rg.tensor([1.0]), rg.tensor([0.0]))
    tensor(100.)
    """
    reduction = _legacy(size_average, reduce, reduction)
    target = _t(target, input)
    if tuple(target._data.shape) != tuple(input._data.shape):
        raise ValueError(
            f"Using a target size ({list(target._data.shape)}) that is different to the input "
            f"size ({list(input._data.shape)}) is deprecated. Please ensure they have the same "
            "size."
        )
    p = input._data
    if p.size and (np.nanmin(p) < 0 or np.nanmax(p) > 1):
        raise RuntimeError("all elements of input should be between 0 and 1")
    loss = apply(BinaryCrossEntropy, (input, target.to(input.dtype)))
    return _reduce(loss, reduction, weight)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """BCE on logits, stable for any magnitude (``x=100, y=0`` gives 100 and gradient 1).

    >>> import retrograd as rg
    >>> rg.nn.functional.binary_cross_entropy_with_logits(rg.tensor([100.0]), rg.tensor([0.0]))
    tensor(100.)
    """
    reduction = _legacy(size_average, reduce, reduction)
    target = _t(target, input)
    if tuple(target._data.shape) != tuple(input._data.shape):
        raise ValueError(
            f"Target size ({list(target._data.shape)}) must be the same as input size "
            f"({list(input._data.shape)})"
        )
    pw = None
    if pos_weight is not None:
        pw = np.broadcast_to(pos_weight._data.astype(input._data.dtype), input._data.shape)
    loss = apply(BCEWithLogits, (input, target.to(input.dtype)), {"pw": pw})
    return _reduce(loss, reduction, weight)


# --- distributions ----------------------------------------------------------------------------


def kl_div(
    input: Tensor,
    target: Tensor,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Tensor:
    """KL divergence with ``input`` log-probabilities; ``'batchmean'`` divides the sum by
    the batch size (the mathematically correct KL); 0 * log 0 counts as 0."""
    reduction = _legacy(size_average, reduce, reduction)
    target = _t(target, input)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        safe = E.where(target > 0, target, 1.0)
        loss = E.where(target > 0, target * (safe.log() - input), 0.0 * input)
    if reduction == "batchmean":
        if input._data.ndim == 0:
            return loss.sum()
        return loss.sum() / input._data.shape[0]
    if reduction == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support "
            "size.'batchmean' divides only by the batch size, and aligns with the KL div math "
            "definition.'mean' will be changed to behave the same as 'batchmean' in the next "
            "major release.",
            UserWarning,
            stacklevel=2,
        )
    return _reduce(loss, reduction)


def poisson_nll_loss(
    input: Tensor,
    target: Tensor,
    log_input: bool = True,
    full: bool = False,
    size_average=None,
    eps: float = 1e-8,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    """Poisson negative log-likelihood."""
    reduction = _legacy(size_average, reduce, reduction)
    target = _t(target, input)
    if log_input:
        loss = input.exp() - target * input
    else:
        loss = input - target * (input + eps).log()
    if full:
        t = target._data
        with np.errstate(divide="ignore", invalid="ignore"):
            st = t * np.log(t) - t + 0.5 * np.log(2 * np.pi * t)
        st = np.where(t > 1, st, 0).astype(input._data.dtype)
        loss = loss + Tensor._make(st)
    return _reduce(loss, reduction)


def gaussian_nll_loss(
    input: Tensor,
    target: Tensor,
    var,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Tensor:
    """Gaussian negative log-likelihood with predicted variance ``var`` (clamped at eps)."""
    if not isinstance(var, Tensor):
        var = Tensor._make(np.full(input._data.shape, var, input._data.dtype))
    if var._data.shape != input._data.shape:
        if input._data.shape[:-1] == var._data.shape:
            var = var.unsqueeze(-1)
        elif not (var._data.shape[:-1] == input._data.shape[:-1] and var._data.shape[-1] == 1):
            raise ValueError("var is of incorrect size")
    if (var._data < 0).any():
        raise ValueError("var has negative entry/entries")
    v = var.clone()
    from ...autograd.grad_mode import no_grad

    with no_grad():
        np.maximum(v._data, eps, out=v._data)
    v = var + (v - var).detach()  # clamp the value, keep var's gradient like PyTorch
    loss = 0.5 * (v.log() + (input - target) ** 2 / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


# --- margins and embeddings --------------------------------------------------------------------


def margin_ranking_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    margin: float = 0.0,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    reduction = _legacy(size_average, reduce, reduction)
    return _reduce((-target * (input1 - input2) + margin).clamp_min(0.0), reduction)


def soft_margin_loss(
    input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean"
) -> Tensor:
    reduction = _legacy(size_average, reduce, reduction)
    return _reduce(E.softplus(-target * input), reduction)


def hinge_embedding_loss(
    input: Tensor,
    target: Tensor,
    margin: float = 1.0,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    reduction = _legacy(size_average, reduce, reduction)
    zeros = input * 0.0
    pos = E.where(target == 1, input, zeros)
    neg = E.where(target == -1, (margin - input).clamp_min(0.0), zeros)
    return _reduce(pos + neg, reduction)


def multilabel_soft_margin_loss(
    input: Tensor,
    target: Tensor,
    weight=None,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    reduction = _legacy(size_average, reduce, reduction)
    loss = -(target * E.logsigmoid(input) + (1 - target) * E.logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss.mean(-1), reduction)


def cosine_embedding_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    margin: float = 0.0,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    """``1 - cos`` for target 1, ``max(0, cos - margin)`` for target -1."""
    reduction = _legacy(size_average, reduce, reduction)
    eps = 1e-12
    dim = input1._data.ndim - 1
    prod = (input1 * input2).sum(dim)
    m1 = (input1 * input1).sum(dim) + eps
    m2 = (input2 * input2).sum(dim) + eps
    cos = prod / (m1 * m2).sqrt()
    zeros = cos * 0.0
    pos = E.where(target == 1, 1.0 - cos, zeros)
    neg = E.where(target == -1, (cos - margin).clamp_min(0.0), zeros)
    return _reduce(pos + neg, reduction)


def triplet_margin_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    from .distance import pairwise_distance

    reduction = _legacy(size_average, reduce, reduction)
    dp = pairwise_distance(anchor, positive, p, eps)
    dn = pairwise_distance(anchor, negative, p, eps)
    if swap:
        ds = pairwise_distance(positive, negative, p, eps)
        dn = E.minimum(dn, ds)
    return _reduce((dp - dn + margin).clamp_min(0.0), reduction)


def triplet_margin_with_distance_loss(
    anchor,
    positive,
    negative,
    *,
    distance_function=None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
) -> Tensor:
    from .distance import pairwise_distance

    dist = distance_function or pairwise_distance
    dp = dist(anchor, positive)
    dn = dist(anchor, negative)
    if swap:
        dn = E.minimum(dn, dist(positive, negative))
    return _reduce((dp - dn + margin).clamp_min(0.0), reduction)


def multi_margin_loss(
    input: Tensor,
    target: Tensor,
    p: int = 1,
    margin: float = 1.0,
    weight=None,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    """Multi-class hinge: ``sum_{j != y} max(0, margin - x_y + x_j)^p / C``."""
    reduction = _legacy(size_average, reduce, reduction)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    x = input if input._data.ndim == 2 else input.unsqueeze(0)
    t = target._data.reshape(-1)
    n, c = x._data.shape
    xy = x[np.arange(n), t].unsqueeze(1)
    h = (x - xy + margin).clamp_min(0.0)
    if p == 2:
        h = h * h
    if weight is not None:
        h = h * weight[t].unsqueeze(1)
    not_y = np.ones((n, c), x._data.dtype)
    not_y[np.arange(n), t] = 0
    loss = (h * Tensor._make(not_y)).sum(1) / c
    if input._data.ndim == 1:
        loss = loss.reshape(())
    return _reduce(loss, reduction)

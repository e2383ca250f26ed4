"""Activations not already defined with the elementwise ops: prelu, glu, threshold, shrinks,
rrelu, and the in-place aliases (``relu_`` ...). The core ones (relu, gelu, ...) live in
``retrograd.ops.elementwise`` and are re-exported by ``nn.functional``."""

from __future__ import annotations

from ...ops import elementwise as E
from ...ops.reduce import log_softmax, softmax
from ...tensor import Tensor

__all__ = [
    "prelu",
    "glu",
    "threshold",
    "hardshrink",
    "softshrink",
    "rrelu",
    "relu_",
    "elu_",
    "leaky_relu_",
    "hardtanh_",
    "threshold_",
    "celu_",
    "selu_",
    "rrelu_",
    "gumbel_softmax",
    "silu",
    "mish",
    "logsigmoid",
    "tanh",
    "sigmoid",
]

silu, mish, logsigmoid = E.silu, E.mish, E.logsigmoid


def tanh(input: Tensor) -> Tensor:
    """Elementwise hyperbolic tangent (``torch.nn.functional.tanh``: no ``out=``).

    >>> import retrograd as rg
    >>> rg.nn.functional.tanh(rg.tensor([0.0]))
    tensor([0.])
    """
    return E.tanh(input)


def sigmoid(input: Tensor) -> Tensor:
    """Elementwise logistic function (``torch.nn.functional.sigmoid``: no ``out=``).

    >>> import retrograd as rg
    >>> rg.nn.functional.sigmoid(rg.tensor([0.0]))
    tensor([0.5000])
    """
    return E.sigmoid(input)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """``max(0, x) + w * min(0, x)``; ``weight`` has 1 or C (channel dim 1) entries.

    >>> import retrograd as rg
    >>> rg.nn.functional.prelu(rg.tensor([-2.0, 3.0]), rg.tensor([0.25])).tolist()
    [-0.5, 3.0]
    """
    w = weight
    n = w._data.size
    if n != 1:
        if input._data.ndim < 2 or input._data.shape[1] != n:
            if not (input._data.ndim == 1 and input._data.shape[0] == n):
                raise RuntimeError(
                    "Mismatch of parameter numbers and input channel size. Found parameter numbers "
                    f"= {n} and channel size = "
                    f"{input._data.shape[1] if input._data.ndim > 1 else input._data.shape[0]}."
                )
        if input._data.ndim >= 2:
            w = w.reshape(n, *([1] * (input._data.ndim - 2)))
    else:
        w = w.reshape(())
    return E.where(input > 0, input, input * w)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """Gated linear unit: ``a * sigmoid(b)`` with ``a, b`` the halves of ``input`` on ``dim``."""
    size = input._data.shape[dim]
    if size % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim} is size {size}")
    a, b = input.chunk(2, dim)
    return a * E.sigmoid(b)


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """``x if x > threshold else value``."""
    return E.where(input > threshold, input, value)


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    return E.where((input > lambd) | (input < -lambd), input, 0.0)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    return E.where(input > lambd, input - lambd, E.where(input < -lambd, input + lambd, 0.0))


def rrelu(
    input: Tensor,
    lower: float = 1.0 / 8,
    upper: float = 1.0 / 3,
    training: bool = False,
    inplace: bool = False,
) -> Tensor:
    """Randomised leaky ReLU: a uniform slope in [lower, upper] per element while training,
    the mean slope otherwise."""
    if not training:
        return E.leaky_relu(input, (lower + upper) / 2)
    from ...random import _rng

    a = _rng(None).uniform(lower, upper, input._data.shape).astype(input._data.dtype)
    return E.where(input >= 0, input, input * Tensor._make(a))


def gumbel_softmax(
    logits: Tensor, tau: float = 1.0, hard: bool = False, eps: float = 1e-10, dim: int = -1
) -> Tensor:
    """Samples from the Gumbel-softmax distribution (straight-through when ``hard``)."""
    from ...random import _rng

    g = -Tensor._make(
        _rng(None).exponential(size=logits._data.shape).astype(logits._data.dtype)
    ).log()
    y = softmax((logits + g) / tau, dim)
    if not hard:
        return y
    idx = y.argmax(dim, keepdim=True)
    hard_y = Tensor._make(__import__("numpy").zeros_like(y._data))
    from ...ops.indexing import scatter

    hard_y = scatter(hard_y, dim, idx, 1.0)
    return hard_y - y.detach() + y


def _inplace_version(fn):
    def op(input, *args, **kwargs):
        from ...autograd.grad_mode import no_grad  # noqa: F401

        out = fn(input, *args, **kwargs)
        input.copy_(out) if not input.requires_grad else None
        return out if input.requires_grad else input

    op.__name__ = fn.__name__ + "_"
    op.__doc__ = f"In-place form of ``{fn.__name__}`` (out of place when the input needs grad)."
    return op


relu_ = _inplace_version(E.relu)
elu_ = _inplace_version(E.elu)
leaky_relu_ = _inplace_version(E.leaky_relu)
hardtanh_ = _inplace_version(E.hardtanh)
threshold_ = _inplace_version(threshold)
celu_ = _inplace_version(E.celu)
selu_ = _inplace_version(E.selu)
rrelu_ = _inplace_version(rrelu)
_ = log_softmax

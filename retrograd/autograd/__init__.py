"""Reverse-mode automatic differentiation: ``backward``, ``grad``, ``Function``, grad modes,
anomaly detection and finite-difference checks."""

from __future__ import annotations

import numpy as np

from . import grad_mode
from .anomaly import detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from .engine import run_backward
from .function import Function, FunctionCtx, once_differentiable
from .grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .node import Node


def _seq(x):
    if x is None:
        return None
    from ..tensor import Tensor

    return [x] if isinstance(x, Tensor | np.ndarray) else list(x)


def _make_grads(outputs, grad_outputs):
    from ..ops._util import ShapeError
    from ..tensor import Tensor

    grads = []
    for i, out in enumerate(outputs):
        g = grad_outputs[i] if grad_outputs is not None and i < len(grad_outputs) else None
        if g is None:
            if out._data.size != 1:
                raise RuntimeError(
                    "grad can be implicitly created only for scalar outputs; got an output of "
                    f"shape {tuple(out._data.shape)}. Call .sum() first or pass gradient= (a "
                    "tensor of the output's shape)."
                )
            g = Tensor._make(np.ones(out._data.shape, out._data.dtype))
        else:
            if not isinstance(g, Tensor):
                g = Tensor._make(np.asarray(g, dtype=out._data.dtype))
            if g._data.shape != out._data.shape:
                raise ShapeError(
                    f"Mismatch in shape: grad_output[{i}] has a shape of {tuple(g._data.shape)} "
                    f"and output[{i}] has a shape of {tuple(out._data.shape)}."
                )
            if g._data.dtype != out._data.dtype:
                g = Tensor._make(g._data.astype(out._data.dtype))
        grads.append(g)
    return grads


def _check_outputs(outputs):
    for out in outputs:
        if not out._requires_grad:
            raise RuntimeError(
                "element 0 of tensors does not require grad and does not have a grad_fn "
                "(was it computed under no_grad, or from tensors without requires_grad=True?)"
            )


def backward(
    tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None
) -> None:
    """Accumulate the gradients of ``tensors`` into the ``.grad`` of the graph's leaves."""
    outputs = _seq(tensors)
    _check_outputs(outputs)
    grads = _make_grads(outputs, _seq(grad_tensors))
    if retain_graph is None:
        retain_graph = create_graph
    run_backward(outputs, grads, retain_graph, create_graph, inputs=_seq(inputs))


def grad(
    outputs,
    inputs,
    grad_outputs=None,
    retain_graph=None,
    create_graph=False,
    only_inputs=True,
    allow_unused=None,
    is_grads_batched=False,
    materialize_grads=False,
):
    """Gradients of ``outputs`` with respect to ``inputs``, returned (``.grad`` untouched).

    >>> import retrograd as rg
    >>> x = rg.tensor(3.0, requires_grad=True)
    >>> rg.autograd.grad(x ** 2, x)
    (tensor(6.),)
    """
    from ..tensor import Tensor

    outs = _seq(outputs)
    ins = _seq(inputs)
    for t in ins:
        if not isinstance(t, Tensor):
            raise TypeError(f"grad(): inputs must be Tensors, got {type(t).__name__}")
        if not t._requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    _check_outputs(outs)
    grads = _make_grads(outs, _seq(grad_outputs))
    if retain_graph is None:
        retain_graph = create_graph
    captured = run_backward(outs, grads, retain_graph, create_graph, inputs=ins, capture=True)
    if allow_unused is None:
        allow_unused = materialize_grads
    result = []
    for i, t in enumerate(ins):
        key = id(t) if t.grad_fn is None else (t.grad_fn, t._out_idx)
        g = captured.get(key)
        if g is None:
            if materialize_grads:
                g = Tensor._make(np.zeros(t._data.shape, t._data.dtype))
            elif not allow_unused:
                raise RuntimeError(
                    f"One of the differentiated Tensors (input {i}, shape {tuple(t._data.shape)}) "
                    "appears to not have been used in the graph. Set allow_unused=True if this "
                    "is the desired behavior."
                )
        elif not create_graph:
            g = g.detach()
        result.append(g)
    return tuple(result)


from .gradcheck import gradcheck, gradgradcheck  # noqa: E402

__all__ = [
    "Function",
    "FunctionCtx",
    "Node",
    "backward",
    "detect_anomaly",
    "enable_grad",
    "grad",
    "grad_mode",
    "gradcheck",
    "gradgradcheck",
    "inference_mode",
    "is_anomaly_enabled",
    "is_grad_enabled",
    "no_grad",
    "once_differentiable",
    "set_detect_anomaly",
    "set_grad_enabled",
]

"""Gradient checkpointing: trade compute for memory.

The forward of a checkpointed segment runs under ``no_grad`` and keeps only its inputs; the
backward reruns the segment with grad enabled (restoring the RNG state, so dropout masks
match) and backpropagates through the recomputed graph. Parameters used inside the segment
receive their gradients from that inner backward.
"""

from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..autograd.grad_mode import enable_grad
from ..tensor import Tensor

__all__ = ["checkpoint", "checkpoint_sequential"]


def _rng_state():
    from ..random import default_generator

    return default_generator.rng.bit_generator.state


def _set_rng_state(state):
    from ..random import default_generator

    default_generator.rng.bit_generator.state = state


class _Checkpoint(Function):
    @staticmethod
    def forward(ctx, run_function, preserve_rng_state, kwargs, dummy, *args):
        ctx.run_function = run_function
        ctx.kwargs = kwargs
        ctx.rng = _rng_state() if preserve_rng_state else None
        ctx.inputs = args
        ctx.save_for_backward(*[a for a in args if isinstance(a, Tensor)])
        return run_function(*args, **kwargs)

    @staticmethod
    def backward(ctx, *grads):
        from ..autograd import backward as ag_backward

        saved = iter(ctx.saved_tensors)
        args = []
        for a in ctx.inputs:
            if isinstance(a, Tensor):
                s = next(saved)
                d = s.detach()
                d.requires_grad_(s.requires_grad)
                args.append(d)
            else:
                args.append(a)
        if ctx.rng is not None:
            current = _rng_state()
            _set_rng_state(ctx.rng)
        try:
            with enable_grad():
                outs = ctx.run_function(*args, **ctx.kwargs)
        finally:
            if ctx.rng is not None:
                _set_rng_state(current)
        outs = outs if isinstance(outs, tuple) else (outs,)
        roots, gs = [], []
        for o, g in zip(outs, grads):
            if isinstance(o, Tensor) and o.requires_grad and g is not None:
                roots.append(o)
                gs.append(g)
        if roots:
            ag_backward(roots, gs)
        res = [None, None, None, None]
        for a in args:
            res.append(a.grad if isinstance(a, Tensor) else None)
        return tuple(res)


def checkpoint(
    function,
    *args,
    use_reentrant: bool | None = None,
    context_fn=None,
    determinism_check: str = "default",
    debug: bool = False,
    preserve_rng_state: bool = True,
    **kwargs,
):
    """Run ``function(*args, **kwargs)`` without storing its intermediate activations; they
    are recomputed during backward.

    >>> import retrograd as rg
    >>> from retrograd.utils.checkpoint import checkpoint
    >>> fc = rg.nn.Linear(3, 3)
    >>> x = rg.randn(2, 3, requires_grad=True)
    >>> checkpoint(fc, x, use_reentrant=False).sum().backward()
    >>> x.grad.shape
    retrograd.Size([2, 3])
    """
    # a grad-requiring dummy input makes the segment part of the graph even when no input
    # needs grad (the parameters inside it still do)
    dummy = Tensor._make(np.zeros((), np.float32), True)
    return _Checkpoint.apply(function, preserve_rng_state, kwargs, dummy, *args)


def checkpoint_sequential(
    functions, segments: int, input, use_reentrant: bool | None = None, **kwargs
):
    """Split a Sequential (or a list of modules) into ``segments`` chunks and checkpoint every
    chunk but the last."""
    from ..nn.modules.container import Sequential

    if isinstance(functions, Sequential):
        functions = list(functions.children())
    functions = list(functions)

    def run(start, end):
        def f(x):
            for j in range(start, end + 1):
                x = functions[j](x)
            return x

        return f

    n = len(functions)
    size = n // segments
    end = -1
    for start in range(0, size * (segments - 1), size):
        end = start + size - 1
        input = checkpoint(run(start, end), input, use_reentrant=use_reentrant, **kwargs)
    return run(end + 1, n - 1)(input)

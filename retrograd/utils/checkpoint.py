"""Gradient checkpointing: trade compute for memory.

The forward of a checkpointed segment runs under ``no_grad`` and keeps only its inputs; the
backward reruns the segment with grad enabled (restoring the RNG state, so dropout masks
match) and differentiates the recomputed graph.

The parameters of the segment are found when it is a Module, a bound method of one, or a
function closing over Modules (as ``checkpoint_sequential``'s segments do): they become
inputs of the checkpoint node, so ``autograd.grad``, ``backward(inputs=...)``, tensor hooks
and ``create_graph=True`` all see them. Any other grad-requiring leaf used inside the segment
(e.g. a bare tensor captured by a lambda) gets its gradient accumulated into ``.grad`` during
the recomputation, as PyTorch's reentrant variant does.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..autograd.function import Function
from ..autograd.grad_mode import STATE, enable_grad
from ..tensor import Tensor

__all__ = ["checkpoint", "checkpoint_sequential", "noop_context_fn"]


def noop_context_fn():
    """The default ``context_fn``: no context around the forward or the recomputation."""
    return contextlib.nullcontext(), contextlib.nullcontext()


_N_CONST = 5  # run_function, preserve_rng_state, kwargs, n_args, dummy


def _rng_state():
    from ..random import default_generator

    return default_generator.rng.bit_generator.state


def _set_rng_state(state):
    from ..random import default_generator

    default_generator.rng.bit_generator.state = state


def _params_of(fn) -> list:
    """Grad-requiring parameters of the Modules that ``fn`` is, is bound to, or closes over."""
    from ..nn.modules.module import Module

    mods = []
    if isinstance(fn, Module):
        mods.append(fn)
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, Module):
        mods.append(owner)
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            v = cell.cell_contents
        except ValueError:  # empty cell
            continue
        if isinstance(v, Module):
            mods.append(v)
        elif isinstance(v, list | tuple):
            mods.extend(m for m in v if isinstance(m, Module))
    seen: set = set()
    out = []
    for m in mods:
        for p in m.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def _graph_leaves(roots) -> list:
    """Grad-requiring leaves reachable from ``roots``."""
    from ..autograd.node import Node

    stack = [r.grad_fn for r in roots if r.grad_fn is not None]
    seen: set = set()
    leaves: dict = {}
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        for e in n.next or ():
            if e is None:
                continue
            t = e[0]
            if isinstance(t, Node):
                stack.append(t)
            else:
                leaves[id(t)] = t
    return list(leaves.values())


class _Checkpoint(Function):
    @staticmethod
    def forward(ctx, run_function, preserve_rng_state, kwargs_ctx, n_args, dummy, *rest):
        args = rest[:n_args]
        kwargs, context_fn = kwargs_ctx
        forward_ctx, ctx.recompute_ctx = context_fn()
        ctx.run_function = run_function
        ctx.kwargs = kwargs
        ctx.rng = _rng_state() if preserve_rng_state else None
        ctx.inputs = args
        ctx.params = rest[n_args:]
        ctx.save_for_backward(*[a for a in args if isinstance(a, Tensor)])
        with forward_ctx:
            return run_function(*args, **kwargs)

    @staticmethod
    def backward(ctx, *grads):
        from ..autograd import grad as ag_grad

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
        create_graph = STATE.enabled  # the engine enables grad only under create_graph
        try:
            with enable_grad(), ctx.recompute_ctx:
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
        diff_args = [a for a in args if isinstance(a, Tensor) and a.requires_grad]
        params = list(ctx.params)
        known = {id(t) for t in diff_args} | {id(p) for p in params}
        extra = [t for t in _graph_leaves(roots) if id(t) not in known and t.requires_grad]
        targets = diff_args + params + extra
        res: dict = {}
        if roots and targets:
            got = ag_grad(roots, targets, gs, allow_unused=True, create_graph=create_graph)
            res = {id(t): g for t, g in zip(targets, got)}
        for t in extra:  # leaves the node has no edge to: accumulate like .backward()
            g = res.get(id(t))
            if g is not None:
                t.grad = g if t.grad is None else t.grad + g
        out = [None] * _N_CONST
        out += [res.get(id(a)) if isinstance(a, Tensor) else None for a in args]
        out += [res.get(id(p)) for p in params]
        return tuple(out)


def checkpoint(
    function,
    *args,
    use_reentrant: bool | None = None,
    context_fn=noop_context_fn,
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
    # a grad-requiring dummy input makes the segment part of the graph even when neither the
    # inputs nor any discovered parameter needs grad (a captured leaf still might)
    dummy = Tensor._make(np.zeros((), np.float32), True)
    params = _params_of(function)
    if context_fn is None:
        context_fn = noop_context_fn
    return _Checkpoint.apply(
        function, preserve_rng_state, (kwargs, context_fn), len(args), dummy, *args, *params
    )


def checkpoint_sequential(
    functions, segments: int, input, use_reentrant: bool | None = None, **kwargs
):
    """Split a Sequential (or a list of modules) into ``segments`` chunks and checkpoint every
    chunk but the last."""
    from ..nn.modules.container import Sequential

    if isinstance(functions, Sequential):
        functions = list(functions.children())
    functions = list(functions)

    def run(seg):
        def f(x):
            for fn in seg:
                x = fn(x)
            return x

        return f

    n = len(functions)
    size = n // segments
    end = -1
    for start in range(0, size * (segments - 1), size):
        end = start + size - 1
        input = checkpoint(
            run(functions[start : end + 1]), input, use_reentrant=use_reentrant, **kwargs
        )
    return run(functions[end + 1 :])(input)

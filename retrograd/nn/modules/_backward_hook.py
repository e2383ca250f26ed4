"""Full backward hooks for modules: identity Functions around the inputs and outputs
collect grad_output, then grad_input, and call the hooks."""

from __future__ import annotations

from ...autograd.function import Function
from ...tensor import Tensor


class _Identity(Function):
    @staticmethod
    def forward(ctx, state, which, *tensors):
        ctx.state, ctx.which = state, which
        return tuple(Tensor._make(t._data) for t in tensors)

    @staticmethod
    def backward(ctx, *grads):
        grads = ctx.state.on_grads(ctx.which, grads)
        return (None, None, *grads)


class BackwardHookState:
    def __init__(self, module, hooks):
        self.module = module
        self.hooks = hooks
        self.grad_output = None
        self.n_inputs = 0
        self.inputs_wrapped = False

    def wrap_inputs(self, args):
        idx = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
        self.n_inputs = len(args)
        if not idx:
            return args
        self.inputs_wrapped = True
        out = _Identity.apply(self, "in", *[args[i] for i in idx])
        out = out if isinstance(out, tuple) else (out,)
        args = list(args)
        for j, i in enumerate(idx):
            args[i] = out[j]
        self.in_idx = idx
        return tuple(args)

    def wrap_outputs(self, out):
        single = isinstance(out, Tensor)
        outs = (out,) if single else tuple(out) if isinstance(out, tuple | list) else (out,)
        idx = [i for i, o in enumerate(outs) if isinstance(o, Tensor) and o.requires_grad]
        if not idx:
            return out
        wrapped = _Identity.apply(self, "out", *[outs[i] for i in idx])
        wrapped = wrapped if isinstance(wrapped, tuple) else (wrapped,)
        res = list(outs)
        for j, i in enumerate(idx):
            res[i] = wrapped[j]
        return res[0] if single else type(out)(res) if isinstance(out, tuple | list) else res[0]

    def on_grads(self, which, grads):
        if which == "out":
            self.grad_output = tuple(grads)
            if not self.inputs_wrapped:
                self._call((None,) * max(self.n_inputs, 1))
            return grads
        grad_input = [None] * self.n_inputs
        for j, i in enumerate(self.in_idx):
            grad_input[i] = grads[j]
        new = self._call(tuple(grad_input))
        if new is not None:
            return tuple(new[i] for i in self.in_idx)
        return grads

    def _call(self, grad_input):
        result = None
        for h in self.hooks:
            r = h(self.module, grad_input, self.grad_output)
            if r is not None:
                grad_input = tuple(r)
                result = grad_input
        return result

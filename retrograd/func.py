"""Function transforms on top of the engine: grad, grad_and_value, vjp, jvp, jacrev, jacfwd,
hessian (``torch.func``'s signatures)."""

from __future__ import annotations

"""Finite-difference checks of gradients (``gradcheck``) and of their gradients
(``gradgradcheck``), with PyTorch's signatures and float64 defaults."""

from __future__ import annotations

import numpy as np


class GradcheckError(RuntimeError):
    pass


def _tensors(inputs):
    from ..tensor import Tensor

    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    return tuple(inputs)


def _outputs(fn, inputs):
    from ..tensor import Tensor

    out = fn(*inputs)
    outs = (out,) if isinstance(out, Tensor) else tuple(out)
    return [o for o in outs if isinstance(o, Tensor)]


def _numerical_jacobian(fn, inputs, i, eps):
    """J[k, j] = d out_k / d in_j by central differences, per output."""

    x = inputs[i]
    saved = x._data
    if not saved.flags.c_contiguous or not saved.flags.writeable:
        # perturb a contiguous copy: reshape(-1) of a strided array would be a copy and the
        # perturbations would never reach fn (a silently zero Jacobian)
        x._data = np.array(saved, order="C")
    try:
        return _central_differences(fn, inputs, x, eps)
    finally:
        x._data = saved


def _central_differences(fn, inputs, x, eps):
    from .grad_mode import no_grad

    flat = x._data.reshape(-1)
    with no_grad():
        outs0 = _outputs(fn, inputs)
    jac = [np.zeros((o._data.size, flat.size)) for o in outs0]
    for j in range(flat.size):
        orig = flat[j]
        flat[j] = orig + eps
        with no_grad():
            plus = [o._data.astype(np.float64).reshape(-1).copy() for o in _outputs(fn, inputs)]
        flat[j] = orig - eps
        with no_grad():
            minus = [o._data.astype(np.float64).reshape(-1).copy() for o in _outputs(fn, inputs)]
        flat[j] = orig
        for k in range(len(jac)):
            jac[k][:, j] = (plus[k] - minus[k]) / (2 * eps)
    return jac


def _analytical_jacobian(fn, inputs, diff_idx):
    from ..tensor import Tensor
    from . import grad as autograd_grad

    outs = _outputs(fn, inputs)
    jacs = {i: [np.zeros((o._data.size, inputs[i]._data.size)) for o in outs] for i in diff_idx}
    diff_inputs = [inputs[i] for i in diff_idx]
    for k, o in enumerate(outs):
        if not o.requires_grad:
            continue
        for r in range(o._data.size):
            go = np.zeros(o._data.size, o._data.dtype)
            go[r] = 1
            gs = autograd_grad(
                o,
                diff_inputs,
                Tensor._make(go.reshape(o._data.shape)),
                retain_graph=True,
                allow_unused=True,
            )
            for i, g in zip(diff_idx, gs):
                if g is not None:
                    jacs[i][k][r, :] = g._data.reshape(-1)
    return jacs


def gradcheck(
    func,
    inputs,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    nondet_tol: float = 0.0,
    check_undefined_grad: bool = True,
    fast_mode: bool = False,
    **_ignored,
) -> bool:
    """Compare the analytical Jacobian of ``func`` with central finite differences.

    Inputs that require grad should be float64: in float32 the differences are dominated by
    rounding (use eps ~1e-3 and much looser tolerances there).

    >>> import retrograd as rg
    >>> x = rg.randn(3, dtype=rg.float64, requires_grad=True)
    >>> rg.autograd.gradcheck(lambda t: (t * t).sin(), (x,))
    True
    """
    inputs = _tensors(inputs)
    diff_idx = [i for i, t in enumerate(inputs) if hasattr(t, "requires_grad") and t.requires_grad]
    if not diff_idx:
        raise ValueError("gradcheck expects at least one input tensor to require gradient")
    for i in diff_idx:
        if inputs[i]._data.dtype != np.float64:
            import warnings

            warnings.warn(
                f"Input #{i} requires gradient and is not a double precision floating point. "
                "gradcheck's tolerances are designed for float64.",
                UserWarning,
                stacklevel=2,
            )
    analytical = _analytical_jacobian(func, inputs, diff_idx)
    for i in diff_idx:
        numerical = _numerical_jacobian(func, inputs, i, eps)
        for k, (a, n) in enumerate(zip(analytical[i], numerical)):
            if not np.allclose(a, n, rtol=rtol, atol=atol, equal_nan=True):
                diff = np.abs(a - n)
                worst = np.unravel_index(np.nanargmax(diff), diff.shape) if diff.size else ()
                msg = (
                    f"Jacobian mismatch for output {k} with respect to input {i},\n"
                    f"numerical:{n}\nanalytical:{a}\nlargest difference at {worst}: "
                    f"numerical {n[worst] if diff.size else None}, analytical "
                    f"{a[worst] if diff.size else None}"
                )
                if raise_exception:
                    raise GradcheckError(msg)
                return False
    return True


def gradgradcheck(
    func,
    inputs,
    grad_outputs=None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    gen_non_contig_grad_outputs: bool = False,
    raise_exception: bool = True,
    **_ignored,
) -> bool:
    """Check second derivatives: gradcheck of the map (inputs, v) -> vjp(func)(v)."""
    from ..tensor import Tensor
    from . import grad as autograd_grad

    inputs = _tensors(inputs)
    diff_idx = [i for i, t in enumerate(inputs) if hasattr(t, "requires_grad") and t.requires_grad]
    outs = _outputs(func, inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = tuple(
            Tensor._make(rng.standard_normal(o._data.shape).astype(o._data.dtype)).requires_grad_(
                True
            )
            for o in outs
        )
    else:
        grad_outputs = _tensors(grad_outputs)
    n_in = len(inputs)

    def vjp_fn(*args):
        from .grad_mode import enable_grad

        xs, vs = args[:n_in], args[n_in:]
        # the numerical Jacobian calls this under no_grad; the vjp itself needs a graph
        with enable_grad():
            ys = _outputs(func, xs)
            diff = [xs[i] for i in diff_idx]
            pairs = [(y, v) for y, v in zip(ys, vs) if y.requires_grad]
            if not pairs:
                return ()
            gs = autograd_grad(
                [y for y, _ in pairs],
                diff,
                [v for _, v in pairs],
                create_graph=True,
                allow_unused=True,
            )
        return tuple(g for g in gs if g is not None)

    return gradcheck(
        vjp_fn,
        tuple(inputs) + tuple(grad_outputs),
        eps=eps,
        atol=atol,
        rtol=rtol,
        raise_exception=raise_exception,
    )

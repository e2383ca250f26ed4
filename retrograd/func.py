"""Function transforms on top of the engine: ``grad``, ``grad_and_value``, ``vjp``, ``jvp``,
``jacrev``, ``jacfwd``, ``hessian`` and a loop-based ``vmap`` (``torch.func``'s signatures).

Each transform differentiates with ``create_graph=True`` while nested inside another, so
they compose (``hessian = jacfwd(jacrev(f))``); results of the outermost one are detached.
"""

from __future__ import annotations

import functools

import numpy as np

from .autograd import grad as _autograd_grad
from .autograd.grad_mode import STATE, enable_grad
from .autograd.node import apply
from .ops.movement import Reshape
from .tensor import Tensor

_depth = [0]


def _track(x: Tensor) -> Tensor:
    """A fresh graph handle on ``x``: a new leaf, or (inside an outer transform) an alias
    node so the inner derivative is taken with respect to this use of ``x`` only."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a Tensor argument, got {type(x).__name__}")
    if x._requires_grad and STATE.enabled:
        return apply(Reshape, (x,), {"shape": x._data.shape})
    if x._data.dtype.kind != "f":
        raise RuntimeError(f"only floating point inputs can be differentiated; got {x.dtype.name}")
    return Tensor._make(x._data).requires_grad_(True)


def _flat(tree):
    if isinstance(tree, Tensor):
        return [tree], lambda leaves: leaves[0]
    if isinstance(tree, tuple | list):
        parts = [_flat(t) for t in tree]
        sizes = [len(p[0]) for p in parts]

        def unflat(leaves, parts=parts, sizes=sizes, kind=type(tree)):  # noqa: B008
            out, i = [], 0
            for (_, uf), n in zip(parts, sizes):
                out.append(uf(leaves[i : i + n]))
                i += n
            return kind(out)

        return [x for p in parts for x in p[0]], unflat
    if isinstance(tree, dict):
        keys = list(tree)
        leaves, unf = _flat([tree[k] for k in keys])
        return leaves, lambda ls: dict(zip(keys, unf(ls)))
    raise TypeError(
        f"unsupported argument type {type(tree).__name__}: use Tensors, tuples, lists or dicts"
    )


def _finish(x):
    if _depth[0] == 0 and isinstance(x, Tensor):
        return x.detach()
    return x


def _zeros_like(x):
    return Tensor._make(np.zeros(x._data.shape, x._data.dtype))


def grad_and_value(func, argnums=0, has_aux: bool = False):
    """Like ``grad`` but returns ``(gradient, value)`` (``((gradient, (value, aux)))`` with aux).

    >>> import retrograd as rg
    >>> g, v = rg.func.grad_and_value(lambda x: (x ** 2).sum())(rg.tensor([1.0, 2.0]))
    >>> g, v
    (tensor([2., 4.]), tensor(5.))
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
        for n in nums:
            if n >= len(args) or n < -len(args):
                raise RuntimeError(f"Got argnums={argnums} but only {len(args)} positional inputs")
        args = list(args)
        tracked = {}
        with enable_grad():
            _depth[0] += 1
            try:
                for n in nums:
                    leaves, unf = _flat(args[n])
                    new = [_track(x) for x in leaves]
                    tracked[n] = (new, unf)
                    args[n] = unf(new)
                out = func(*args, **kwargs)
                value, aux = out if has_aux else (out, None)
                if has_aux and not (isinstance(out, tuple) and len(out) == 2):
                    raise RuntimeError(
                        "grad_and_value(f)(*args): output of function f should be a tuple: "
                        "(output, aux) if has_aux is True"
                    )
                if not isinstance(value, Tensor) or value._data.size != 1:
                    raise RuntimeError(
                        "grad_and_value(f)(*args): Expected f(*args) to return a scalar Tensor, "
                        f"got {getattr(value, 'shape', type(value).__name__)}"
                    )
                all_in = [x for n in nums for x in tracked[n][0]]
                if value._requires_grad:
                    gs = _autograd_grad(value, all_in, create_graph=True, allow_unused=True)
                else:
                    gs = [None] * len(all_in)
            finally:
                _depth[0] -= 1
        gs = [_finish(g) if g is not None else _zeros_like(x) for g, x in zip(gs, all_in)]
        results, i = [], 0
        for n in nums:
            new, unf = tracked[n]
            results.append(unf(gs[i : i + len(new)]))
            i += len(new)
        g = results[0] if isinstance(argnums, int) else tuple(results)
        value = _finish(value)
        if has_aux:
            aux = _map(aux, _finish)
            return g, (value, aux)
        return g, value

    return wrapper


def _map(tree, fn):
    if isinstance(tree, Tensor):
        return fn(tree)
    if isinstance(tree, tuple | list):
        return type(tree)(_map(t, fn) for t in tree)
    if isinstance(tree, dict):
        return {k: _map(v, fn) for k, v in tree.items()}
    return tree


def grad(func, argnums=0, has_aux: bool = False):
    """The gradient of a scalar function with respect to argument(s) ``argnums``.

    >>> import retrograd as rg
    >>> rg.func.grad(lambda x: x.sin().sum())(rg.tensor([0.0]))
    tensor([1.])
    """
    gv = grad_and_value(func, argnums, has_aux)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        g, v = gv(*args, **kwargs)
        return (g, v[1]) if has_aux else g

    return wrapper


def vjp(func, *primals, has_aux: bool = False):
    """``(output, vjp_fn)``; ``vjp_fn(cotangents)`` returns one gradient per primal.

    >>> import retrograd as rg
    >>> out, fn = rg.func.vjp(lambda x: x * 3, rg.tensor([1.0, 2.0]))
    >>> fn(rg.ones(2))
    (tensor([3., 3.]),)
    """
    with enable_grad():
        _depth[0] += 1
        try:
            leaves = []
            args = []
            for p in primals:
                ls, unf = _flat(p)
                new = [_track(x) for x in ls]
                leaves.append(new)
                args.append(unf(new))
            out = func(*args)
        finally:
            _depth[0] -= 1
    value, aux = out if has_aux else (out, None)
    out_leaves, _ = _flat(value)
    flat_in = [x for ls in leaves for x in ls]

    def vjp_fn(cotangents, retain_graph=True, create_graph=None):
        cts, _ = _flat(cotangents)
        if len(cts) != len(out_leaves):
            raise RuntimeError(f"vjp: expected {len(out_leaves)} cotangents, got {len(cts)}")
        for c, o in zip(cts, out_leaves):
            if c.shape != o.shape:
                raise RuntimeError(
                    f"vjp: cotangent shape {tuple(c.shape)} does not match output shape "
                    f"{tuple(o.shape)}"
                )
        pairs = [(o, c) for o, c in zip(out_leaves, cts) if o._requires_grad]
        with enable_grad():
            _depth[0] += 1
            try:
                if pairs:
                    gs = _autograd_grad(
                        [o for o, _ in pairs],
                        flat_in,
                        [c for _, c in pairs],
                        retain_graph=True,
                        create_graph=True,
                        allow_unused=True,
                    )
                else:
                    gs = [None] * len(flat_in)
            finally:
                _depth[0] -= 1
        gs = [_finish(g) if g is not None else _zeros_like(x) for g, x in zip(gs, flat_in)]
        res, i = [], 0
        for p, ls in zip(primals, leaves):
            _, unf = _flat(p)
            res.append(unf(gs[i : i + len(ls)]))
            i += len(ls)
        return tuple(res)

    value = _map(value, _finish)
    if has_aux:
        return value, vjp_fn, _map(aux, _finish)
    return value, vjp_fn


def jvp(func, primals, tangents, *, strict: bool = False, has_aux: bool = False):
    """Forward-mode product ``(f(x), J(x) @ t)``, computed with two reverse passes
    (the vjp is linear in its cotangent, so differentiating it gives the jvp). With
    ``strict=True`` an output that does not depend on the primals raises instead of getting a
    zero tangent.

    >>> import retrograd as rg
    >>> rg.func.jvp(lambda x: x ** 2, (rg.tensor([3.0]),), (rg.tensor([1.0]),))
    (tensor([9.]), tensor([6.]))
    """
    primals = tuple(primals)
    tangents = tuple(tangents)
    if len(primals) != len(tangents):
        raise RuntimeError("jvp: Expected primals and tangents to have the same length")
    with enable_grad():
        _depth[0] += 1
        try:
            new = [_track(p) for p in primals]
            out = func(*new)
            value, aux = out if has_aux else (out, None)
            outs, unf = _flat(value)
            dummies = [
                Tensor._make(np.zeros(o._data.shape, o._data.dtype)).requires_grad_(True)
                for o in outs
            ]
            live = [(o, d) for o, d in zip(outs, dummies) if o._requires_grad]
            if live:
                gs = _autograd_grad(
                    [o for o, _ in live],
                    new,
                    [d for _, d in live],
                    create_graph=True,
                    allow_unused=True,
                )
            else:
                gs = [None] * len(new)
            pairs = [(g, t) for g, t in zip(gs, tangents) if g is not None and g._requires_grad]
            if pairs:
                jv = _autograd_grad(
                    [g for g, _ in pairs],
                    dummies,
                    [t for _, t in pairs],
                    create_graph=True,
                    allow_unused=True,
                )
            else:
                jv = [None] * len(dummies)
        finally:
            _depth[0] -= 1
    if strict and any(j is None for j in jv):
        raise RuntimeError(
            "jvp(f, primals, tangents, strict=True): The output of f is independent of the "
            "inputs. This is not allowed with strict=True."
        )
    jv = [_finish(j) if j is not None else _zeros_like(o) for j, o in zip(jv, outs)]
    res = (_map(value, _finish), unf(jv))
    return res + (_map(aux, _finish),) if has_aux else res


def _jac(func, argnums, has_aux, forward: bool):
    @functools.wraps(func)
    def wrapper(*args):
        nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
        out_full = func(*args)
        value, aux = out_full if has_aux else (out_full, None)
        single_out = isinstance(value, Tensor)
        outs, unf_out = _flat(value)
        per_arg = []
        for n in nums:
            x = args[n]

            def f_of(xn, n=n):
                a = list(args)
                a[n] = xn
                r = func(*a)
                r = r[0] if has_aux else r
                return r

            if forward:
                cols = []
                for j in range(x._data.size):
                    e = np.zeros(x._data.size, x._data.dtype)
                    e[j] = 1
                    _, t = jvp(f_of, (x,), (Tensor._make(e.reshape(x._data.shape)),))
                    cols.append(_flat(t)[0])
                jac = []
                for k, o in enumerate(outs):
                    col_k = [c[k].reshape(-1) for c in cols]
                    from .ops.movement import stack

                    m = (
                        stack(col_k, -1)
                        if col_k
                        else Tensor._make(np.zeros((o._data.size, 0), o._data.dtype))
                    )
                    jac.append(m.reshape(*o._data.shape, *x._data.shape))
            else:
                _, fn = vjp(f_of, x)
                jac = []
                for k, o in enumerate(outs):
                    rows = []
                    for r in range(o._data.size):
                        cts = []
                        for kk, oo in enumerate(outs):
                            c = np.zeros(oo._data.size, oo._data.dtype)
                            if kk == k:
                                c[r] = 1
                            cts.append(Tensor._make(c.reshape(oo._data.shape)))
                        (g,) = fn(unf_out(cts))
                        rows.append(g.reshape(-1))
                    from .ops.movement import stack

                    m = (
                        stack(rows, 0)
                        if rows
                        else Tensor._make(np.zeros((0, x._data.size), x._data.dtype))
                    )
                    jac.append(m.reshape(*o._data.shape, *x._data.shape))
            per_arg.append(jac[0] if single_out else unf_out(jac))
        result = per_arg[0] if isinstance(argnums, int) else tuple(per_arg)
        if has_aux:
            return result, _map(aux, _finish)
        return result

    return wrapper


def jacrev(func, argnums=0, *, has_aux: bool = False, chunk_size=None):
    """Jacobian by reverse mode (one vjp per output element); shape ``out.shape + in.shape``.

    >>> import retrograd as rg
    >>> rg.func.jacrev(lambda x: x * 2)(rg.ones(2))
    tensor([[2., 0.],
            [0., 2.]])
    """
    return _jac(func, argnums, has_aux, forward=False)


def jacfwd(func, argnums=0, has_aux: bool = False, *, randomness="error"):
    """Jacobian by forward mode (one jvp per input element)."""
    return _jac(func, argnums, has_aux, forward=True)


def hessian(func, argnums=0):
    """Second derivatives, ``jacfwd(jacrev(func))``.

    >>> import retrograd as rg
    >>> rg.func.hessian(lambda x: (x ** 3).sum())(rg.tensor([1.0, 2.0]))
    tensor([[ 6.,  0.],
            [ 0., 12.]])
    """
    return jacfwd(jacrev(func, argnums), argnums)


def vmap(func, in_dims=0, out_dims=0, randomness="error", *, chunk_size=None):
    """Map ``func`` over a batch dimension (a Python loop over the batch, then a stack)."""
    from .ops.movement import stack

    @functools.wraps(func)
    def wrapper(*args):
        dims_ = in_dims if isinstance(in_dims, tuple | list) else (in_dims,) * len(args)
        sizes = {
            a._data.shape[d] for a, d in zip(args, dims_) if d is not None and isinstance(a, Tensor)
        }
        if len(sizes) != 1:
            raise ValueError(
                "vmap: Expected all tensors to have the same size in the mapped dimension, "
                f"got sizes {sorted(sizes)}"
            )
        n = sizes.pop()
        outs = []
        for i in range(n):
            a = [
                x[(slice(None),) * d + (i,)] if d is not None and isinstance(x, Tensor) else x
                for x, d in zip(args, dims_)
            ]
            outs.append(func(*a))
        if isinstance(outs[0], Tensor):
            return stack(outs, out_dims)
        return tuple(stack([o[k] for o in outs], out_dims) for k in range(len(outs[0])))

    return wrapper


def functional_call(
    module,
    parameter_and_buffer_dicts,
    args=None,
    kwargs=None,
    *,
    tie_weights: bool = True,
    strict: bool = False,
):
    """Call ``module`` with the given tensors standing in for its parameters and buffers.

    With ``tie_weights`` (the default) a tensor given for one name of a tied parameter (the
    same Parameter reachable under several names) replaces it under every name; ``strict``
    requires the dicts to name exactly the module's parameters and buffers.

    >>> import retrograd as rg
    >>> lin = rg.nn.Linear(2, 1, bias=False)
    >>> rg.func.functional_call(lin, {"weight": rg.ones(1, 2)}, (rg.tensor([[1.0, 2.0]]),))
    tensor([[3.]])
    """
    dicts = parameter_and_buffer_dicts
    if isinstance(dicts, tuple | list):
        merged = {}
        for d in dicts:
            for k in d:
                if k in merged:
                    raise ValueError(f"functional_call: {k} appeared in multiple dictionaries")
            merged.update(d)
        dicts = merged
    # every (store, attr) slot per parameter/buffer object, to find tied aliases
    slots: dict = {}
    names: dict = {}
    for mod_name, mod in module.named_modules(remove_duplicate=False):
        for store in (mod._parameters, mod._buffers):
            for attr, obj in store.items():
                if obj is not None:
                    slots.setdefault(id(obj), []).append((store, attr))
                    names[f"{mod_name}.{attr}" if mod_name else attr] = obj
    if strict:
        missing = sorted(set(names) - set(dicts))
        unexpected = sorted(set(dicts) - set(names))
        if missing or unexpected:
            raise RuntimeError(
                f"Error(s) in reparametrizing for {type(module).__name__}: "
                f"Missing key(s): {missing}. Unexpected key(s): {unexpected}."
            )
    saved = []
    try:
        for name, value in dicts.items():
            mod_path, _, attr = name.rpartition(".")
            mod = module.get_submodule(mod_path)
            store = mod._parameters if attr in mod._parameters else mod._buffers
            targets = [(store, attr)]
            if tie_weights and store.get(attr) is not None:
                targets = slots.get(id(store[attr]), targets)
            for st, at in targets:
                saved.append((st, at, st[at]))
                st[at] = value
        args = () if args is None else args if isinstance(args, tuple) else (args,)
        return module(*args, **(kwargs or {}))
    finally:
        for store, attr, old in reversed(saved):
            store[attr] = old

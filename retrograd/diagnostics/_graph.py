"""Walking a recorded graph without running it: nodes in topological order, leaves, values.

Shared by :func:`retrograd.explain` and :func:`retrograd.viz.draw_graph`. Nothing here
changes the graph: saved tensors are read, never released, and no ``.grad`` is written.
"""

from __future__ import annotations

import numpy as np

from ..autograd.node import Node
from ..tensor import Tensor


class GraphTooLarge(ValueError):
    """A graph has more nodes than the caller's ``max_nodes`` cap."""


def is_node(x) -> bool:
    return isinstance(x, Node)


def collect(root: Tensor, max_nodes: int | None = None, what: str = "graph"):
    """Nodes reachable from ``root.grad_fn`` in topological order (root first) and the leaves.

    Returns ``(nodes, leaves)``; ``leaves`` are the tensors at the graph's edges that require
    grad, in first-seen order. Raises :class:`GraphTooLarge` when over ``max_nodes``.
    """
    fn = root.grad_fn
    if fn is None:
        return [], ([root] if root.requires_grad else [])
    # Dependency counts, as the engine computes them (iterative DFS, no recursion).
    deps = {fn: 0}
    stack = [fn]
    leaves: dict[int, Tensor] = {}
    while stack:
        n = stack.pop()
        for e in n.next:
            if e is None:
                continue
            t = e[0]
            if isinstance(t, Node):
                if t in deps:
                    deps[t] += 1
                else:
                    deps[t] = 1
                    stack.append(t)
                    if max_nodes is not None and len(deps) > max_nodes:
                        raise GraphTooLarge(len(deps))
            elif id(t) not in leaves:
                leaves[id(t)] = t
    # Kahn's order from the root: a node comes after every node that consumes it.
    order = []
    indeg = dict(deps)
    ready = [fn]
    while ready:
        n = ready.pop()
        order.append(n)
        for e in n.next:
            if e is not None and isinstance(e[0], Node):
                indeg[e[0]] -= 1
                if indeg[e[0]] == 0:
                    ready.append(e[0])
    return order, list(leaves.values())


def count_nodes(root: Tensor, limit: int) -> int:
    """Number of nodes reachable from ``root`` (stops counting at ``limit + 1``)."""
    try:
        nodes, _ = collect(root, max_nodes=limit)
    except GraphTooLarge:
        return limit + 1
    return len(nodes)


def _param_forward(node, arrays):
    """Re-run a node's forward on fresh state (the recorded node is never touched)."""
    name = type(node).__name__
    fresh = type(node)()
    if name == "PowScalar":
        return fresh.forward(arrays[0], node.p)
    if name == "Sum":
        return arrays[0].sum(axis=node.axes, keepdims=node.keepdim)
    if name == "Mean":
        return arrays[0].mean(axis=node.axes, keepdims=node.keepdim)
    return fresh.forward(*arrays)


def node_values(root: Tensor, order, leaves):
    """Best-effort forward values: ``{(node, out_idx): ndarray}`` plus leaves by ``id``.

    The graph keeps only what each vjp needs, so values come from (1) the leaves, (2) saved
    outputs, (3) inputs saved by consumers, (4) re-running simple ops on known inputs.
    Values that cannot be recovered are simply absent.
    """
    vals: dict = {}
    for t in leaves:
        vals[id(t)] = t._data
    if root.grad_fn is not None:
        vals[(root.grad_fn, root._out_idx)] = root._data
    for n in order:
        if getattr(n, "out_data", None) is not None:
            vals.setdefault((n, 0), n.out_data)
        saved = n.saved or ()
        for i, t in zip(type(n).save_inputs, saved):
            e = n.next[i] if i < len(n.next) else None
            if e is not None and t is not None and isinstance(e[0], Node):
                vals.setdefault((e[0], e[1]), t._data)
    # Output shapes, from what each consumer recorded about its inputs.
    out_shapes = {}
    for n in order:
        for e, (shape, _) in zip(n.next, n.in_meta):
            if e is not None and isinstance(e[0], Node) and e[1] == 0:
                out_shapes[e[0]] = shape
    # Forward order = reverse topological order.
    for n in reversed(order):
        if (n, 0) in vals or n.n_outputs != 1:
            continue
        arrays = []
        for i, e in enumerate(n.next):
            a = edge_value(vals, e)
            if a is None and e is None:
                # A constant input: recover it from the node's saved inputs if kept.
                a = _saved_input(n, i)
            if a is None:
                break
            arrays.append(a)
        else:
            try:
                with np.errstate(all="ignore"):
                    out = _param_forward(n, arrays)
                vals[(n, 0)] = np.asarray(out)
            except Exception:  # noqa: BLE001 - ops with forward params we do not know
                shape = out_shapes.get(n)
                if shape is not None and len(arrays) == 1:
                    # Movement ops (view, reshape, expand): same elements, a known new shape.
                    a = arrays[0]
                    if a.size == int(np.prod(shape)):
                        vals[(n, 0)] = a.reshape(shape)
                    elif "Expand" in type(n).__name__:
                        try:
                            vals[(n, 0)] = np.broadcast_to(a, shape)
                        except ValueError:
                            pass
    return vals


def _saved_input(node, i):
    ins = type(node).save_inputs
    if i in ins and node.saved:
        t = node.saved[ins.index(i)]
        return None if t is None else t._data
    return None


def edge_value(vals, e):
    if e is None:
        return None
    t, idx = e
    if isinstance(t, Node):
        return vals.get((t, idx))
    return vals.get(id(t))


def input_value(vals, node, i):
    e = node.next[i]
    v = edge_value(vals, e)
    if v is None:
        v = _saved_input(node, i)
    return v


def fmt_array(a, precision: int = 4, max_elems: int = 8) -> str:
    """A compact rendering: a scalar as a number, a small array in full, a large one summarised."""
    if a is None:
        return "?"
    a = np.asarray(a)
    if a.dtype == object:  # e.g. the upstream gradients of a multi-output node
        return "(" + ", ".join(fmt_array(x, precision, max_elems) for x in a.ravel()) + ")"
    if a.size == 1:
        v = a.reshape(()).item()
        if isinstance(v, float):
            return f"{v:.{precision}g}"
        return str(v)
    if a.size <= max_elems:
        txt = np.array2string(a, precision=precision, separator=", ", max_line_width=10**6)
        return " ".join(txt.split())
    af = a.astype(np.float64) if a.dtype.kind in "fiub" else a
    return (
        f"<{a.dtype} {list(a.shape)} mean={af.mean():.{precision}g} "
        f"min={af.min():.{precision}g} max={af.max():.{precision}g}>"
    )


def param_names(params) -> dict[int, str]:
    """``id(tensor) -> name`` from a ``dict(model.named_parameters())`` or a Module."""
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):
        params = dict(params.named_parameters())
    return {id(p): n for n, p in dict(params).items()}

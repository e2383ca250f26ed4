"""The backward engine: an iterative walk of the graph in dependency order (no recursion)."""

from __future__ import annotations

import itertools

import numpy as np

from . import node as _node
from . import recycle as _recycle
from .grad_mode import STATE
from .node import Node
from .recycle import MIN_BYTES as _MIN_BYTES


def _owner(arr):
    """The array that owns ``arr``'s memory."""
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return id(arr)


class _Run:
    """State of one backward pass."""

    __slots__ = ("create_graph", "given", "capture", "accumulate", "borrowed")

    def __init__(self, create_graph, capture, accumulate):
        self.create_graph = create_graph
        self.given = set()  # owners of arrays already stored in some .grad (or the user's seeds)
        self.capture = capture  # autograd.grad: key -> gradient
        self.accumulate = accumulate  # set of leaves allowed to accumulate, or None for all
        # ids of tensors whose .grad array was taken without a copy in this pass: it may still
        # be an operand of a pending vjp, so it must not be accumulated into in place.
        self.borrowed = set()

    def own(self, g):
        """A gradient array safe to store in ``.grad`` (never shared with another .grad)."""
        arr = g._data
        key = _owner(arr)
        fl = arr.flags
        if key in self.given or not fl.writeable or not fl.c_contiguous:
            arr = np.array(arr, order="C")
            key = id(arr)
        self.given.add(key)
        return _node._make(arr)

    def store(self, t, g):
        """Accumulate ``g`` into ``t.grad`` (a leaf, or a non-leaf that retains its grad)."""
        if self.create_graph:
            t._grad = g if t._grad is None else t._grad + g
        elif t._grad is None:
            t._grad = self.own(g)
            self.borrowed.add(id(t))
        elif t._grad.requires_grad or not t._grad._data.flags.writeable:
            t._grad = (t._grad + g).detach()
        elif id(t) in self.borrowed:
            # out of place: the array now in .grad may be pending elsewhere in this pass
            self.borrowed.discard(id(t))
            arr = t._grad._data + g._data
            self.given.add(id(arr))
            t._grad = _node._make(arr)
        else:
            t._grad._data += g._data
            t._grad._bump()


def run_backward(roots, grads, retain_graph, create_graph, inputs=None, capture=False):
    """Propagate ``grads`` from ``roots`` to the leaves.

    With ``capture`` (``autograd.grad``), the gradients of ``inputs`` are returned instead of
    accumulated into ``.grad``; otherwise, when ``inputs`` is given, only those accumulate.
    """
    want_leaves = None
    want_nodes = None
    if inputs is not None:
        want_leaves = {id(t) for t in inputs if t.grad_fn is None}
        # non-leaf inputs: (node, output index) -> the tensor (backward(inputs=) fills .grad)
        want_nodes = {(t.grad_fn, t._out_idx): t for t in inputs if t.grad_fn is not None}
    run = _Run(create_graph, {} if capture else None, None)

    # 1. Dependency counts of every node reachable from the roots.
    deps: dict = {}
    stack = []
    for r in roots:
        fn = r.grad_fn
        if fn is not None and fn not in deps:
            deps[fn] = 0
            stack.append(fn)
    order = [] if inputs is not None else None  # only _needed walks it
    leaf_deps: dict = {}  # edges into each leaf: its grad is stored once all have arrived
    while stack:
        n = stack.pop()
        if order is not None:
            order.append(n)
        for e in n.next:
            if e is not None:
                t = e[0]
                if isinstance(t, Node):
                    c = deps.get(t)
                    if c is None:
                        deps[t] = 1
                        stack.append(t)
                    else:
                        deps[t] = c + 1
                else:
                    leaf_deps[id(t)] = leaf_deps.get(id(t), 0) + 1

    # 2. With ``inputs``, run only the nodes that lead to one of them.
    needed = None
    if inputs is not None:
        needed = _needed(order, deps, want_leaves, want_nodes)

    # 3. Seed the buffers. The caller keeps its seeds: never store them in a .grad uncopied.
    buffers: dict = {}
    for g in grads:
        if g is not None:
            run.given.add(_owner(g._data))
    for r, g in zip(roots, grads):
        fn = r.grad_fn
        if fn is None:
            _to_leaf(run, r, g, want_leaves, capture)
        else:
            _add(buffers, fn, r._out_idx, g)

    ready = [fn for fn in deps if deps[fn] == 0]
    prev_mode = STATE.enabled
    STATE.enabled = create_graph
    leaf_grads: dict = {}
    quiet = _node._EXTOBJ.set(_node._SILENT)  # vjps of inf/nan stay silent, as in torch
    # anomaly mode: the vjp ops' own forward checks are off (a NaN is reported by the
    # backward node that produced it, SqrtBackward0, not by the Div inside its vjp)
    check_nan = STATE.anomaly and STATE.anomaly_check_nan
    prev_check = STATE.anomaly_check_nan
    STATE.anomaly_check_nan = False
    try:
        while ready:
            node = ready.pop()
            gs = buffers.pop(node, None)
            if gs is not None and needed is not None and node not in needed:
                gs = None
            if gs is not None and (
                node.pre_hooks is not None or node.retained is not None or want_nodes is not None
            ):
                gs = _pre(run, node, gs, want_nodes, capture)
            if gs is None:  # no gradient reached this node: only count its edges as done
                in_grads = _NO_GRADS
            else:
                in_grads = _call(node, gs, check_nan)
                if not retain_graph:
                    node.release()
                if not create_graph:
                    g = gs[0]
                    if len(gs) > 1 or g is None or g._data.nbytes >= _MIN_BYTES:
                        g = None
                        _give_back(gs)  # (the small single gradient costs one size test)
            for e, g in zip(node.next, in_grads):
                if e is None:
                    continue
                t = e[0]
                if isinstance(t, Node):
                    if g is not None:
                        if t.n_outputs == 1 and t not in buffers:
                            buffers[t] = [g]  # the common case of _add, inlined
                        else:
                            _add(buffers, t, e[1], g)
                    c = deps[t] - 1
                    deps[t] = c
                    if c == 0:
                        ready.append(t)
                else:
                    _leaf_arrived(run, t, g, leaf_deps, leaf_grads, want_leaves, capture)
    finally:
        _node._EXTOBJ.reset(quiet)
        STATE.anomaly_check_nan = prev_check
        STATE.enabled = prev_mode
    if capture:
        return run.capture
    return None


_NO_GRADS = itertools.repeat(None)  # the vjp results of a node no gradient reached


def _give_back(gs: list) -> None:
    """Consumed large gradients that nobody else holds go back for reuse (recycle.py)."""
    for i in range(len(gs)):
        t = gs[i]
        if t is not None and t._data.nbytes >= _MIN_BYTES:
            gs[i] = None
            _recycle.give_tensor(t)  # (expects this local to hold the last reference)
            t = None


def _leaf_arrived(run, t, g, leaf_deps, leaf_grads, want_leaves, capture):
    """One edge into leaf ``t`` is done. Its contributions are summed first so that its hooks
    see the total, once (torch's AccumulateGrad); the total is stored as soon as the last one
    arrives, so post-accumulate hooks (DDP's bucketed all-reduce) fire during backward."""
    key = id(t)
    left = leaf_deps[key] - 1
    leaf_deps[key] = left
    if left:
        if g is not None:
            prev = leaf_grads.get(key)
            leaf_grads[key] = g if prev is None else prev + g
        return
    if leaf_grads:  # earlier contributions (a leaf used more than once)
        prev = leaf_grads.pop(key, None)
        if prev is not None:
            g = prev if g is None else prev + g
    if g is not None:
        _to_leaf(run, t, g, want_leaves, capture)


def _needed(order, deps, want_leaves, want_nodes):
    """Nodes from which a wanted input is reachable (walked leaves-first)."""
    indeg = dict(deps)
    topo = []
    ready = [n for n in order if indeg[n] == 0]
    while ready:
        n = ready.pop()
        topo.append(n)
        for e in n.next:
            if e is not None and isinstance(e[0], Node):
                indeg[e[0]] -= 1
                if indeg[e[0]] == 0:
                    ready.append(e[0])
    needed = set()
    want_fns = {fn for fn, _ in want_nodes}
    for n in reversed(topo):
        if n in want_fns:
            needed.add(n)
            continue
        for e in n.next:
            if e is None:
                continue
            t = e[0]
            if (isinstance(t, Node) and t in needed) or (
                not isinstance(t, Node) and id(t) in want_leaves
            ):
                needed.add(n)
                break
    return needed


def _add(buffers, node, idx, g):
    gs = buffers.get(node)
    if gs is None:
        if node.n_outputs == 1:
            buffers[node] = [g]
            return
        gs = buffers[node] = [None] * node.n_outputs
    cur = gs[idx]
    if cur is None:
        gs[idx] = g
    elif STATE.enabled:  # create_graph: the sum is part of the graph of the gradient
        gs[idx] = cur + g
    else:  # same shape and dtype (checked in _call): skip the op machinery; never in place,
        # the arrays may be shared (``x + x`` hands one array to both edges)
        gs[idx] = _node._make(cur._data + g._data)


def _pre(run, node, gs, want_nodes, capture):
    """Tensor hooks and retain_grad of the node's outputs, then autograd.grad capture."""
    if node.pre_hooks is not None:
        for idx, hooks in node.pre_hooks.items():
            for h in list(hooks.values()):
                if gs[idx] is None:
                    continue
                r = h(gs[idx])
                if r is not None:
                    gs[idx] = _checked_hook_result(r, gs[idx], node.name())
    if node.retained is not None:
        for idx, ref in node.retained.items():
            t = ref()
            if t is not None and gs[idx] is not None:
                run.store(t, gs[idx])
    if want_nodes is not None:
        for idx in range(node.n_outputs):
            if (node, idx) in want_nodes and gs[idx] is not None:
                if capture:
                    run.capture[(node, idx)] = gs[idx]
                else:
                    run.store(want_nodes[(node, idx)], gs[idx])
    return gs


def _checked_hook_result(r, g, where):
    from ..tensor import Tensor

    if not isinstance(r, Tensor):
        raise TypeError(f"a hook on {where} returned {type(r).__name__}; expected a Tensor or None")
    if r.shape != g.shape:
        raise RuntimeError(
            f"a hook on {where} returned a gradient of shape {tuple(r.shape)}; "
            f"expected {tuple(g.shape)}"
        )
    return r


def _call(node, gs, check_nan=False):
    Tensor = _node.Tensor
    if node.n_outputs == 1:
        out = node.backward(gs[0])
    else:
        # Function ctx.set_materialize_grads(False): unused outputs' grads stay None
        mat = getattr(node, "materialize_grads", True)
        filled = [
            g if g is not None or not mat else _node._make(np.zeros(s, d))
            for g, (s, d) in zip(gs, node.out_meta())
        ]
        out = node.backward(*filled)
    if type(out) is not tuple:
        out = tuple(out) if isinstance(out, list) else (out,)
    meta = node.in_meta
    if len(out) != len(meta):
        raise RuntimeError(
            f"function {node.name()} returned an incorrect number of gradients "
            f"(expected {len(meta)}, got {len(out)})"
        )
    # NOTE: the common case (every gradient a Tensor of its input's shape and dtype) is checked
    # without building a new tuple; the engine skips the gradients of edges that are None
    for g, (shape, dt), e in zip(out, meta, node.next):
        if g is None or e is None:
            continue
        if type(g) is not Tensor:
            out = _conform(node, out, meta)
            break
        d = g._data
        if d.shape != shape or (d.dtype is not dt and d.dtype != dt):
            out = _conform(node, out, meta)
            break
    if check_nan:
        for g, e in zip(out, node.next):
            if e is None or g is None:
                continue
            if g._data.dtype.kind == "f" and not np.isfinite(g._data).all():
                raise RuntimeError(
                    f"Function '{node.name()}' returned nan values in its gradient output "
                    f"(detect_anomaly). The forward call that created it was:\n{node.trace}"
                )
    return out


def _conform(node, out, meta):
    """The vjp's gradients as Tensors of their inputs' dtypes (float), or an error naming the
    op when a shape is wrong (custom Functions)."""
    Tensor = _node.Tensor
    nxt = node.next
    res = []
    for i, g in enumerate(out):
        if g is None or nxt[i] is None:
            res.append(None)
            continue
        shape, dt = meta[i]
        if not isinstance(g, Tensor):
            g = _node._make(np.asarray(g, dtype=dt))
        d = g._data
        if d.shape != shape:
            raise RuntimeError(
                f"Function {node.name()} returned an invalid gradient at index {i} - got "
                f"{list(d.shape)} but expected shape compatible with {list(shape)} "
                "(shapes do not match)"
            )
        if d.dtype is not dt and d.dtype != dt:
            if dt.kind != "f":
                res.append(None)
                continue
            g = g.to(dt)
        res.append(g)
    return tuple(res)


def _to_leaf(run, t, g, want_leaves, capture):
    if want_leaves is not None and id(t) not in want_leaves:
        return
    if t._hooks:
        for h in list(t._hooks.values()):
            r = h(g)
            if r is not None:
                g = _checked_hook_result(r, g, "a leaf tensor")
    if capture:
        prev = run.capture.get(id(t))
        run.capture[id(t)] = g if prev is None else prev + g
        return
    run.store(t, g)
    if t._post_hooks:
        for h in list(t._post_hooks.values()):
            h(t)

"""``rg.explain``: the backward pass told node by node, or a model's gradient flow layer by layer.

On a tensor (a small, micrograd-sized graph) it walks the recorded graph from the output in
the same dependency order the engine uses, and at each node prints the op, the values of its
inputs, the node's local derivative (its Jacobian, obtained by running the node's own vjp on
unit vectors), the upstream gradient, and their chain-rule product, until every leaf's
gradient is known. The graph is only read: nothing is freed and no ``.grad`` is written. The
leaf gradients are checked against ``rg.autograd.grad(..., retain_graph=True)``.

>>> import retrograd as rg
>>> a = rg.tensor(2.0, requires_grad=True); b = rg.tensor(-3.0, requires_grad=True)
>>> c = rg.tensor(10.0, requires_grad=True)
>>> L = (a * b + c).tanh()
>>> ex = rg.explain(L)
>>> round(ex.grads["a"].item(), 6) == round(float(b) * (1 - float(L) ** 2), 6)
True
>>> ex.matches_backward
True

On a module, ``rg.explain(model, x, target, loss_fn=...)`` (or ``rg.explain(model, loss)``)
summarises, layer by layer, how the loss gradient reaches each weight: gradient norm, the
chain of layers between the loss and that weight, and the ratio to the next layer's norm.
"""

from __future__ import annotations

import html as _html
import inspect
import os
from dataclasses import dataclass, field

import numpy as np

from ..autograd.engine import _call
from ..autograd.grad_mode import no_grad
from ..autograd.node import Node
from ..tensor import Tensor
from . import _graph

__all__ = ["explain", "Explanation", "ExplainStep", "ExplainInput", "ModuleExplanation"]

DEFAULT_MAX_NODES = 60
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # frames to skip
JACOBIAN_CAP = 64  # largest out.numel() * in.numel() for which the local Jacobian is shown

_SYMBOL = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/", "MatMul": "@"}


@dataclass
class ExplainInput:
    """One input of a node during the backward walk."""

    position: int
    label: str
    value: np.ndarray | None
    is_leaf: bool
    needs_grad: bool
    local: np.ndarray | None = None  # Jacobian d(out)/d(input), shape out.shape + in.shape
    grad: np.ndarray | None = None  # upstream . local (the vjp): this input's contribution


@dataclass
class ExplainStep:
    """One node of the backward walk (``index`` counts from the output)."""

    index: int
    op: str
    label: str
    expression: str
    output: np.ndarray | None
    upstream: np.ndarray
    upstream_from: list[str]
    inputs: list[ExplainInput] = field(default_factory=list)


@dataclass
class Explanation:
    """The narrated backward pass: ``.text`` for a terminal, ``.html`` for a notebook,
    ``.steps`` for code, ``.grads`` (leaf label -> gradient array)."""

    steps: list[ExplainStep]
    grads: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]
    matches_backward: bool
    root_label: str

    @property
    def text(self) -> str:
        return _render_text(self)

    @property
    def html(self) -> str:
        return _render_html(self)

    def __str__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return self.html


# --- labels ---------------------------------------------------------------------------------


def _caller_names(frame) -> dict[int, str]:
    """Variable names of tensors in the caller's frame (best effort, for readable output)."""
    names: dict[int, str] = {}
    while frame is not None and frame.f_code.co_filename.startswith(_PKG_DIR):
        frame = frame.f_back
    if frame is None:
        return names
    for scope in (frame.f_globals, frame.f_locals):
        for k, v in list(scope.items()):
            if isinstance(v, Tensor) and not k.startswith("_"):
                names[id(v)] = k
    return names


def _labeller(root, leaves, order, names, params):
    pnames = _graph.param_names(params)
    node_names: dict = {}
    by_node: dict = {}
    # A caller variable whose grad_fn is a node names that node's output.
    frame_tensors = names.get("__tensors__", {})
    for t, nm in frame_tensors.values():
        if t.grad_fn is not None:
            by_node.setdefault((t.grad_fn, t._out_idx), nm)
    leaf_label: dict[int, str] = {}
    k = 0
    for t in leaves:
        nm = pnames.get(id(t)) or names.get(id(t))
        if nm is None:
            nm = f"leaf{k}"
            k += 1
        leaf_label[id(t)] = nm
    k = 1
    for n in order:
        for i in range(n.n_outputs):
            key = (n, i)
            if key == (root.grad_fn, root._out_idx) and id(root) in names:
                node_names[key] = names[id(root)]
            elif key in by_node:
                node_names[key] = by_node[key]
            else:
                node_names[key] = f"t{k}" if n.n_outputs == 1 else f"t{k}[{i}]"
        k += 1
    used = set(leaf_label.values())
    for key, nm in list(node_names.items()):
        if nm in used and key not in by_node:
            node_names[key] = f"{nm}_"
        used.add(node_names[key])

    def label(e):
        if e is None:
            return "const"
        t, idx = e
        if isinstance(t, Node):
            return node_names[(t, idx)]
        return leaf_label[id(t)]

    return label, leaf_label, node_names


# --- the walk -------------------------------------------------------------------------------


def _jacobian(node, out_shape, out_dtype, n_inputs, in_meta):
    """Full local Jacobians by the vjp on unit vectors (only for small tensors)."""
    out_size = int(np.prod(out_shape)) if out_shape else 1
    jac = [None] * n_inputs
    sizes = [int(np.prod(s)) if s else 1 for s, _ in in_meta]
    want = [
        i
        for i in range(n_inputs)
        if node.next[i] is not None and out_size * sizes[i] <= JACOBIAN_CAP
    ]
    if not want or node.n_outputs != 1:
        return jac
    rows = {i: [] for i in want}
    for k in range(out_size):
        e = np.zeros(out_size, dtype=out_dtype)
        e[k] = 1
        res = _call(node, [Tensor._make(e.reshape(out_shape))])
        for i in want:
            r = res[i]
            rows[i].append(np.zeros(in_meta[i][0], in_meta[i][1]) if r is None else r._data)
    for i in want:
        jac[i] = np.stack(rows[i]).reshape(tuple(out_shape) + tuple(in_meta[i][0]))
    return jac


def _expression(node, out_label, in_labels):
    op = type(node).op_name()
    if op in _SYMBOL and len(in_labels) == 2:
        return f"{out_label} = {in_labels[0]} {_SYMBOL[op]} {in_labels[1]}"
    if op == "PowScalar":
        return f"{out_label} = {in_labels[0]} ** {getattr(node, 'p', '?')}"
    if op == "Neg":
        return f"{out_label} = -{in_labels[0]}"
    return f"{out_label} = {op.lower()}({', '.join(in_labels)})"


def _explain_tensor(root: Tensor, max_nodes: int, grad_output, params, names) -> Explanation:
    if root.grad_fn is None:
        raise RuntimeError(
            "explain(): the tensor has no grad_fn (it is a leaf or was computed without grad); "
            "there is no backward pass to explain"
        )
    try:
        order, leaves = _graph.collect(root, max_nodes=max_nodes)
    except _graph.GraphTooLarge:
        raise ValueError(
            f"explain(): the graph has more than max_nodes={max_nodes} nodes; a node-by-node "
            "narration would be unreadable. Use rg.explain(model, inputs, ...) for a "
            "layer-by-layer summary, rg.viz.draw_graph(tensor) for a picture, or pass a larger "
            "max_nodes."
        ) from None
    if grad_output is None:
        if root.numel() != 1:
            raise RuntimeError(
                f"explain(): grad can be implicitly created only for scalar outputs; the tensor "
                f"has shape {list(root.shape)}. Pass grad_output=..."
            )
        grad_output = np.ones(root._data.shape, root._data.dtype)
    elif isinstance(grad_output, Tensor):
        grad_output = grad_output._data
    vals = _graph.node_values(root, order, leaves)
    label, leaf_label, _ = _labeller(root, leaves, order, names, params)

    buffers: dict = {root.grad_fn: [None] * root.grad_fn.n_outputs}
    buffers[root.grad_fn][root._out_idx] = np.asarray(grad_output)
    sources: dict = {(root.grad_fn, root._out_idx): ["(seed: d out/d out = 1)"]}
    leaf_grads: dict[int, np.ndarray] = {}
    leaf_sources: dict[int, list[str]] = {}
    steps = []
    with no_grad():
        for idx, node in enumerate(order, 1):
            gs = buffers.pop(node, None)
            out_key = (node, 0)
            out_label = label((node, 0))
            in_labels = [label(e) for e in node.next]
            if gs is None or all(g is None for g in gs):
                continue
            gts = [None if g is None else Tensor._make(g) for g in gs]
            in_grads = _call(node, gts)
            out_shape, out_dtype = (
                gs[0].shape if gs[0] is not None else (),
                (gs[0].dtype if gs[0] is not None else np.float32),
            )
            jac = _jacobian(node, out_shape, out_dtype, len(node.next), node.in_meta)
            step = ExplainStep(
                index=idx,
                op=node.name(),
                label=out_label,
                expression=_expression(node, out_label, in_labels),
                output=vals.get(out_key),
                upstream=gs[0]
                if node.n_outputs == 1
                else np.asarray([g for g in gs], dtype=object),
                upstream_from=sources.get(out_key, []),
            )
            for i, e in enumerate(node.next):
                g = in_grads[i]
                inp = ExplainInput(
                    position=i,
                    label=in_labels[i],
                    value=_graph.input_value(vals, node, i),
                    is_leaf=e is not None and not isinstance(e[0], Node),
                    needs_grad=e is not None,
                    local=jac[i],
                    grad=None if g is None else g._data.copy(),
                )
                step.inputs.append(inp)
                if e is None or g is None:
                    continue
                t, oi = e
                if isinstance(t, Node):
                    b = buffers.setdefault(t, [None] * t.n_outputs)
                    b[oi] = g._data.copy() if b[oi] is None else b[oi] + g._data
                    sources.setdefault((t, oi), []).append(out_label)
                else:
                    gd = g._data
                    leaf_grads[id(t)] = (
                        gd.copy() if id(t) not in leaf_grads else leaf_grads[id(t)] + gd
                    )
                    leaf_sources.setdefault(id(t), []).append(out_label)
            steps.append(step)

    # The engine's own answer, on the same (retained) graph.
    from ..autograd import grad as _autograd_grad

    ref = (
        _autograd_grad(
            root,
            leaves,
            grad_outputs=Tensor._make(np.asarray(grad_output)),
            retain_graph=True,
            allow_unused=True,
        )
        if leaves
        else ()
    )
    grads = {
        leaf_label[id(t)]: leaf_grads.get(id(t), np.zeros(t._data.shape, t._data.dtype))
        for t in leaves
    }
    reference = {
        leaf_label[id(t)]: (np.zeros(t._data.shape, t._data.dtype) if r is None else r._data)
        for t, r in zip(leaves, ref)
    }
    ok = all(
        np.allclose(grads[k], reference[k], rtol=1e-5, atol=1e-7, equal_nan=True) for k in grads
    )
    ex = Explanation(steps, grads, reference, bool(ok), label((root.grad_fn, root._out_idx)))
    ex._leaf_sources = {
        leaf_label[k]: v for k, v in ((id(t), leaf_sources.get(id(t), [])) for t in leaves)
    }
    return ex


# --- rendering ------------------------------------------------------------------------------

f = _graph.fmt_array


def _render_text(ex: Explanation) -> str:
    r = ex.root_label
    lines = [f"Backward pass of {r}, node by node (chain rule: grad(input) = upstream x local)"]
    for s in ex.steps:
        lines.append("")
        lines.append(f"[{s.index}] {s.expression}    ({s.op})")
        ins = ", ".join(f"{i.label} = {f(i.value)}" for i in s.inputs)
        lines.append(f"    forward : {ins}  ->  {s.label} = {f(s.output)}")
        src = " + ".join(s.upstream_from) if s.upstream_from else "?"
        extra = f"  (sum of the contributions from {src})" if len(s.upstream_from) > 1 else ""
        lines.append(f"    upstream: d{r}/d{s.label} = {f(s.upstream)}{extra}")
        for i in s.inputs:
            if not i.needs_grad:
                lines.append(f"    {i.label}: constant, no gradient needed")
                continue
            loc = (
                "(too large to show; computed by the node's vjp)" if i.local is None else f(i.local)
            )
            lines.append(
                f"    d{s.label}/d{i.label} (local) = {loc};  d{r}/d{i.label} += "
                f"{f(s.upstream)} x {loc if i.local is not None and i.local.size == 1 else 'J'}"
                f" = {f(i.grad)}" + ("   <- leaf" if i.is_leaf else "")
            )
    lines.append("")
    lines.append("Leaf gradients (what .backward() accumulates into .grad):")
    for k, g in ex.grads.items():
        srcs = getattr(ex, "_leaf_sources", {}).get(k, [])
        via = f"  (sum over {len(srcs)} uses: {', '.join(srcs)})" if len(srcs) > 1 else ""
        lines.append(f"    {k}.grad = {f(g)}{via}")
    lines.append(
        "Check against rg.autograd.grad(retain_graph=True): "
        + ("identical" if ex.matches_backward else "MISMATCH")
    )
    return "\n".join(lines)


def _e(x) -> str:
    return _html.escape(str(x))


def _render_html(ex: Explanation) -> str:
    rows = []
    for s in ex.steps:
        for j, i in enumerate(s.inputs):
            head = (
                f"<td rowspan={len(s.inputs)}>{s.index}</td><td rowspan={len(s.inputs)}><code>"
                f"{_e(s.expression)}</code><br><small>{_e(s.op)}</small></td>"
                f"<td rowspan={len(s.inputs)}>{_e(f(s.output))}</td>"
                f"<td rowspan={len(s.inputs)}>{_e(f(s.upstream))}</td>"
                if j == 0
                else ""
            )
            rows.append(
                f"<tr>{head}<td>{_e(i.label)}{' (leaf)' if i.is_leaf else ''}</td>"
                f"<td>{_e(f(i.value))}</td><td>{_e(f(i.local)) if i.needs_grad else '-'}</td>"
                f"<td>{_e(f(i.grad)) if i.needs_grad else '-'}</td></tr>"
            )
    leaves = "".join(
        f"<li><code>{_e(k)}.grad = {_e(f(g))}</code></li>" for k, g in ex.grads.items()
    )
    ok = "identical to" if ex.matches_backward else "DIFFERENT from"
    return (
        "<div class='rg-explain'><style>.rg-explain table{border-collapse:collapse}"
        ".rg-explain td,.rg-explain th{border:1px solid #ccc;padding:2px 6px}</style>"
        f"<p>Backward pass of <code>{_e(ex.root_label)}</code></p><table>"
        "<tr><th>#</th><th>node</th><th>value</th><th>upstream grad</th><th>input</th>"
        "<th>input value</th><th>local derivative</th><th>upstream x local</th></tr>"
        + "".join(rows)
        + f"</table><p>Leaf gradients ({ok} rg.autograd.grad):</p><ul>{leaves}</ul></div>"
    )


# --- module summary -------------------------------------------------------------------------


@dataclass
class LayerFlow:
    """How the loss gradient reaches one layer's weights."""

    name: str
    kind: str
    grad_norm: float
    weight_norm: float
    chain: list[str]
    ratio_to_next: float | None  # this layer's grad norm / the next (closer to the loss) layer's


@dataclass
class ModuleExplanation:
    """Layer-by-layer gradient flow: ``.layers`` (first layer first), ``.text``, ``.html``."""

    layers: list[LayerFlow]
    loss: float

    @property
    def text(self) -> str:
        lines = [f"Gradient flow from the loss ({self.loss:.4g}) to each layer's weights"]
        w = max([len(x.name) for x in self.layers] + [5])
        lines.append(
            f"{'layer':<{w}}  {'type':<14} {'|grad|':>10} {'|w|':>10} {'vs next':>9}  chain"
        )
        for x in self.layers:
            r = "-" if x.ratio_to_next is None else f"{x.ratio_to_next:.3g}"
            lines.append(
                f"{x.name:<{w}}  {x.kind:<14} {x.grad_norm:>10.3g} {x.weight_norm:>10.3g} "
                f"{r:>9}  {' <- '.join(x.chain)}"
            )
        lines.append(
            "'vs next' = this layer's gradient norm / the norm of the layer after it (closer "
            "to the loss); values far below 1 layer after layer mean the gradient vanishes on "
            "its way back, far above 1 that it explodes."
        )
        return "\n".join(lines)

    @property
    def html(self) -> str:
        rows = "".join(
            f"<tr><td>{_e(x.name)}</td><td>{_e(x.kind)}</td><td>{x.grad_norm:.3g}</td>"
            f"<td>{x.weight_norm:.3g}</td>"
            f"<td>{'-' if x.ratio_to_next is None else f'{x.ratio_to_next:.3g}'}"
            f"</td><td>{_e(' ← '.join(x.chain))}</td></tr>"
            for x in self.layers
        )
        return (
            f"<table><tr><th>layer</th><th>type</th><th>|grad|</th><th>|w|</th><th>vs next</th>"
            f"<th>chain from the loss</th></tr>{rows}</table>"
        )

    def __str__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return self.html


def _explain_module(model, args, target, loss_fn) -> ModuleExplanation:
    from ..autograd import grad as _autograd_grad

    owners = [
        (n, m)
        for n, m in model.named_modules()
        if len(m._parameters)
        and any(p is not None and p.requires_grad for p in m._parameters.values())
    ]
    if not owners:
        raise ValueError("explain(): the module has no parameters that require grad")
    calls: list[str] = []
    if (
        len(args) == 1
        and isinstance(args[0], Tensor)
        and args[0].grad_fn is not None
        and target is None
        and loss_fn is None
    ):
        loss = args[0]
    else:
        handles = []
        for n, m in model.named_modules():
            if n and not m._modules:
                handles.append(m.register_forward_hook(lambda mod, i, o, n=n: calls.append(n)))
        try:
            out = model(*args)
        finally:
            for h in handles:
                h.remove()
        if loss_fn is not None:
            loss = loss_fn(out, target) if target is not None else loss_fn(out)
        elif out.numel() == 1:
            loss = out
        else:
            loss = out.sum() if target is None else ((out - target) ** 2).mean()
    params = [
        (f"{n}.{k}" if n else k, p, n, m)
        for n, m in owners
        for k, p in m._parameters.items()
        if p is not None and p.requires_grad
    ]
    grads = _autograd_grad(loss, [p for _, p, _, _ in params], retain_graph=True, allow_unused=True)
    by_layer: dict[str, list] = {}
    for (_, p, n, m), g in zip(params, grads):
        by_layer.setdefault(n, [m, 0.0, 0.0])
        by_layer[n][1] += 0.0 if g is None else float((g._data.astype(np.float64) ** 2).sum())
        by_layer[n][2] += float((p._data.astype(np.float64) ** 2).sum())
    # Order: forward call order when known, else by distance from the loss in the graph.
    if calls:
        seq = list(dict.fromkeys(calls))
    else:
        depth = _leaf_depths(loss)
        pd = {n: max(depth.get(id(p), -1) for _, p, nn, _ in params if nn == n) for n in by_layer}
        seq = sorted(by_layer, key=lambda n: -pd[n])
    names = [n for n in seq if n in by_layer] + [n for n in by_layer if n not in seq]
    layers = []
    for n in names:
        m, g2, w2 = by_layer[n]
        after = [x for x in seq[seq.index(n) + 1 :]] if n in seq else []
        chain = ["loss"] + list(reversed(after)) + [n or "(model)"]
        layers.append(LayerFlow(n or "(model)", type(m).__name__, g2**0.5, w2**0.5, chain, None))
    for i in range(len(layers) - 1):
        nxt = layers[i + 1].grad_norm
        layers[i].ratio_to_next = layers[i].grad_norm / nxt if nxt > 0 else float("inf")
    return ModuleExplanation(
        layers, float(loss._data.reshape(-1)[0]) if loss.numel() else float("nan")
    )


def _leaf_depths(root) -> dict[int, int]:
    """Longest distance (in nodes) from ``root`` to each leaf, by a topological sweep."""
    order, _ = _graph.collect(root)
    depth = {order[0]: 0} if order else {}
    out: dict[int, int] = {}
    for n in order:
        d = depth.get(n, 0)
        for e in n.next:
            if e is None:
                continue
            t = e[0]
            if isinstance(t, Node):
                depth[t] = max(depth.get(t, 0), d + 1)
            else:
                out[id(t)] = max(out.get(id(t), 0), d + 1)
    return out


# --- entry point ----------------------------------------------------------------------------


def explain(
    obj,
    *args,
    max_nodes: int = DEFAULT_MAX_NODES,
    grad_output=None,
    params=None,
    target=None,
    loss_fn=None,
):
    """Explain backpropagation through ``obj``.

    ``explain(tensor)`` narrates the backward pass of a small graph node by node and returns an
    :class:`Explanation` (``.text``, ``.html``, ``.steps``, ``.grads``). Graphs larger than
    ``max_nodes`` raise a ``ValueError`` naming the cap. ``params`` (a dict name -> tensor, or a
    module) names leaves; otherwise the caller's variable names are used where found.

    ``explain(module, *inputs, target=..., loss_fn=...)`` or ``explain(module, loss)`` returns
    a :class:`ModuleExplanation` (gradient norm per layer, the chain of layers from the loss).

    >>> import retrograd as rg
    >>> x = rg.tensor(3.0, requires_grad=True)
    >>> y = x * x
    >>> print(rg.explain(y).text.splitlines()[2])
    [1] y = x * x    (MulBackward0)
    """
    from ..nn.modules.module import Module

    if isinstance(obj, Module):
        return _explain_module(obj, args, target, loss_fn)
    if not isinstance(obj, Tensor):
        raise TypeError(f"explain(): expected a Tensor or a Module, got {type(obj).__name__}")
    frame = inspect.currentframe()
    try:
        caller = frame.f_back if frame is not None else None
        names = _caller_names(caller)
        tensors = {}
        c = caller
        while c is not None and c.f_code.co_filename.startswith(_PKG_DIR):
            c = c.f_back
        if c is not None:
            for scope in (c.f_globals, c.f_locals):
                for k, v in list(scope.items()):
                    if isinstance(v, Tensor) and not k.startswith("_"):
                        tensors[id(v)] = (v, k)
        names["__tensors__"] = tensors
    finally:
        del frame
    return _explain_tensor(obj, max_nodes, grad_output, params, names)

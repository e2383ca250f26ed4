"""Graph pictures: the recorded autograd graph (or a model's module graph) as Graphviz DOT.

``draw_graph(tensor)`` always produces DOT text (no dependency); ``.render(path)`` calls the
``dot`` program when it is installed (Debian: ``apt-get install graphviz``).

>>> import retrograd as rg
>>> a = rg.tensor([1.0, 2.0], requires_grad=True)
>>> g = rg.viz.draw_graph((a * 3).sum(), params={"a": a})
>>> "MulBackward0" in g.source and '"a' in g.source
True
>>> sorted(parse_dot(g.source)[0])[:1]
['leaf0']

Big models: ``draw_module_graph(model, x)`` (or ``draw_graph(out, collapse_modules=model,
inputs=(x,))``) runs the model once with forward hooks and draws one box per module call.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

import numpy as np

from .autograd.node import Node
from .diagnostics import _graph
from .tensor import Tensor

__all__ = ["Digraph", "draw_graph", "draw_module_graph", "parse_dot", "dot_available"]


def dot_available() -> bool:
    """Whether the Graphviz ``dot`` program is on PATH."""
    return shutil.which("dot") is not None


def _q(s: str) -> str:
    """A DOT double-quoted string."""
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@dataclass
class Digraph:
    """DOT source of a graph: ``.source``, ``.save(path)`` (.dot), ``.render(path, format)``."""

    nodes: list[tuple[str, dict]] = field(default_factory=list)
    edges: list[tuple[str, str, dict]] = field(default_factory=list)
    name: str = "retrograd"
    graph_attrs: dict = field(default_factory=lambda: {"rankdir": "BT"})

    @property
    def source(self) -> str:
        out = [f"digraph {_q(self.name)} {{"]
        for k, v in self.graph_attrs.items():
            out.append(f"  {k}={_q(v)};")
        out.append('  node [fontname="Helvetica", fontsize=10];')
        for nid, attrs in self.nodes:
            a = ", ".join(f"{k}={_q(v)}" for k, v in attrs.items())
            out.append(f"  {nid} [{a}];")
        for s, d, attrs in self.edges:
            a = ", ".join(f"{k}={_q(v)}" for k, v in attrs.items())
            out.append(f"  {s} -> {d}" + (f" [{a}]" if a else "") + ";")
        out.append("}")
        return "\n".join(out) + "\n"

    def __str__(self) -> str:
        return self.source

    def save(self, path: str | os.PathLike) -> str:
        """Write the DOT text to ``path``; returns the path."""
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.source)
        return str(path)

    def render(self, path: str | os.PathLike, format: str = "svg") -> str:  # noqa: A002
        """Render with Graphviz ``dot`` to ``path`` (``format`` 'svg' or 'png'); returns the path.

        Raises ``RuntimeError`` when ``dot`` is not installed (the DOT text is still available
        via ``.source`` / ``.save``)."""
        if format not in ("svg", "png", "pdf"):
            raise ValueError(f"render(): format must be 'svg', 'png' or 'pdf', got {format!r}")
        exe = shutil.which("dot")
        if exe is None:
            raise RuntimeError(
                "render(): the Graphviz 'dot' program was not found on PATH (Debian/Ubuntu: "
                "apt-get install graphviz); use .save(path) to write the DOT text instead"
            )
        subprocess.run(
            [exe, f"-T{format}", "-o", str(path)],
            input=self.source.encode(),
            check=True,
            capture_output=True,
        )
        return str(path)

    def _repr_svg_(self):  # notebooks
        if not dot_available():
            return None
        r = subprocess.run(["dot", "-Tsvg"], input=self.source.encode(), capture_output=True)
        return r.stdout.decode() if r.returncode == 0 else None


def _meta(arr: np.ndarray) -> str:
    return f"{tuple(arr.shape)} {arr.dtype}"


def draw_graph(
    tensor: Tensor,
    show_values: bool = False,
    show_grads: bool = False,
    params=None,
    collapse_modules=None,
    inputs=None,
    max_nodes: int = 2000,
    max_value_elems: int = 6,
) -> Digraph:
    """The autograd graph that produced ``tensor`` as DOT.

    Each op node shows its PyTorch-style name (``MulBackward0``) and output shape/dtype; leaves
    show their parameter name (from ``params=dict(model.named_parameters())`` or a module),
    shape and dtype. ``show_values`` adds values of tensors with at most ``max_value_elems``
    elements, ``show_grads`` the leaves' ``.grad``. Edges run in the forward direction (input
    to consumer). With ``collapse_modules=model`` and ``inputs``, draws the module graph
    instead (see :func:`draw_module_graph`).

    >>> import retrograd as rg
    >>> x = rg.tensor(2.0, requires_grad=True)
    >>> "Backward0" in rg.viz.draw_graph(x ** 2).source
    True
    """
    if collapse_modules is not None:
        if inputs is None:
            raise ValueError(
                "draw_graph(collapse_modules=model) needs inputs=(x, ...): the module view is "
                "built by running the model once with forward hooks"
            )
        ins = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        return draw_module_graph(collapse_modules, *ins)
    if not isinstance(tensor, Tensor):
        raise TypeError(f"draw_graph(): expected a Tensor, got {type(tensor).__name__}")
    try:
        order, leaves = _graph.collect(tensor, max_nodes=max_nodes)
    except _graph.GraphTooLarge:
        raise ValueError(
            f"draw_graph(): the graph has more than max_nodes={max_nodes} nodes; pass a larger "
            "max_nodes, or draw the module view with collapse_modules=model, inputs=(x,)"
        ) from None
    names = _graph.param_names(params)
    vals = _graph.node_values(tensor, order, leaves) if show_values else {}
    g = Digraph()
    ids: dict = {}
    out_meta: dict = {}
    for n in order:
        for e, m in zip(n.next, n.in_meta):
            if e is not None and isinstance(e[0], Node):
                out_meta[(e[0], e[1])] = m
    if tensor.grad_fn is not None:
        out_meta[(tensor.grad_fn, tensor._out_idx)] = (tensor._data.shape, tensor._data.dtype)

    def small(a):
        return a is not None and np.asarray(a).size <= max_value_elems

    for i, t in enumerate(leaves):
        nid = f"leaf{i}"
        ids[id(t)] = nid
        lines = [names.get(id(t), f"leaf {i}"), _meta(t._data)]
        if show_values and small(t._data):
            lines.append("value " + _graph.fmt_array(t._data))
        if show_grads and t._grad is not None and small(t._grad._data):
            lines.append("grad " + _graph.fmt_array(t._grad._data))
        elif show_grads and t._grad is not None:
            lines.append(f"|grad| {float(np.linalg.norm(t._grad._data)):.3g}")
        g.nodes.append(
            (
                nid,
                {
                    "label": "\n".join(lines),
                    "shape": "box",
                    "style": "filled",
                    "fillcolor": "lightblue" if id(t) in names else "lightgrey",
                },
            )
        )
    for i, n in enumerate(order):
        nid = f"op{i}"
        ids[n] = nid
        lines = [n.name()]
        m = out_meta.get((n, 0))
        if m is not None:
            lines.append(f"{tuple(m[0])} {np.dtype(m[1])}")
        v = vals.get((n, 0))
        if show_values and small(v):
            lines.append("value " + _graph.fmt_array(v))
        attrs = {"label": "\n".join(lines), "shape": "ellipse"}
        if n is tensor.grad_fn:
            attrs.update(style="filled", fillcolor="darkolivegreen1")
        g.nodes.append((nid, attrs))
    for n in order:
        for e in n.next:
            if e is None:
                continue
            src = ids[e[0]] if isinstance(e[0], Node) else ids[id(e[0])]
            g.edges.append((src, ids[n], {}))
    return g


def draw_module_graph(model, *inputs, **kwargs) -> Digraph:
    """One box per module call (leaf modules), built by running ``model(*inputs)`` once with
    forward hooks; edges follow the tensors between calls (ops outside modules, such as a
    residual ``+``, are looked through). Hooks are removed afterwards.

    >>> import retrograd as rg
    >>> class M(rg.nn.Module):
    ...     def forward(self, x):
    ...         return x * 2
    >>> "M" in rg.viz.draw_module_graph(M(), rg.ones(2, requires_grad=True)).source
    True
    """
    from .autograd.grad_mode import enable_grad

    calls: list[tuple[str, object, tuple, object]] = []
    handles = []
    mods = [(n, m) for n, m in model.named_modules() if not m._modules]
    for n, m in mods:
        handles.append(
            m.register_forward_hook(
                lambda mod, a, o, n=n: calls.append((n or type(mod).__name__, mod, a, o))
            )
        )
    try:
        with enable_grad():
            ins = []
            for x in inputs:
                if isinstance(x, Tensor) and x.dtype.is_floating_point and not x.requires_grad:
                    x = x.detach().requires_grad_(True)  # so the graph links input -> first layer
                ins.append(x)
            out = model(*ins, **kwargs)
    finally:
        for h in handles:
            h.remove()

    def tensors(o):
        if isinstance(o, Tensor):
            return [o]
        if isinstance(o, (tuple, list)):
            return [t for x in o for t in tensors(x)]
        if isinstance(o, dict):
            return [t for x in o.values() for t in tensors(x)]
        return []

    g = Digraph(graph_attrs={"rankdir": "TB"})
    producer: dict = {}
    input_ids = {id(t): f"in{i}" for i, t in enumerate(tensors(ins))}
    for i, t in enumerate(tensors(ins)):
        g.nodes.append(
            (
                f"in{i}",
                {
                    "label": f"input {i}\n{_meta(t._data)}",
                    "shape": "box",
                    "style": "filled",
                    "fillcolor": "lightgrey",
                },
            )
        )
    for k, (name, mod, a, o) in enumerate(calls):
        outs = tensors(o)
        nparams = sum(p.numel() for p in mod.parameters(recurse=False))
        shape = " ".join(str(tuple(t.shape)) for t in outs[:2])
        g.nodes.append(
            (
                f"m{k}",
                {
                    "label": f"{name}\n{type(mod).__name__}"
                    + (f" ({nparams} params)" if nparams else "")
                    + f"\n-> {shape}",
                    "shape": "box",
                    "style": "rounded",
                },
            )
        )
        for t in outs:
            if t.grad_fn is not None:
                producer[(t.grad_fn, t._out_idx)] = f"m{k}"
            producer.setdefault(("id", id(t)), f"m{k}")
        srcs = []
        for t in tensors(a):
            srcs.extend(_sources(t, producer, input_ids))
        for s in dict.fromkeys(srcs):
            g.edges.append((s, f"m{k}", {}))
    final = tensors(out)
    for j, t in enumerate(final):
        g.nodes.append(
            (
                f"out{j}",
                {
                    "label": f"output\n{_meta(t._data)}",
                    "shape": "box",
                    "style": "filled",
                    "fillcolor": "darkolivegreen1",
                },
            )
        )
        for s in dict.fromkeys(_sources(t, producer, input_ids)):
            g.edges.append((s, f"out{j}", {}))
    return g


def _sources(t, producer, input_ids, limit: int = 10000):
    """Module calls (or model inputs) whose outputs feed ``t``, looking through bare ops."""
    if ("id", id(t)) in producer:
        return [producer[("id", id(t))]]
    if id(t) in input_ids:
        return [input_ids[id(t)]]
    if t.grad_fn is None:
        return []
    found = []
    seen = set()
    stack = [(t.grad_fn, t._out_idx)]
    while stack and len(seen) < limit:
        key = stack.pop()
        if key in seen:
            continue
        seen.add(key)
        if key in producer:
            found.append(producer[key])
            continue
        for e in key[0].next:
            if e is None:
                continue
            if isinstance(e[0], Node):
                stack.append((e[0], e[1]))
            elif id(e[0]) in input_ids:
                found.append(input_ids[id(e[0])])
    return found


_NODE_RE = re.compile(r'^\s*([A-Za-z_][\w]*|"(?:[^"\\]|\\.)*")\s*(\[(.*)\])?\s*;?\s*$')
_EDGE_RE = re.compile(
    r'^\s*([A-Za-z_][\w]*|"(?:[^"\\]|\\.)*")\s*->\s*([A-Za-z_][\w]*|"(?:[^"\\]|\\.)*")\s*'
    r"(\[(.*)\])?\s*;?\s*$"
)
_ATTR_RE = re.compile(r'(\w+)\s*=\s*("(?:[^"\\]|\\.)*"|[\w.]+)')


def parse_dot(source: str):
    """Parse the DOT subset that :class:`Digraph` writes (one statement per line).

    Returns ``(nodes, edges)``: ``nodes`` maps id -> attribute dict, ``edges`` is a list of
    ``(src, dst)``. Raises ``ValueError`` on anything it cannot read, on an edge to an
    undeclared node, or on unbalanced braces — a structural check usable without Graphviz.
    """
    lines = [ln for ln in source.strip().splitlines() if ln.strip()]
    if not lines or not re.match(r'^\s*digraph\s+("(?:[^"\\]|\\.)*"|\w+)?\s*\{\s*$', lines[0]):
        raise ValueError("parse_dot: expected 'digraph NAME {' on the first line")
    if lines[-1].strip() != "}":
        raise ValueError("parse_dot: expected '}' on the last line")
    nodes: dict[str, dict] = {}
    edges: list[tuple[str, str]] = []

    def unq(s):
        if s.startswith('"'):
            return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), s[1:-1])
        return s

    for ln in lines[1:-1]:
        s = ln.strip()
        if re.match(r"^(node|edge|graph)\s*\[.*\]\s*;$", s) or re.match(
            r'^\w+=("(?:[^"\\]|\\.)*"|[\w.]+);$', s
        ):
            continue
        m = _EDGE_RE.match(s)
        if m:
            edges.append((unq(m.group(1)), unq(m.group(2))))
            continue
        m = _NODE_RE.match(s)
        if m:
            attrs = {k: unq(v) for k, v in _ATTR_RE.findall(m.group(3) or "")}
            nodes[unq(m.group(1))] = attrs
            continue
        raise ValueError(f"parse_dot: cannot parse line {ln!r}")
    for a, b in edges:
        if a not in nodes or b not in nodes:
            raise ValueError(f"parse_dot: edge {a} -> {b} uses an undeclared node")
    return nodes, edges

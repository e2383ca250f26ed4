"""``rg.compile(step_fn)``: trace one training step, then replay it as a static plan.

The first two calls run ``step_fn`` eagerly under a tracer that records every primitive op
(its Node class, params and which arrays it consumed), the backward pass (the engine's order
of vjps and where each gradient lands), and the opaque calls that are replayed as calls
(``Optimizer.step``/``zero_grad``, ``Module.zero_grad``, ``LRScheduler.step``,
``nn.utils.clip_grad_norm_``/``clip_grad_value_``). If both traces
agree, later calls replay the plan: each op's NumPy ``forward`` on the current arrays (no
Tensor wrappers, type promotion, broadcasting checks, module ``__call__`` or graph edges), the
recorded vjps in the engine's order with the engine's accumulation and ``.grad`` storing rules,
then the optimizer calls. The plan is turned into one generated straight-line Python function
(``retrograd/_compile/codegen.py``; the plan interpreter below stays as its fallback), with
fused array rules for the hot nodes: most repeat the node's arithmetic bit for bit; LayerNorm
row statistics, Linear's bias gradient and ``sum(p * p)`` use BLAS products, so losses and
parameters match eager within float32 rounding rather than bit for bit.

Flat buffers: when the step is ``opt.zero_grad(); ...; loss.backward(); opt.step()`` (LR
scheduler steps may follow) with ``SGD``, ``Adam`` or ``AdamW`` over exactly the parameters that
get gradients, the parameters' arrays become views into one buffer (same values; ``p.data`` is
rebound once, when the plan is built), their ``.grad`` tensors views into another and the
optimizer's state arrays (momentum buffers, moments, step counters) views into one buffer per
key, so the update is the optimizer's own arithmetic run once per parameter group on the whole
buffer (bit-identical to its loop). ``.grad`` is set after every replayed step as in eager, but
the same gradient tensors are reused (overwritten) from one step to the next. The options,
``lr`` and hooks of the optimizer are read on every call; when its state or hooks no longer
allow the whole-buffer update, its own ``step`` runs (on the views).

Guards (checked every call; on failure the step runs eagerly and is re-traced):
shapes/dtypes/requires_grad of Tensor arguments, equality of the other arguments, grad mode,
anomaly mode, the ``training`` flag and the parameter/buffer/submodule objects of every module
called while tracing, and shape/dtype/requires_grad/hooks of every tensor the step read from
outside (parameters, closure data: read live, so in-place updates and ``.data =`` are seen).
Output shapes are re-checked op by op during replay.

Not replayable (the step then runs eagerly, with one RuntimeWarning; ``fullgraph=True``
raises): in-place ops outside the optimizer (BatchNorm running stats),
``autograd.grad``/``retain_graph``/``create_graph``/``backward(inputs=)``, custom
``autograd.Function``s, multi-output nodes, tensor or module hooks, reading a tensor's value
(``item()``, ``bool()``...) before the step's last op (data-dependent control flow), arrays
built outside the traced ops other than Python numbers and ``zeros/ones/full/arange/...``
results (dropout masks, pooling indices, nanoGPT's causal mask), and returning a tensor that
requires grad without having called backward on it (a replay returns no graph).

Like ``torch.compile``, this cannot see Python state that is not a tensor: a Python number
that changes from call to call *after* the first two (a hand-made schedule computed inside
the step, a step counter) or a ``p.grad = None`` done by hand inside the step is baked in.
Other Python side effects of the step (logging, appending to a list) happen only on traced
calls; the returned tensor is detached. Call ``compiled.reset()`` after changing such state.
Tracing patches retrograd's op entry points for the duration of the call (ops of other
threads are not recorded); a compiled step called while another is being traced runs eagerly.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable

import numpy as np

from ._compile.codegen import same_leaf
from .autograd import engine as _engine
from .autograd import node as _node
from .autograd.grad_mode import STATE
from .tensor import Tensor

__all__ = ["compile"]

_make = Tensor._make
_ACTIVE: list = []  # the tracer of the running trace (a stack of one)
_MAX_PLANS = 8
_MAX_MISMATCHES = 3  # disagreeing trace pairs before a step is left eager for good


class _Untraceable(Exception):
    """The step does something the replay cannot reproduce."""


class _SlotRef:
    """An op param that is the array of a traced slot (an index tensor, a target)."""

    __slots__ = ("slot", "shape")

    def __init__(self, slot, shape):
        self.slot, self.shape = slot, shape

    def __eq__(self, other):
        return type(other) is _SlotRef and (other.slot, other.shape) == (self.slot, self.shape)

    __hash__ = None


class _Version:
    """A version counter that never moves (replayed nodes' saved outputs are never written)."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0


_FIXED = _Version()


# --- tracing ---------------------------------------------------------------------------


class _Trace:
    """What one eager call did: ops over numbered slots, events, backward orders."""

    def __init__(self, args_tensors):
        self.slot_of: dict = {}  # id(Tensor) -> slot
        self.keep: list = []  # every tensor seen, so that ids are not reused while tracing
        self.leaves: list = []  # (slot, tensor) for tensors not produced by a traced op
        self.arg_ids = {id(t): i for i, t in enumerate(args_tensors)}
        self.arg_data = {id(t._data): i for i, t in enumerate(args_tensors)}
        self.args = list(args_tensors)
        self.data_slot: dict = {}  # id(ndarray) -> slot holding it
        self.data_owner: dict = {}  # id(ndarray) -> a tensor whose ._data was read as it
        self.ops: list = []  # (cls, in_slots, params, out_slot, node|None, out shape, dtype)
        self.events: list = []  # ("fwd", i0, i1) | ("call", ...) | ("bwd", ...) | ("item", s)
        self.n_slots = 0
        self.paused = 0
        self.thread = threading.get_ident()
        self.bad: str | None = None
        self.modules: dict = {}  # id -> (module, training)
        self.det: set = set()  # ids of tensors made by deterministic creation functions
        self.bwd_nodes: list | None = None
        self.bwd_leaves: list | None = None
        self.first_read = -1  # index in events at which a value was first read

    def fail(self, why: str):
        if self.bad is None:
            self.bad = why

    def slot(self, t) -> int:
        s = self.slot_of.get(id(t))
        if s is None:
            if t.grad_fn is not None:
                self.fail(f"a tensor produced outside the traced ops ({t.grad_fn.name()})")
            if not t._requires_grad and id(t) not in self.arg_ids:
                s = self.data_slot.get(id(t._data))
                if s is not None:  # an alias (detach(), .data) of a traced value
                    self.slot_of[id(t)] = s
                    self.keep.append(t)
                    return s
            s = self.n_slots
            self.n_slots += 1
            self.slot_of[id(t)] = s
            self.keep.append(t)
            self.leaves.append((s, t))
            self.data_slot.setdefault(id(t._data), s)
        return s

    def params(self, params):
        """Arrays in op params (also inside tuples/lists: advanced indices) that are some
        traced tensor's data become slot references."""
        return {k: self._param(v) for k, v in params.items()}

    def _param(self, v):
        if isinstance(v, np.ndarray):
            ref = self.find(v)
            return v if ref is None else ref
        if type(v) in (tuple, list):
            return type(v)(self._param(x) for x in v)
        return v

    def find(self, v):
        """A reference to the traced slot whose array is ``v`` or a whole-array reshape of
        it (``target.reshape(-1)``), else None."""
        a = v
        while isinstance(a, np.ndarray):
            i = self.arg_data.get(id(a))
            if i is not None:
                self.slot(self.args[i])
            s = self.data_slot.get(id(a))
            if s is None:
                owner = self.data_owner.get(id(a))
                if owner is not None:  # read from a tensor's ._data by the functional
                    s = self.slot(owner)
            if s is not None:
                if a is v:
                    return _SlotRef(s, None)
                if (
                    a.size == v.size
                    and a.dtype == v.dtype
                    and a.flags.c_contiguous
                    and v.flags.c_contiguous
                    and a.__array_interface__["data"][0] == v.__array_interface__["data"][0]
                ):
                    return _SlotRef(s, v.shape)
                return None
            a = a.base
        return None

    def record(self, cls, tensors, params, res):
        ins = tuple([self.slot(t) for t in tensors])
        s = self.n_slots
        self.n_slots += 1
        self.slot_of[id(res)] = s
        self.keep.append(res)
        self.data_slot[id(res._data)] = s
        node = res.grad_fn
        if node is not None:
            if type(node) is not cls or cls.n_outputs != 1:
                self.fail(f"op {cls.__name__} has several outputs or a foreign node")
        d = res._data
        ev = self.events
        if ev and ev[-1][0] == "fwd":
            ev[-1] = ("fwd", ev[-1][1], len(self.ops) + 1)
        else:
            ev.append(("fwd", len(self.ops), len(self.ops) + 1))
        self.ops.append(
            (cls, ins, self.params(params) if params else None, s, node, d.shape, d.dtype)
        )


def _tracer():
    """The running trace, if this thread started it (other threads' ops are not traced)."""
    if _ACTIVE:
        tr = _ACTIVE[-1]
        if tr.thread == threading.get_ident():
            return tr
    return None


def _traced_apply(cls, tensors, params=None):
    res = _ORIG["apply"](cls, tensors, params)
    tr = _tracer()
    if tr is not None and not tr.paused:
        tr.record(cls, tensors, params, res)
    return res


def _traced_run_backward(roots, grads, retain_graph, create_graph, inputs=None, capture=False):
    tr = _tracer()
    if tr is None or tr.paused:
        return _ORIG["run_backward"](roots, grads, retain_graph, create_graph, inputs, capture)
    if retain_graph or create_graph or inputs is not None or capture:
        tr.fail("autograd.grad, retain_graph, create_graph or backward(inputs=)")
    for r in roots:
        if id(r) not in tr.slot_of or r.grad_fn is None:
            tr.fail("backward from a tensor not produced by a traced op")
    if tr.bad is None:
        rs = tuple(tr.slot_of[id(r)] for r in roots)
        seeds = tuple(None if g is None else np.array(g._data) for g in grads)
        tr.bwd_nodes, tr.bwd_leaves = [], []
        tr.events.append(("bwd", rs, seeds, tr.bwd_nodes, tr.bwd_leaves))
    tr.paused += 1
    try:
        return _ORIG["run_backward"](roots, grads, retain_graph, create_graph, inputs, capture)
    finally:
        tr.paused -= 1
        tr.bwd_nodes = tr.bwd_leaves = None


def _traced_call(node, gs, check_nan=False):
    tr = _tracer()
    if tr is not None and tr.bwd_nodes is not None:
        if node.pre_hooks is not None or node.retained is not None:
            tr.fail("a tensor hook or retain_grad() on an intermediate")
        tr.bwd_nodes.append(node)
    return _ORIG["_call"](node, gs, check_nan)


def _traced_to_leaf(run, t, g, want_leaves, capture):
    tr = _tracer()
    if tr is not None and tr.bwd_leaves is not None:
        if t._hooks or t._post_hooks:
            tr.fail("a hook on a leaf tensor")
        tr.bwd_leaves.append(t)
    return _ORIG["_to_leaf"](run, t, g, want_leaves, capture)


def _traced_bump(self):
    tr = _tracer()
    if tr is not None and not tr.paused:
        tr.fail("an in-place op outside the optimizer")
    return _ORIG["_bump"](self)


def _data_property(slot):
    """``Tensor._data`` while tracing: remember which tensor each array was read from, so an
    op param made from ``target._data`` is bound to the tensor, not to this call's array."""
    get, put = slot.__get__, slot.__set__

    def fget(self):
        arr = get(self)
        tr = _tracer()
        if tr is not None and not tr.paused and type(arr) is np.ndarray:
            if id(arr) not in tr.data_owner:
                tr.data_owner[id(arr)] = self
                tr.keep.append(self)
        return arr

    return property(fget, put)


def _opaque(orig, idempotent: bool):
    """Wrap a method that is replayed as a call (optimizer step, zero_grad...)."""

    def wrapper(self, *args, **kwargs):
        tr = _tracer()
        if tr is None or tr.paused:
            return orig(self, *args, **kwargs)
        if any(callable(a) for a in args) or any(callable(a) for a in kwargs.values()):
            tr.fail(f"{type(self).__name__}.{orig.__name__} with a closure")
        tr.events.append(("call", orig, self, args, kwargs, idempotent))
        tr.paused += 1
        try:
            return orig(self, *args, **kwargs)
        finally:
            tr.paused -= 1

    wrapper.__wrapped__ = orig
    return wrapper


def _opaque_fn(orig):
    """Wrap a whole-array NumPy utility run on ``.grad`` (``clip_grad_norm_``): replayed as a
    call, like the optimizer. A generator of parameters is materialised so that the replayed
    call sees the same tensors."""

    def wrapper(parameters, *args, **kwargs):
        tr = _tracer()
        if tr is None or tr.paused:
            return orig(parameters, *args, **kwargs)
        if not isinstance(parameters, Tensor | list | tuple):
            parameters = list(parameters)
        tr.events.append(("fcall", orig, parameters, args, kwargs, False))
        tr.paused += 1
        try:
            return orig(parameters, *args, **kwargs)
        finally:
            tr.paused -= 1

    wrapper.__wrapped__ = orig
    return wrapper


_GRAD_UTILS = ("clip_grad_norm_", "clip_grad_value_")


def _reader(orig):
    def wrapper(self, *args, **kwargs):
        tr = _tracer()
        out = orig(self, *args, **kwargs)
        if tr is not None and not tr.paused:
            if tr.first_read == -1:
                tr.first_read = len(tr.events)
            if orig.__name__ == "item" and id(self) in tr.slot_of:
                tr.events.append(("item", tr.slot_of[id(self)], out))
        return out

    return wrapper


def _module_state(m) -> tuple:
    """What a replay assumes of a module: its mode and which tensors/submodules it holds."""
    d = m.__dict__
    return (
        m.training,
        tuple(map(id, d["_parameters"].values())),
        tuple(map(id, d["_buffers"].values())),
        tuple(map(id, d["_modules"].values())),
    )


def _module_call(orig):
    def wrapper(self, *args, **kwargs):
        tr = _tracer()
        if tr is not None and not tr.paused:
            d = self.__dict__
            if d.get("_forward_pre_hooks") or d.get("_forward_hooks") or d.get("_backward_hooks"):
                tr.fail(f"hooks on a module ({type(self).__name__})")
            tr.modules[id(self)] = (self, _module_state(self))
        return orig(self, *args, **kwargs)

    return wrapper


def _creator(orig):
    """Creation functions whose result depends only on their Python arguments (compared
    between the traced calls), so their tensors may be replayed as constants."""

    def wrapper(*args, **kwargs):
        out = orig(*args, **kwargs)
        tr = _tracer()
        if tr is not None and not tr.paused and isinstance(out, Tensor) and out.grad_fn is None:
            tr.det.add(id(out))
            tr.slot(out)
        return out

    wrapper.__wrapped__ = orig
    return wrapper


_CREATORS = ("zeros", "ones", "full", "arange", "linspace", "eye", "zeros_like", "ones_like")
_ORIG: dict = {}
_READERS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


def _subclasses(cls):
    out, todo = [], [cls]
    while todo:
        c = todo.pop()
        out.append(c)
        todo.extend(c.__subclasses__())
    return out


def _install(undo: list) -> None:
    """Patch the hooks the tracer needs, noting (owner, name, original) in ``undo``."""
    from . import autograd as _ag
    from .nn.modules.module import Module
    from .optim import lr_scheduler as _lrs
    from .optim.optimizer import Optimizer

    def patch(owner, name, new):
        undo.append((owner, name, owner.__dict__[name] if isinstance(owner, type) else None))
        setattr(owner, name, new)

    _ORIG.update(
        apply=_node.apply,
        run_backward=_engine.run_backward,
        _call=_engine._call,
        _to_leaf=_engine._to_leaf,
        _bump=Tensor._bump,
    )
    for mod in list(sys.modules.values()):
        name = getattr(mod, "__name__", "") or ""
        if (name == "retrograd" or name.startswith("retrograd.")) and getattr(
            mod, "apply", None
        ) is _ORIG["apply"]:
            undo.append((mod, "apply", _ORIG["apply"]))
            mod.apply = _traced_apply
    from . import creation as _cr

    for fname in _CREATORS:
        orig = getattr(_cr, fname)
        new = _creator(orig)
        for mod in list(sys.modules.values()):
            name = getattr(mod, "__name__", "") or ""
            if (name == "retrograd" or name.startswith("retrograd.")) and getattr(
                mod, fname, None
            ) is orig:
                undo.append((mod, fname, orig))
                setattr(mod, fname, new)
    from .nn import utils as _nu

    for fname in _GRAD_UTILS:
        orig = getattr(_nu, fname)
        new = _opaque_fn(orig)
        for mod in list(sys.modules.values()):
            name = getattr(mod, "__name__", "") or ""
            if (name == "retrograd" or name.startswith("retrograd.")) and getattr(
                mod, fname, None
            ) is orig:
                undo.append((mod, fname, orig))
                setattr(mod, fname, new)
    for mod in (_ag, _engine):
        if getattr(mod, "run_backward", None) is _ORIG["run_backward"]:
            undo.append((mod, "run_backward", _ORIG["run_backward"]))
            mod.run_backward = _traced_run_backward
    undo.append((_engine, "_call", _ORIG["_call"]))
    _engine._call = _traced_call
    undo.append((_engine, "_to_leaf", _ORIG["_to_leaf"]))
    _engine._to_leaf = _traced_to_leaf
    patch(Tensor, "_bump", _traced_bump)
    patch(Tensor, "_data", _data_property(Tensor.__dict__["_data"]))
    for r in _READERS:
        patch(Tensor, r, _reader(Tensor.__dict__[r]))
    for cls in _subclasses(Optimizer):
        for m in ("step", "zero_grad"):
            if m in cls.__dict__:
                patch(cls, m, _opaque(cls.__dict__[m], m == "zero_grad"))
    for cls in _subclasses(_lrs.LRScheduler):
        if "step" in cls.__dict__:
            patch(cls, "step", _opaque(cls.__dict__["step"], False))
    for cls in _subclasses(Module):
        if "zero_grad" in cls.__dict__:
            patch(cls, "zero_grad", _opaque(cls.__dict__["zero_grad"], True))
        if "__call__" in cls.__dict__:
            patch(cls, "__call__", _module_call(cls.__dict__["__call__"]))


def _uninstall(undo):
    for owner, name, orig in reversed(undo):
        setattr(owner, name, orig)


def _trace(fn, args, kwargs, arg_tensors):
    tr = _Trace(arg_tensors)
    undo: list = []
    try:
        _install(undo)
        _ACTIVE.append(tr)
        try:
            out = fn(*args, **kwargs)
        finally:
            _ACTIVE.pop()
    finally:
        _uninstall(undo)
    return tr, out


# --- plans -----------------------------------------------------------------------------


def _same(a, b) -> bool:
    """Structural equality of op params / call arguments (arrays by value)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return a is b
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b) or (a != a and b != b)
    except Exception:
        return a is b


def _out_spec(out, tr):
    """How to rebuild the step's return value from the replayed slots."""
    if out is None:
        return ("none",)
    if isinstance(out, Tensor):
        s = tr.slot_of.get(id(out))
        if s is None:
            raise _Untraceable("the step returns a tensor not produced by a traced op")
        roots = {r for ev in tr.events if ev[0] == "bwd" for r in ev[1]}
        if out.grad_fn is not None and s not in roots:
            # the caller may backpropagate through it: a replay returns no graph
            raise _Untraceable(
                "the step returns a tensor that requires grad without calling backward() on "
                "it; compile the whole step (forward, backward, optimizer), or the forward "
                "under no_grad"
            )
        return ("tensor", s)
    if isinstance(out, tuple | list):
        return ("seq", type(out), tuple(_out_spec(o, tr) for o in out))
    for k, ev in enumerate(tr.events):
        if ev[0] == "item" and ev[2] is out:
            return ("item", k)
    if isinstance(out, int | float | str | bool):
        raise _Untraceable("the step returns a Python value not read from a traced tensor")
    raise _Untraceable(f"the step returns a {type(out).__name__}")


# --- replay rules ------------------------------------------------------------------------
# NOTE: (used by the plan interpreter, the fallback of the generated replay) the hottest
# nodes get array-only replay rules, so a replayed step makes no Node or Tensor for them.
# Each rule performs exactly the NumPy arithmetic of the node's forward and of its
# no-create_graph vjp, in the same order, so that results stay bit-identical to eager
# (tests/test_compile.py compares against eager). Other nodes replay through their own class.
# A forward rule returns (out, ctx); a vjp rule maps (g, inputs, out, ctx, next) to arrays.


def _stateless(cls):
    fwd = cls.forward
    return lambda ins, params: (fwd(None, *ins), None)


def _add_vjp(g, ins, out, ctx, nxt):
    return g, g


def _sub_vjp(g, ins, out, ctx, nxt):
    return g, (-g if nxt[1] is not None else None)


def _mul_fwd(ins, params):
    return ins[0] * ins[1], None


def _mul_vjp(g, ins, out, ctx, nxt):
    return (g * ins[1] if nxt[0] is not None else None), (
        g * ins[0] if nxt[1] is not None else None
    )


def _relu_vjp(g, ins, out, ctx, nxt):
    return (g * (out > 0),)


def _linear_vjp(g, ins, out, ctx, nxt):
    x, w = ins[0], ins[1]
    if 0 in g.strides:  # as the node's vjp: expanded grads would bypass BLAS
        g = np.ascontiguousarray(g)
    g2 = g.reshape(-1, g.shape[-1])
    gx = (g2 @ w).reshape(x.shape) if nxt[0] is not None else None
    gw = g2.T @ x.reshape(-1, x.shape[-1]) if nxt[1] is not None else None
    if len(ins) == 3:
        return gx, gw, (g2.sum(0) if nxt[2] is not None else None)
    return gx, gw


def _sum_fwd(ins, params):
    a = ins[0]
    axes, keepdim = params["axes"], params["keepdim"]
    return a.sum(axis=axes, keepdims=keepdim, dtype=params["dtype"]), (a.shape, axes, keepdim)


def _sum_vjp(g, ins, out, ctx, nxt):
    from .ops.reduce import _unreduce

    return (_unreduce(_make(g), *ctx)._data,)


def _ln_fwd(cls):
    def fwd(ins, params):
        node = cls()
        return node.forward(*ins, **params), node

    return fwd


def _ln_vjp(g, ins, out, node, nxt):
    from .ops.nn_ops import _mean

    xhat, k, n_aff = node.xhat, node.k, node.n_aff
    axes = tuple(range(xhat.ndim - k, xhat.ndim))
    lead = tuple(range(xhat.ndim - k))
    gxh = g * ins[1] if n_aff else g
    gx = None
    if nxt[0] is not None:
        a = _mean(gxh, axes)
        b = _mean(gxh * xhat, axes)
        gx = (gxh - a - xhat * b) * node.rstd
    gw = (g * xhat).sum(axis=lead) if n_aff >= 1 and nxt[1] is not None else None
    gb = g.sum(axis=lead) if n_aff >= 2 and nxt[2] is not None else None
    return (gx, gw, gb)[: 1 + n_aff]


_RULES: dict = {}


def _rules() -> dict:
    if not _RULES:
        from .ops import elementwise as E
        from .ops import nn_ops as N
        from .ops import reduce as R

        _RULES.update(
            {
                E.Add: (_stateless(E.Add), _add_vjp),
                E.Sub: (_stateless(E.Sub), _sub_vjp),
                E.Mul: (_mul_fwd, _mul_vjp),
                E.Relu: (_stateless(E.Relu), _relu_vjp),
                N.Linear: (_stateless(N.Linear), _linear_vjp),
                R.Sum: (_sum_fwd, _sum_vjp),
            }
        )
        for c in (N.LayerNorm, N._LayerNormAff, N._LayerNormAffBias):
            _RULES[c] = (_ln_fwd(c), _ln_vjp)
    return _RULES


class _Plan:
    """A replayable step built from two agreeing traces."""

    def __init__(self, t1: _Trace, t2: _Trace, out1, out2):
        for tr in (t1, t2):
            if tr.bad:
                raise _Untraceable(tr.bad)
            last = max((k for k, ev in enumerate(tr.events) if ev[0] != "item"), default=-1)
            if tr.first_read != -1 and tr.first_read <= last:
                raise _Untraceable(
                    "a tensor's value is read (item(), bool()...) before the step's last op: "
                    "data-dependent control flow cannot be replayed"
                )
        if (
            t1.n_slots != t2.n_slots
            or len(t1.ops) != len(t2.ops)
            or len(t1.events) != len(t2.events)
            or len(t1.leaves) != len(t2.leaves)
        ):
            raise _Untraceable("the two traced calls ran different ops")
        for a, b in zip(t1.ops, t2.ops):
            if (
                a[0] is not b[0]
                or a[1] != b[1]
                or a[3] != b[3]
                or (a[4] is None) != (b[4] is None)
                or a[5] != b[5]
                or a[6] != b[6]
                or not _same(a[2], b[2])
            ):
                raise _Untraceable(f"the two traced calls differ at op {a[0].__name__}")
        # leaves: arguments, live tensors (same object both times) or constants
        self.leaves = []  # (slot, kind, ref, shape, dtype, requires_grad)
        for (s1, l1), (s2, l2) in zip(t1.leaves, t2.leaves):
            if s1 != s2:
                raise _Untraceable("the two traced calls read different tensors")
            d = l2._data
            meta = (d.shape, d.dtype, l2._requires_grad)
            i1, i2 = t1.arg_ids.get(id(l1)), t2.arg_ids.get(id(l2))
            if i1 is not None or i2 is not None:
                if i1 != i2:
                    raise _Untraceable("an argument is used differently by the two calls")
                self.leaves.append((s2, "arg", i2) + meta)
            elif l1 is l2:
                self.leaves.append((s2, "live", l2) + meta)
            elif (
                not l1._requires_grad
                and not l2._requires_grad
                and (d.ndim == 0 or (id(l1) in t1.det and id(l2) in t2.det))
                and _same(l1._data, d)
            ):
                # Python numbers (0-d) and zeros/ones/arange... results: constants
                self.leaves.append((s2, "const", np.array(d)) + meta)
            else:
                raise _Untraceable(
                    "a tensor is made inside the step outside the traced ops (fresh data, "
                    "random numbers, a mask): it cannot be replayed as a constant"
                )
        self.modules = tuple(t2.modules.values())
        if {id(m) for m, _ in t1.modules.values()} != {id(m) for m, _ in self.modules}:
            raise _Untraceable("the two traced calls used different modules")
        self.n_slots = t2.n_slots
        # leaf tensors that receive gradients: index into self.leaves
        leaf_index = {}
        for j, (_s, kind, ref, *_rest) in enumerate(self.leaves):
            if kind != "const":
                leaf_index[id(ref) if kind == "live" else ("arg", ref)] = j
        arg_of = t2.arg_ids

        def leaf_key(t):
            i = arg_of.get(id(t))
            return leaf_index[("arg", i)] if i is not None else leaf_index[id(t)]

        op_of = {}
        self.ops = []
        self.ref_ops: set = set()  # ops whose params hold arrays filled on each call
        rules = _rules()
        for k, (cls, ins, params, s, node, shape, dtype) in enumerate(t2.ops):
            params = self._params(k, params, t1.ops[k][2], cls)
            meta = None
            if node is not None:
                op_of[node] = k
                nxt = tuple(None if e is None else 1 for e in node.next)
                meta = (nxt, node.in_meta, cls.save_inputs, cls.save_output)
            refs = k in self.ref_ops
            self.ops.append((cls, ins, params, s, meta, shape, dtype, rules.get(cls), refs))
        # events, with the backward passes resolved to op indices and slots
        self.events = []
        for e1, e2 in zip(t1.events, t2.events):
            if e1[0] != e2[0]:
                raise _Untraceable("the two traced calls ran different events")
            if e2[0] in ("call", "fcall"):
                if e1[1] is not e2[1] or not _same(e1[2], e2[2]) or not _same(e1[3:5], e2[3:5]):
                    raise _Untraceable(
                        "the two traced calls made different optimizer/clipping calls"
                    )
                self.events.append(e2[:5] + (e2[5],))
            elif e2[0] == "fwd":
                if e1[1:] != e2[1:]:
                    raise _Untraceable("the two traced calls ran different ops")
                self.events.append(e2)
            elif e2[0] == "item":
                if e1[1] != e2[1]:
                    raise _Untraceable("the two traced calls read different values")
                self.events.append(e2[:2])
            else:
                self.events.append(self._bwd(e1, e2, t1, op_of, leaf_key))
        self.out = _out_spec(out2, t2)
        if not _same(_strip(_out_spec(out1, t1)), _strip(self.out)):
            raise _Untraceable("the two traced calls returned different things")
        from ._compile import codegen

        self.fast = codegen.build(self)  # generated straight-line replay (None: interpret)

    def _bwd(self, e1, e2, t1, op_of, leaf_key):
        _, roots, seeds, nodes, leaves = e2
        if e1[1] != roots or not _same(e1[2], seeds) or len(e1[3]) != len(nodes):
            raise _Untraceable("the two traced backward passes differ")
        order = []
        for n in nodes:
            k = op_of.get(n)
            if k is None:
                raise _Untraceable(f"backward ran a node outside the trace ({n.name()})")
            s, meta = self.ops[k][3], self.ops[k][4]
            in_meta = meta[1]
            targets = []
            for e in n.next:
                if e is None:
                    targets.append(None)
                elif isinstance(e[0], _node.Node):
                    if e[0] not in op_of:
                        raise _Untraceable("a gradient flows into an untraced node")
                    targets.append(("n", self.ops[op_of[e[0]]][3]))
                else:
                    targets.append(("l", leaf_key(e[0])))
            edges = []
            for i, (tgt, m) in enumerate(zip(targets, in_meta)):
                if tgt is not None:
                    j = tgt[1] if tgt[0] == "n" else self.leaves[tgt[1]][0]
                    edges.append((i, j, m[1]))
            rule = self.ops[k][7]
            order.append((k, s, rule[1] if rule else None, tuple(edges)))
        if [op_of[n] for n in nodes] != [o for o in _t1_order(e1, t1)]:
            raise _Untraceable("the two traced backward passes ran in different orders")
        leaf_order = tuple((self.leaves[j][0], j) for j in map(leaf_key, leaves))
        if len(set(leaf_order)) != len(leaf_order):
            raise _Untraceable("a leaf was stored twice in one backward")
        for g in seeds:
            if g is None or not (g == 1).all():
                raise _Untraceable("backward(gradient=) with a gradient other than ones")
        return ("bwd", roots, seeds, tuple(order), leaf_order)

    def _params(self, k, p2, p1, cls):
        """Op params: slot references are filled on each call; other arrays are read live
        (the same object, or the same window on one array, on both traced calls) or are
        0-d constants (equal values, checked); any other array is untrusted."""
        if not p2:
            return p2
        refs = [False]

        def conv(a, b):
            if type(b) is _SlotRef:
                refs[0] = True
                return b
            if isinstance(b, np.ndarray):
                if a is b or _same_view(a, b):
                    return b
                if b.ndim:  # made outside an op from unknown data: cannot be trusted
                    raise _Untraceable(
                        f"op {cls.__name__} takes an array computed outside the traced ops"
                    )
                return np.array(b)
            if type(b) in (tuple, list):
                return type(b)(conv(x, y) for x, y in zip(a, b))
            return b

        out = {name: conv(p1[name], v) for name, v in p2.items()}
        if refs[0]:
            self.ref_ops.add(k)
        return out

    # --- replay ------------------------------------------------------------------------
    def guard(self, arg_tensors) -> bool:
        for _s, kind, ref, shape, dtype, rg in self.leaves:
            if kind == "live":
                t = ref
            elif kind == "arg":
                t = arg_tensors[ref]
            else:
                continue
            if not same_leaf(t, shape, dtype, rg):
                return False
        for m, state in self.modules:
            if _module_state(m) != state:
                return False
        return True

    def run(self, arg_tensors):
        """Replay; returns (True, result) or (False, None) when a shape check fails before
        any side effect that cannot be redone."""
        vals = [None] * self.n_slots
        leaf_t = [None] * len(self.leaves)
        for j, (s, kind, ref, *_rest) in enumerate(self.leaves):
            if kind == "const":
                vals[s] = ref
            else:
                t = ref if kind == "live" else arg_tensors[ref]
                leaf_t[j] = t
                vals[s] = t._data
        ops = self.ops
        ctxs = [None] * len(ops)
        items = {}
        redo_ok = True
        with np.errstate(all="ignore"):
            for k, ev in enumerate(self.events):
                tag = ev[0]
                if tag == "fwd":
                    for i in range(ev[1], ev[2]):
                        cls, ins, params, s, meta, shape, dtype, rule, refs = ops[i]
                        if refs:
                            params = {n: _resolve(v, vals) for n, v in params.items()}
                        if rule is not None:
                            out, ctxs[i] = rule[0]([vals[j] for j in ins], params)
                        else:
                            node = cls()
                            if params is None:
                                out = node.forward(*[vals[j] for j in ins])
                            else:
                                out = node.forward(*[vals[j] for j in ins], **params)
                            if meta is not None:
                                ctxs[i] = node
                        if type(out) is not np.ndarray:
                            out = np.asarray(out)
                        if out.shape != shape or out.dtype != dtype:
                            if redo_ok:
                                return False, None
                            raise RuntimeError(
                                f"compile: replayed op {cls.__name__} gave {out.dtype}"
                                f"{out.shape}, traced {dtype}{shape}; call .reset() on the "
                                "compiled step"
                            )
                        vals[s] = out
                        if rule is None and meta is not None:
                            _arm(node, meta, ins, vals, out)
                elif tag == "call" or tag == "fcall":
                    _, fn, obj, args, kwargs, idem = ev
                    fn(obj, *args, **kwargs)
                    redo_ok = redo_ok and idem
                elif tag == "item":
                    items[k] = vals[ev[1]].item()
                else:
                    redo_ok = False
                    self._backward(ev, vals, ctxs, leaf_t, ops)
        return True, self._result(self.out, vals, items)

    def _backward(self, ev, vals, ctxs, leaf_t, ops):
        _, roots, seeds, order, leaf_order = ev
        run = _engine._Run(False, None, None)
        gbuf = [None] * len(vals)
        for s, g in zip(roots, seeds):
            g = np.array(g)
            run.given.add(_engine._owner(g))
            gbuf[s] = g if gbuf[s] is None else gbuf[s] + g
        prev = STATE.enabled
        STATE.enabled = False
        try:
            for k, s, vjp, edges in order:
                g = gbuf[s]
                if g is None:
                    continue
                gbuf[s] = None
                if vjp is not None:
                    op = ops[k]
                    res = vjp(g, [vals[j] for j in op[1]], vals[s], ctxs[k], op[4][0])
                else:
                    res = ctxs[k].backward(_make(g))
                    if type(res) is not tuple:
                        res = tuple(res) if isinstance(res, list) else (res,)
                for i, j, dt in edges:
                    a = res[i]
                    if a is None:
                        continue
                    if type(a) is not np.ndarray:
                        a = a._data if isinstance(a, Tensor) else np.asarray(a, dtype=dt)
                    if a.dtype is not dt and a.dtype != dt:
                        if dt.kind != "f":
                            continue
                        a = _make(a).to(dt)._data
                    cur = gbuf[j]
                    gbuf[j] = a if cur is None else cur + a
            given = run.given
            for j, li in leaf_order:
                a = gbuf[j]
                if a is None:
                    continue
                t = leaf_t[li]
                if t._grad is None:  # the engine's _Run.own + store, inlined
                    key = _engine._owner(a)
                    fl = a.flags
                    if key in given or not fl.writeable or not fl.c_contiguous:
                        a = np.array(a, order="C")
                        key = id(a)
                    given.add(key)
                    t._grad = _make(a)
                else:
                    run.store(t, _make(a))
        finally:
            STATE.enabled = prev

    def _result(self, spec, vals, items):
        tag = spec[0]
        if tag == "none":
            return None
        if tag == "tensor":
            v = vals[spec[1]]
            return _make(v if type(v) is np.ndarray else np.asarray(v))
        if tag == "item":
            return items[spec[1]]
        return spec[1](self._result(s, vals, items) for s in spec[2])


def _resolve(v, vals):
    """An op param with its slot references replaced by this call's arrays."""
    if type(v) is _SlotRef:
        a = vals[v.slot]
        return a if v.shape is None else a.reshape(v.shape)
    if type(v) in (tuple, list):
        return type(v)(_resolve(x, vals) for x in v)
    return v


def _root(a):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _same_view(a, b) -> bool:
    """``a`` and ``b`` are the same window on one array (``y._data.reshape(-1)`` made on two
    calls): the later one stays valid and follows in-place changes of the array."""
    return (
        isinstance(a, np.ndarray)
        and _root(a) is _root(b)
        and a.shape == b.shape
        and a.strides == b.strides
        and a.dtype == b.dtype
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    )


def _arm(node, meta, ins, vals, out):
    """Give a replayed node what ``apply`` records for its vjp."""
    nxt, in_meta, save_in, save_out = meta
    node.next = nxt
    node.in_meta = in_meta
    node.saved_versions = None  # every saved array is at version 0 (as apply records it)
    node.saved = tuple([_make(vals[ins[j]]) for j in save_in]) if save_in else ()
    if save_out:
        node.out_data = out
        node.out_version = (_FIXED, 0)
    else:
        node.out_data = None


def _t1_order(e1, t1):
    idx = {}
    for k, op in enumerate(t1.ops):
        if op[4] is not None:
            idx[op[4]] = k
    return [idx.get(n, -1) for n in e1[3]]


def _strip(spec):
    return spec[:2] if spec[0] != "seq" else (spec[0], spec[1], tuple(map(_strip, spec[2])))


# --- the public wrapper --------------------------------------------------------------


def _flatten(args, kwargs):
    tensors, key = [], []
    for a in list(args) + [kwargs[k] for k in sorted(kwargs)]:
        if isinstance(a, Tensor):
            tensors.append(a)
            key.append(("T", a._data.shape, a._data.dtype.str, a._requires_grad))
        else:
            key.append(("V", a))
    return tensors, key


class CompiledStep:
    """The callable returned by :func:`compile`."""

    def __init__(self, fn: Callable, fullgraph: bool = False, max_plans: int = _MAX_PLANS):
        self.fn = fn
        self.fullgraph = fullgraph
        self.max_plans = max_plans
        self.plans: list = []  # (key, plan)
        self.pending: list = []  # (key, trace, out) waiting for a second agreeing trace
        self.disabled: str | None = None
        self.replays = 0
        self.eager_calls = 0
        self.mismatches = 0
        self.__wrapped__ = fn
        self.__doc__ = getattr(fn, "__doc__", None)

    def reset(self) -> None:
        """Forget every plan: the next two calls trace again."""
        self.plans.clear()
        self.pending.clear()
        self.disabled = None
        self.mismatches = 0

    def __call__(self, *args, **kwargs):
        if self.disabled is not None or STATE.anomaly or _ACTIVE:
            # (inside another compiled step's trace: run eagerly so that it sees the ops)
            self.eager_calls += 1
            return self.fn(*args, **kwargs)
        tensors, key = _flatten(args, kwargs)
        key.append(STATE.enabled)
        for k, plan in self.plans:
            if _same(k, key):
                if plan.fast is not None:
                    ok, res = plan.fast(tensors)
                elif plan.guard(tensors):
                    ok, res = plan.run(tensors)
                else:
                    break
                if ok:
                    self.replays += 1
                    return res
                break
        return self._trace_call(args, kwargs, tensors, key)

    def _trace_call(self, args, kwargs, tensors, key):
        self.eager_calls += 1
        tr, out = _trace(self.fn, args, kwargs, tensors)
        prev = [p for p in self.pending if _same(p[0], key)]
        self.pending = [p for p in self.pending if not _same(p[0], key)]
        if tr.bad is not None:
            self._disable(tr.bad)
            return out
        if not prev:
            self.pending.append((key, tr, out))
            return out
        try:
            plan = _Plan(prev[0][1], tr, prev[0][2], out)
        except _Untraceable as e:
            # the first calls may differ (lazy init): compare the next pair before giving up
            self.mismatches += 1
            if self.mismatches >= _MAX_MISMATCHES:
                self._disable(str(e))
            else:
                self.pending.append((key, tr, out))
            return out
        except Exception as e:  # a case the plan builder does not know: stay eager, loudly
            self._disable(f"cannot build a replay plan ({type(e).__name__}: {e})")
            return out
        self.plans = [p for p in self.plans if not _same(p[0], key)]
        self.plans.append((key, plan))
        if len(self.plans) > self.max_plans:
            self.plans.pop(0)
        return out

    def _disable(self, why: str):
        if self.fullgraph:
            raise RuntimeError(f"retrograd.compile(fullgraph=True): {why}")
        self.disabled = why
        self.pending.clear()
        warnings.warn(
            f"retrograd.compile: {why}; running {getattr(self.fn, '__name__', 'the step')} "
            "eagerly from now on",
            RuntimeWarning,
            stacklevel=3,
        )


def compile(  # noqa: A001 - mirrors torch.compile
    model: Callable | None = None,
    *,
    fullgraph: bool = False,
    dynamic: bool | None = None,
    backend: str | Callable | None = None,
    mode: str | None = None,
    options: dict | None = None,
    name: str | None = None,
    disable: bool = False,
    recompile_limit: int | None = None,
    isolate_recompiles: bool = False,
    shapes_spec=None,
):
    """Trace a training step on its first two calls, then replay it without Python overhead.

    ``model`` (a function or Module) runs forward, ``backward()`` and optimizer calls; the
    result replays the same NumPy kernels and vjps in the same order from generated code, so
    losses and parameters match eager (within float32 rounding where a fused rule uses a BLAS
    product; see the module docstring). What cannot be replayed runs eagerly, with one
    warning (``fullgraph=True``: raises instead). ``disable=True`` returns ``model`` as is;
    ``recompile_limit`` caps the plans kept (one per input signature, default 8). There is
    one backend: ``dynamic``, ``backend``, ``mode``, ``options``, ``name``,
    ``isolate_recompiles`` and ``shapes_spec`` are accepted for PyTorch compatibility and
    ignored (plans are always specialised to shapes). See the module docstring for guards.
    Without ``model``, returns a decorator.

    >>> import retrograd as rg
    >>> lin = rg.nn.Linear(2, 1)
    >>> opt = rg.optim.SGD(lin.parameters(), lr=0.1)
    >>> x = rg.ones(4, 2)
    >>> def step():
    ...     opt.zero_grad()
    ...     loss = lin(x).pow(2).mean()
    ...     loss.backward()
    ...     opt.step()
    ...     return loss.item()
    >>> fast = rg.compile(step)
    >>> losses = [fast() for _ in range(4)]  # calls 1-2 trace, 3-4 replay
    >>> fast.replays
    2
    """
    if model is None:
        return lambda fn: compile(
            fn, fullgraph=fullgraph, disable=disable, recompile_limit=recompile_limit
        )
    if disable:
        return model
    if not callable(model):
        raise TypeError(f"compile(): expected a callable, got {type(model).__name__}")
    limit = _MAX_PLANS if recompile_limit is None else int(recompile_limit)
    if limit < 1:
        raise ValueError(f"compile(): recompile_limit must be >= 1, got {recompile_limit}")
    return CompiledStep(model, fullgraph=fullgraph, max_plans=limit)

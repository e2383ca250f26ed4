"""Turn a replay plan (``retrograd.compile._Plan``) into one generated Python function.

NOTE: interpreting a plan list costs a few microseconds of Python per op (tuple unpacking,
list indexing, dict look-ups), which on small arrays is as much as the NumPy call itself. The
generated function is straight-line code over local variables (``v<slot>`` for values,
``g<slot>`` for gradients), like ``torch.fx``'s code generation: one NumPy call per array op
for the nodes with an emitter here, a call to a small helper that runs the node's own class
for the others. Parameters updated by SGD/Adam/AdamW (their gradients and optimizer state)
live in one flat buffer each (``_Flat``), so the update runs once per parameter group.

Emitters repeat the node's NumPy arithmetic; a few use cheaper formulas with float32
rounding differences (LayerNorm's row statistics and the column sums of bias gradients via
``np.dot`` with a ones vector, ``sum(p * p)`` via ``np.vdot``): replayed losses and parameters
then match eager within float rounding, not bit for bit.
"""

from __future__ import annotations

import math
import operator
import warnings
import weakref

import numpy as np

from ..autograd import engine as _engine
from ..autograd.grad_mode import STATE
from ..ops._util import _EXTOBJ, _SILENT
from ..optim import sgd as _sgd
from ..tensor import Tensor


def same_leaf(t, shape, dtype, requires_grad) -> bool:
    """Whether ``t`` is still a hook-free leaf of the traced shape, dtype and requires_grad."""
    d = t._data
    return not (
        d.shape != shape
        or d.dtype != dtype
        or t._requires_grad != requires_grad
        or t.grad_fn is not None
        or t._hooks
        or t._post_hooks
    )

_make = Tensor._make
_LIVE_GET = operator.attrgetter("_data", "_requires_grad", "grad_fn", "_hooks", "_post_hooks")


class _Mismatch(Exception):
    """A generically replayed op gave another shape/dtype than traced."""

    def __init__(self, redo_ok: bool, msg: str):
        super().__init__(msg)
        self.redo_ok = redo_ok


class _Unsupported(Exception):
    """The plan has something the generator does not handle: keep the interpreter."""


# --- helpers called by generated code ------------------------------------------------------


def _generic_fwd(cls, params, meta, shape, dtype, redo_ok):
    """Forward of a node without an emitter: its own class, armed for its own backward."""
    from ..compile import _arm, _resolve

    n_refs = params is not None and any(_has_ref(v) for v in params.values())

    def fwd(ins, refvals=None):
        ins = [a if type(a) is np.ndarray else np.asarray(a) for a in ins]
        p = params
        if n_refs:
            p = {n: _resolve(v, refvals) for n, v in params.items()}
        node = cls()
        out = node.forward(*ins) if p is None else node.forward(*ins, **p)
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        if out.shape != shape or out.dtype != dtype:
            raise _Mismatch(
                redo_ok,
                f"compile: replayed op {cls.__name__} gave {out.dtype}{out.shape}, traced "
                f"{dtype}{shape}; call .reset() on the compiled step",
            )
        if meta is not None:
            _arm(node, meta, tuple(range(len(ins))), ins, out)
        return out, node

    return fwd


def _has_ref(v) -> bool:
    from ..compile import _SlotRef

    if type(v) is _SlotRef:
        return True
    if type(v) in (tuple, list):
        return any(_has_ref(x) for x in v)
    return False


def _generic_bwd(dts):
    """vjp of a node without an emitter: ``dts[i]`` is the dtype of input i's gradient, or
    None where no gradient flows (as in the interpreter's edge handling)."""

    def bwd(node, g):
        res = node.backward(_make(g))
        if type(res) is not tuple:
            res = tuple(res) if isinstance(res, list) else (res,)
        out = []
        for a, dt in zip(res, dts):
            if dt is None:
                out.append(None)
                continue
            if a is not None and type(a) is not np.ndarray:
                a = a._data if isinstance(a, Tensor) else np.asarray(a, dtype=dt)
            if a is None or (dt.kind != "f" and a.dtype != dt):
                # (the traces saw a gradient here: a data-dependent None cannot be replayed)
                raise _Mismatch(
                    False,
                    f"compile: replayed backward of {node.name()} gave no gradient where the "
                    "traced one did; call .reset() on the compiled step",
                )
            if a.dtype is not dt and a.dtype != dt:
                a = _make(a).to(dt)._data
            out.append(a)
        return out

    return bwd


def _store(run, t, a):
    """The engine's ``.grad`` store (``_Run.own`` + ``store``), for a plain leaf."""
    if type(a) is not np.ndarray:
        a = np.asarray(a)
    if t._grad is None:
        key = _engine._owner(a)
        fl = a.flags
        if key in run.given or not fl.writeable or not fl.c_contiguous:
            a = np.array(a, order="C")
            key = id(a)
        run.given.add(key)
        t._grad = _make(a)
    else:
        run.store(t, _make(a))


# --- flat parameter / gradient buffers ---------------------------------------------------------


class _Flat:
    """The parameters of one optimizer as views into one buffer, their gradients as views into
    another, and the optimizer's per-parameter state arrays (momentum buffers, Adam moments,
    step counters) as views into one buffer per key, so that ``step`` runs the optimizer's own
    arithmetic once per parameter group on the whole buffer: elementwise the same operations
    with the same scalars as its loop over parameters (bit-identical)."""

    def __init__(self, opt, step_fn, params, dtype, kind):
        self.opt, self.step_fn, self.kind = opt, step_fn, kind
        offs, n = [], 0
        for p in params:
            offs.append(n)
            n += -(-p._data.size // 16) * 16  # 64-byte aligned starts
        self.pbuf = np.zeros(n, dtype)
        self.gbuf = np.zeros(n, dtype)
        self.views, self.gviews, self.gtensors = [], [], []
        for p, o in zip(params, offs):
            d = p._data
            v = self.pbuf[o : o + d.size].reshape(d.shape)
            v[...] = d
            p._data = v
            gv = self.gbuf[o : o + d.size].reshape(d.shape)
            self.views.append(v)
            self.gviews.append(gv)
            self.gtensors.append(_make(gv))
        self.params = list(params)
        self.versions = [p._vc() for p in params]
        self.scratch = np.empty(n, dtype)
        # optimizer state: every parameter has the same keys (checked by _flat_setup)
        st0 = opt.state.get(params[0]) or {}
        self.keys = list(st0)
        self.sbufs: dict = {}
        self.steps = None
        for key in self.keys:
            if key == "step":  # one float32 counter per parameter, all equal
                self.steps = np.zeros(len(params), np.float32)
                for i, p in enumerate(params):
                    self.steps[i] = opt.state[p]["step"]._data
                    opt.state[p]["step"] = _make(self.steps[i : i + 1].reshape(()))
                continue
            buf = self.sbufs[key] = np.zeros(n, dtype)
            for p, o in zip(params, offs):
                v = buf[o : o + p._data.size].reshape(p._data.shape)
                v[...] = opt.state[p][key]._data
                opt.state[p][key] = _make(v)
        self.state_dicts = [opt.state.get(p) for p in params]
        self.stateless = not any(self.state_dicts)
        self.state_objs = [
            (d, [(k, d[k], d[k]._data) for k in self.keys]) for d in self.state_dicts if d
        ]
        index = {id(p): i for i, p in enumerate(params)}
        self.groups = []
        for grp in opt.param_groups:
            ps = grp["params"]
            if not ps:
                continue
            i0, i1 = index[id(ps[0])], index[id(ps[-1])]
            lo, hi = offs[i0], offs[i1] + ps[-1]._data.size
            fake = _make(self.pbuf[lo:hi])  # the whole group as one parameter
            fake._grad = _make(self.gbuf[lo:hi])
            fstate = {}
            for key in self.keys:
                fstate[key] = (
                    _make(np.zeros((), np.float32))
                    if key == "step"
                    else _make(self.sbufs[key][lo:hi])
                )
            self.groups.append((grp, ps, list(ps), fake, fstate))

    def intact(self) -> bool:
        return all(
            p._data is v and p._version is c
            for p, v, c in zip(self.params, self.views, self.versions)
        )

    def _state_intact(self) -> bool:
        state = self.opt.state
        if not state and self.stateless:  # (plain SGD: nothing to look up per parameter)
            return True
        if not all(map(operator.is_, map(state.get, self.params), self.state_dicts)):
            return False
        nk = len(self.keys)
        for d, objs in self.state_objs:
            if len(d) != nk:
                return False
            for k, t, arr in objs:
                if d.get(k) is not t or t._data is not arr:
                    return False
        return self.steps is None or self.steps.min() == self.steps.max()

    def step(self):
        opt = self.opt
        # (the state's identity was checked by the guard of this call: see _Fast.guard)
        if opt._step_pre_hooks or opt._step_post_hooks or len(opt.param_groups) != len(self.groups):
            return self.step_fn(opt)
        for grp, ps, snap, _fake, _fs in self.groups:
            if grp["params"] is not ps or len(ps) != len(snap):
                return self.step_fn(opt)
            if self.kind == "sgd" and grp["momentum"] != 0 and "momentum_buffer" not in self.keys:
                return self.step_fn(opt)  # (momentum switched on later: buffers made by it)
            if self.kind == "adam" and grp["amsgrad"] and "max_exp_avg_sq" not in self.keys:
                return self.step_fn(opt)
        with np.errstate(all="ignore"):
            for grp, _ps, _snap, fake, fstate in self.groups:
                if self.kind == "sgd":
                    self._sgd(grp, fake, fstate)
                else:
                    fstate["step"]._data[...] = self.steps[0]
                    opt._update(fake, fstate, opt._options(grp), *opt._buffers(fake._data))
        if self.steps is not None:
            self.steps += 1
        for v in self.versions:
            v.value += 1
        opt._opt_called = True
        return None

    def _sgd(self, grp, fake, fstate):
        """``SGD.step``'s update for one parameter, on the whole group at once."""
        lr = float(grp["lr"])
        momentum = float(grp["momentum"])
        dampening = float(grp["dampening"])
        wd = float(grp["weight_decay"])
        data = fake._data
        if momentum == 0 and wd == 0 and not grp["maximize"]:
            # the eager step's ``data -= g * lr`` (== ``data += g * -lr``, its other path)
            tmp = self.scratch[: data.size]
            np.multiply(fake._grad._data, lr, out=tmp)
            data -= tmp
            return
        s1, s2 = self.opt._buffers(data)
        g = self.opt._grad_of(fake, grp["maximize"], wd, s2)
        buf = None
        if momentum != 0:
            buf = fstate["momentum_buffer"]._data
            _sgd.momentum_update(buf, g, momentum, dampening, s1)
        _sgd.descend(data, g, buf, lr, momentum, grp["nesterov"], s1, s2)

    def store_grads(self):
        for p, gt in zip(self.params, self.gtensors):
            p._grad = gt


def _same_objects(a: list, b: list) -> bool:
    return len(a) == len(b) and all(map(operator.is_, a, b))


_FLATS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # optimizer -> its _Flat


def _flat_setup(plan):
    """``(zero_grad event, step event, opt, step fn, params, dtype, kind)`` when the step is
    ``opt.zero_grad(); ...; backward(); opt.step()`` (then LR-scheduler steps) with SGD, Adam
    or AdamW over exactly the leaves the backward reaches, and their state can be flattened;
    else None."""
    from ..optim.adam import Adam, AdamW
    from ..optim.lr_scheduler import LRScheduler
    from ..optim.optimizer import Optimizer
    from ..optim.sgd import SGD

    evs = plan.events
    bwd = [k for k, ev in enumerate(evs) if ev[0] == "bwd"]
    calls = [k for k, ev in enumerate(evs) if ev[0] in ("call", "fcall")]
    if len(bwd) != 1 or len(calls) < 2:
        return None
    kz, ks = calls[:2]
    # after the update, only LR schedulers (they change group["lr"], read on every step)
    if any(evs[k][0] != "call" or not isinstance(evs[k][2], LRScheduler) for k in calls[2:]):
        return None
    ez, es = evs[kz], evs[ks]
    if not (kz < bwd[0] < ks):
        return None
    if ez[0] != "call" or ez[1] is not Optimizer.__dict__["zero_grad"]:
        return None
    opt = es[2]
    kind = {SGD: "sgd", Adam: "adam", AdamW: "adam"}.get(type(opt))
    if es[0] != "call" or kind is None or es[1] is not type(opt).step:
        return None
    if ez[2] is not opt or es[3] or es[4]:
        return None
    if not (ez[3] in ((), (True,)) and ez[4] in ({}, {"set_to_none": True})):
        return None
    params = [p for grp in opt.param_groups for p in grp["params"]]
    if len({id(p) for p in params}) != len(params) or not params:
        return None
    leaf_order = evs[bwd[0]][4]
    stored = [plan.leaves[li][2] for _s, li in leaf_order if plan.leaves[li][1] == "live"]
    if len(stored) != len(leaf_order) or {id(p) for p in stored} != {id(p) for p in params}:
        return None
    dt = params[0]._data.dtype
    for p in params:
        d = p._data
        if d.dtype != dt or dt.kind != "f" or not p._requires_grad or type(d) is not np.ndarray:
            return None
        if p._hooks or p._post_hooks or p.grad_fn is not None:
            return None
    if not _state_flattenable(opt, params, kind):
        return None
    # parameters sharing memory (tied by hand through one array) are updated twice in eager:
    # separate flat views would change that
    bounds = sorted(_byte_bounds(p._data) for p in params if p._data.size)
    if any(a[1] > b[0] for a, b in zip(bounds, bounds[1:])):
        return None
    return (kz, ks, opt, es[1], params, dt, kind)


def _state_flattenable(opt, params, kind) -> bool:
    """Every parameter's optimizer state has the same keys: arrays shaped like it, and (Adam)
    equal float32 step counters."""
    states = [opt.state.get(p) or {} for p in params]
    keys = list(states[0])
    allowed = {
        "sgd": {"momentum_buffer"},
        "adam": {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    }
    if not set(keys) <= allowed[kind] or (kind == "adam" and keys and keys[0] != "step"):
        return False
    if kind == "adam" and not keys:
        return False  # (Adam's lazily created state: the traced steps always made it)
    step0 = None
    for p, st in zip(params, states):
        if list(st) != keys:
            return False
        for k in keys:
            t = st[k]
            if not isinstance(t, Tensor) or type(t._data) is not np.ndarray:
                return False
            a = t._data
            if k == "step":
                if a.shape != () or a.dtype != np.float32:
                    return False
                step0 = float(a) if step0 is None else step0
                if float(a) != step0:
                    return False
            elif a.shape != p._data.shape or a.dtype != p._data.dtype:
                return False
    return True


try:
    from numpy.lib.array_utils import byte_bounds as _byte_bounds
except ImportError:  # pragma: no cover - NumPy 1.x
    _byte_bounds = np.byte_bounds


# --- the generator -----------------------------------------------------------------------------


class _Gen:
    def __init__(self, plan):
        self.plan = plan
        self.lines: list = []
        self.ind = 1
        self.ns: dict = {"np": np, "_make": _make, "_store": _store}
        self.n = 0
        self.nm: dict = {}  # slot -> expression of its value
        self.ctx: dict = {}  # op index -> names the forward left for the backward
        self.tmp = 0

    def const(self, obj, prefix="C") -> str:
        name = f"{prefix}{self.n}"
        self.n += 1
        self.ns[name] = obj
        return name

    def emit(self, line: str):
        self.lines.append("    " * self.ind + line)

    def fresh(self, prefix="t") -> str:
        self.tmp += 1
        return f"{prefix}{self.tmp}"


def build(plan):
    """The fast replay of ``plan`` (a ``_Fast``), or None if it has something unsupported."""
    try:
        return _Fast(plan)
    except _Unsupported:
        return None
    except Exception as e:  # a generator bug must cost speed, not the replay: interpret
        warnings.warn(
            f"retrograd.compile: code generation failed ({type(e).__name__}: {e}); replaying "
            "with the plan interpreter",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


class _Fast:
    """A plan's generated replay, with a cheap guard in front of it."""

    def __init__(self, plan):
        self.plan = plan
        flat = _flat_setup(plan)
        self.flat = None
        self.src = ""
        G = _Gen(plan)
        self.G = G
        self.flat_info = flat
        if flat is not None:
            kz, ks, opt, step_fn, params, dt, kind = flat
            # plans of one step for several input shapes share the buffers (rebinding the
            # parameters for each plan would make every switch of shape re-trace)
            prev = _FLATS.get(opt)
            if (
                prev is not None
                and _same_objects(prev.params, params)
                and prev.intact()
                and prev._state_intact()
            ):
                self.flat = prev
            else:
                self.flat = _FLATS[opt] = _Flat(opt, step_fn, params, dt, kind)
            G.ns["FLAT"] = self.flat
        self._uses(plan)
        self._gen(plan, G)
        code = "def _replay(A):\n" + "\n".join(G.lines) + "\n"
        self.src = code
        exec(compile(code, "<retrograd.compile replay>", "exec"), G.ns)
        self.fn = G.ns["_replay"]
        # the guard: live leaves by identity of their state, arguments by shape
        self.live = [ref for _s, kind, ref, *_r in plan.leaves if kind == "live"]
        self.expect = list(map(_LIVE_GET, self.live))
        if any(h is not None for c in self.expect for h in c[3:]):
            self.expect = None  # a hook dict could gain hooks unseen by identity checks
        self.args = [
            (ref, shape, dtype, rg)
            for _s, kind, ref, shape, dtype, rg in plan.leaves
            if kind == "arg"
        ]
        self.mods = self._mod_guard(plan.modules)

    # --- guard ----------------------------------------------------------------------------
    @staticmethod
    def _mod_guard(mods):
        """One generated expression over every module the step called: its ``training`` flag
        and the very objects held in its ``_parameters``/``_buffers``/``_modules`` dicts."""
        from ..compile import _module_state

        ns: dict = {}
        conds = []
        for i, (m, state) in enumerate(mods):
            d = m.__dict__
            if _module_state(m) != state:
                conds = ["False"]  # changed since the trace: this plan never matches
                break
            ns[f"D{i}"], ns[f"M{i}"] = d, m
            if type(d.get("training")) is bool:
                conds.append(f"D{i}['training'] is {d['training']}")
            else:
                conds.append(f"M{i}.training == {m.training!r}")
            for key in ("_parameters", "_buffers", "_modules"):
                held = d[key]
                conds.append(f"len(D{i}['{key}']) == {len(held)}")
                for name, obj in held.items():
                    o = f"O{len(ns)}"
                    ns[o] = obj
                    conds.append(f"D{i}['{key}'].get({name!r}) is {o}")
        src = "def _mods_ok():\n    return (" + " and\n        ".join(conds or ["True"]) + ")\n"
        exec(compile(src, "<retrograd.compile guard>", "exec"), ns)
        return ns["_mods_ok"]

    def guard(self, A) -> bool:
        for ref, shape, dtype, rg in self.args:
            if not same_leaf(A[ref], shape, dtype, rg):
                return False
        try:
            ok = list(map(_LIVE_GET, self.live)) == self.expect
        except Exception:  # an array compared elementwise: some ._data was rebound
            ok = False
        if not ok:
            if not self.plan.guard(A) or (self.flat is not None and not self.flat.intact()):
                return False
            cur = list(map(_LIVE_GET, self.live))
            if all(h is None for c in cur for h in c[3:]):
                self.expect = cur  # (hook dicts, even empty: this slow path on every call)
        try:
            if not self.mods():
                return False
        except Exception:  # (a module's dicts replaced by something else)
            return False
        # optimizer state replaced (load_state_dict): re-trace, so that a new flat layout
        # adopts it
        return self.flat is None or self.flat._state_intact()

    def __call__(self, A):
        if not self.guard(A):
            return False, None
        tok = _EXTOBJ.set(_SILENT)
        try:
            vals, items = self.fn(A)
        except _Mismatch as e:
            if e.redo_ok:
                return False, None
            raise RuntimeError(str(e)) from None
        finally:
            _EXTOBJ.reset(tok)
        return True, self.plan._result(self.plan.out, vals, items)

    # --- generation ---------------------------------------------------------------------------
    def _uses(self, plan):
        """How each slot is used: by how many ops, and whether it must survive as is."""
        uses: dict = {}
        for op in plan.ops:
            for j in op[1]:
                uses[j] = uses.get(j, 0) + 1
        pinned = set()
        for ev in plan.events:
            if ev[0] == "item":
                pinned.add(ev[1])
            elif ev[0] == "bwd":
                pinned.update(ev[1])

        def spec_slots(spec):
            if spec[0] == "tensor":
                pinned.add(spec[1])
            elif spec[0] == "seq":
                for s in spec[2]:
                    spec_slots(s)

        spec_slots(plan.out)
        for op in plan.ops:
            if op[2]:
                for v in op[2].values():
                    _ref_slots(v, pinned)
        self.uses, self.pinned = uses, pinned
        self.producer = {op[3]: k for k, op in enumerate(plan.ops)}
        self.consumer = {}
        for k, op in enumerate(plan.ops):
            for j in op[1]:
                self.consumer[j] = k

    def _square_summed(self, k, op) -> bool:
        """Mul k is ``p * p`` whose only reader is a full, float ``sum()``."""
        s = op[3]
        if self.uses.get(s) != 1 or s in self.pinned:
            return False
        c = self.plan.ops[self.consumer[s]]
        from ..ops.reduce import Sum

        return (
            c[0] is Sum
            and c[4] is not None
            and not c[8]
            and c[2]["dtype"] is None
            and not c[2]["keepdim"]
            and tuple(sorted(c[2]["axes"])) == tuple(range(len(op[5])))
            and c[6] == op[6]
            and op[4][0][0] is not None
        )

    def _gen(self, plan, G):
        flat = self.flat
        flat_view = {}
        if flat is not None:
            for p, v in zip(flat.params, flat.views):
                flat_view[id(p)] = v
        for s, kind, ref, *_r in plan.leaves:
            if kind == "const":
                G.nm[s] = G.const(ref)
            elif kind == "arg":
                G.nm[s] = f"v{s}"
                G.emit(f"v{s} = A[{ref}]._data")
            else:
                if id(ref) in flat_view:
                    G.nm[s] = G.const(flat_view[id(ref)], "P")
                else:
                    t = G.const(ref, "L")
                    G.nm[s] = f"v{s}"
                    G.emit(f"v{s} = {t}._data")
        redo_ok = True
        items = []
        for k, ev in enumerate(plan.events):
            tag = ev[0]
            if tag == "fwd":
                for i in range(ev[1], ev[2]):
                    self._fwd(G, i, plan.ops[i], redo_ok)
            elif tag in ("call", "fcall"):
                if flat is not None and k == self.flat_info[0]:
                    continue  # zero_grad: every .grad is rebound by this replay's backward
                if flat is not None and k == self.flat_info[1]:
                    G.emit("FLAT.step()")
                    redo_ok = False
                    continue
                _, fn, obj, args, kwargs, idem = ev
                f, o, a, kw = G.const(fn, "F"), G.const(obj, "O"), G.const(args), G.const(kwargs)
                G.emit(f"{f}({o}, *{a}, **{kw})")
                redo_ok = redo_ok and idem
            elif tag == "item":
                G.emit(f"it{k} = {G.nm[ev[1]]}.item()")
                items.append(k)
            else:
                redo_ok = False
                self._bwd(G, plan, ev)
        outs = sorted(_spec_slots(plan.out))
        G.emit(
            "return {"
            + ", ".join(f"{s}: {G.nm[s]}" for s in outs)
            + "}, {"
            + ", ".join(f"{k}: it{k}" for k in items)
            + "}"
        )

    def _fwd(self, G, k, op, redo_ok):
        cls, ins, params, s, meta, shape, dtype, _rule, refs = op
        em = _FWD.get(cls)
        if em is not None and em(self, G, k, op):  # (only _ce_fwd takes slot refs)
            return
        fn = G.const(_generic_fwd(cls, params, meta, shape, dtype, redo_ok), "GF")
        args = "[" + ", ".join(G.nm[j] for j in ins) + ",]"
        rv = ""
        if refs:
            rs: set = set()
            for v in params.values():
                _ref_slots(v, rs)
            rv = ", {" + ", ".join(f"{j}: {G.nm[j]}" for j in sorted(rs)) + "}"
        G.emit(f"v{s}, n{k} = {fn}({args}{rv})")
        G.nm[s] = f"v{s}"
        G.ctx[k] = "generic"

    def _bwd(self, G, plan, ev):
        _, roots, seeds, order, leaf_order = ev
        state: dict = {}  # grad slot -> "set" | "maybe"
        any_generic = any(G.ctx.get(k) == "generic" for k, *_r in order)
        flat = self.flat
        if any_generic or flat is None:
            G.ns["_Run"] = _engine._Run
            G.ns["_owner"] = _engine._owner
            G.emit("run = _Run(False, None, None)")
        if any_generic:
            G.ns["_ST"] = STATE
            G.emit("prev = _ST.enabled")
            G.emit("_ST.enabled = False")
            G.emit("try:")
            G.ind += 1
        for s, g in zip(roots, seeds):
            c = G.const(np.array(g))
            # (no generated vjp writes into its incoming gradient: the seed may be shared)
            seed = f"np.array({c})" if any_generic or flat is None else c
            if s in state:
                G.emit(f"g{s} = g{s} + {seed}")
            else:
                G.emit(f"g{s} = {seed}")
                state[s] = "set"
            if any_generic or flat is None:
                G.emit(f"run.given.add(_owner(g{s}))")
        flat_index = {}
        dest_of: dict = {}  # leaf grad slot -> its flat .grad view, where one vjp writes it
        final_of: dict = {}  # leaf grad slot -> its flat .grad view, for the last of its terms
        count: dict = {}
        if flat is not None:
            for i, p in enumerate(flat.params):
                flat_index[id(p)] = i
            has = set(roots)
            for _k, s, _vjp, edges in order:
                if s in has:
                    for _i, j, _dt in edges:
                        has.add(j)
                        count[j] = count.get(j, 0) + 1
            for j, li in leaf_order:
                t = plan.leaves[li][2]
                if id(t) in flat_index:
                    gv = G.const(flat.gviews[flat_index[id(t)]], "GV")
                    if count.get(j) == 1:
                        dest_of[j] = gv
                    else:
                        final_of[j] = gv
        written = set()
        seen: dict = {}
        for k, s, _vjp, edges in order:
            st = state.get(s)
            if st is None:
                continue
            opened = False
            if st == "maybe":
                for _i, j, _dt in edges:
                    if j not in state:
                        G.emit(f"g{j} = None")
                        state[j] = "maybe"
                G.emit(f"if g{s} is not None:")
                G.ind += 1
                opened = True
            dest = {} if opened else {i: dest_of[j] for i, j, _dt in edges if j in dest_of}
            contribs = self._vjp(G, k, plan.ops[k], f"g{s}", edges, dest)
            for (i, j, _dt), (expr, maybe) in zip(edges, contribs):
                if expr is None:  # (a fused vjp gave this input's whole gradient on another edge)
                    if j in count:
                        count[j] -= 1
                    continue
                seen[j] = seen.get(j, 0) + 1
                if expr == dest.get(i):
                    written.add(j)
                elif (
                    j in final_of
                    and seen[j] == count[j]
                    and state.get(j) == "set"
                    and not (maybe or opened)
                ):
                    # the last term of a flat parameter's gradient: add straight into .grad
                    G.emit(f"np.add(g{j}, {expr}, out={final_of[j]})")
                    G.emit(f"g{j} = {final_of[j]}")
                    written.add(j)
                    continue
                self._acc(G, state, j, expr, maybe or opened)
            G.emit(f"del g{s}")
            if opened:
                G.ind -= 1
            state.pop(s, None)
            if opened:
                state[s] = "gone"
        if any_generic:
            G.ind -= 1
            G.emit("finally:")
            G.emit("    _ST.enabled = prev")
        # .grad stores
        for j, li in leaf_order:
            st = state.get(j)
            if st is None:
                if flat is not None:
                    raise _Unsupported("a flat parameter got no gradient")
                continue
            t = plan.leaves[li][2]
            if flat is not None:
                if st != "set":
                    raise _Unsupported("a flat parameter may get no gradient")
                if j in written:
                    continue
                gv = G.const(flat.gviews[flat_index[id(t)]], "GV")
                G.emit(f"{gv}[...] = g{j}")
            else:
                tn = G.const(t, "T") if plan.leaves[li][1] == "live" else f"A[{t}]"
                if st == "maybe":
                    G.emit(f"if g{j} is not None: _store(run, {tn}, g{j})")
                else:
                    G.emit(f"_store(run, {tn}, g{j})")
        if flat is not None:
            G.emit("FLAT.store_grads()")

    def _acc(self, G, state, j, expr, maybe):
        st = state.get(j)
        if maybe:
            if st is None:
                G.emit(f"g{j} = None")
            G.emit(f"a_ = {expr}")
            G.emit(f"if a_ is not None: g{j} = a_ if g{j} is None else g{j} + a_")
            state[j] = "maybe" if st != "set" else "set"
            return
        if st is None or st == "gone":
            G.emit(f"g{j} = {expr}")
            state[j] = "set"
        elif st == "set":
            G.emit(f"g{j} = g{j} + {expr}")
        else:
            G.emit(f"g{j} = {expr} if g{j} is None else g{j} + {expr}")
            state[j] = "set"

    def _vjp(self, G, k, op, g, edges, dest):
        """Emit the vjp of op k for the inputs in ``edges``; (expression, may be None) each."""
        cls = op[0]
        if G.ctx.get(k) == "generic":
            dts = [None] * len(op[1])
            for i, _j, dt in edges:
                dts[i] = dt
            b = G.const(_generic_bwd(tuple(dts)), "GB")
            r = G.fresh("r")
            G.emit(f"{r} = {b}(n{k}, {g})")
            G.emit(f"del n{k}")
            return [(f"{r}[{i}]", False) for i, _j, _dt in edges]
        want = {i for i, _j, _dt in edges}
        exprs = _BWD[cls](self, G, k, op, g, want, dest)
        return [(exprs[i], False) for i, _j, _dt in edges]


def _ref_slots(v, out: set):
    from ..compile import _SlotRef

    if type(v) is _SlotRef:
        out.add(v.slot)
    elif type(v) in (tuple, list):
        for x in v:
            _ref_slots(x, out)


def _spec_slots(spec):
    if spec[0] == "tensor":
        return {spec[1]}
    if spec[0] == "seq":
        out: set = set()
        for s in spec[2]:
            out |= _spec_slots(s)
        return out
    return set()


# --- emitters ----------------------------------------------------------------------------------
# A forward emitter writes the op's value into ``v<slot>`` (or names it in G.nm) and returns
# True, or returns False to leave the op to the generic helper. A backward emitter returns a
# dict input index -> expression for the inputs in ``want``.


def _floaty(op, n=None) -> bool:
    """Every input and the output share one float dtype (no promotion inside the op)."""
    dt = op[6]
    if dt.kind != "f" or dt.itemsize < 4:
        return False
    meta = op[4]
    if meta is not None:
        ins_meta = meta[1]
        if n is not None and len(ins_meta) != n:
            return False
        return all(m[1] == dt for m in ins_meta)
    return False


def _binary(sym):
    def fwd(self, G, k, op):
        if op[4] is None or not _floaty(op, 2):
            return False
        if any(n is not None and m[0] != op[5] for n, m in zip(op[4][0], op[4][1])):
            # (inputs with a gradient are explicitly broadcast by the op; a 0-d constant
            # operand is not, and needs none)
            return False
        a, b = (G.nm[j] for j in op[1])
        s = op[3]
        if sym == "*" and op[1][0] == op[1][1] and self._square_summed(k, op):
            G.ctx[k] = ("sq", a)  # computed by the Sum that consumes it (np.vdot)
            G.nm[s] = None
            return True
        G.emit(f"v{s} = {a} {sym} {b}")
        G.nm[s] = f"v{s}"
        return True

    return fwd


def _add_bwd(self, G, k, op, g, want, dest):
    return {0: g, 1: g}


def _sub_bwd(self, G, k, op, g, want, dest):
    out = {0: g}
    if 1 in want:
        t = G.fresh()
        G.emit(f"{t} = -{g}")
        out[1] = t
    return out


def _mul_bwd(self, G, k, op, g, want, dest):
    ctx = G.ctx.get(k)
    if type(ctx) is tuple and ctx[0] == "sq" and want == {0, 1}:
        # d sum(p * p) = g * p + g * p == p * (g + g) bit for bit (doubling is exact)
        t = dest.get(0)
        if t is not None:
            G.emit(f"np.multiply({ctx[1]}, {g} + {g}, out={t})")
        else:
            t = G.fresh()
            G.emit(f"{t} = {ctx[1]} * ({g} + {g})")
        return {0: t, 1: None}
    a, b = (G.nm[j] for j in op[1])
    out = {}
    if 0 in want:
        t = G.fresh()
        G.emit(f"{t} = {g} * {b}")
        out[0] = t
    if 1 in want:
        if 0 in want and a == b:
            out[1] = out[0]  # p * p: both vjps are g * p (the same values)
        else:
            t = G.fresh()
            G.emit(f"{t} = {g} * {a}")
            out[1] = t
    return out


def _relu_fwd(self, G, k, op):
    if op[4] is None or not _floaty(op, 1) or not op[5]:
        return False
    (j,) = op[1]
    s = op[3]
    a = G.nm[j]
    pk = self.producer.get(j)
    if (
        pk is not None
        and self.plan.ops[pk][0].__name__ in ("Linear", "Add", "Sub")
        and G.ctx.get(pk) != "generic"
        and self.uses.get(j) == 1
        and j not in self.pinned
    ):
        # the input is a temporary nobody else reads: clamp it in place
        G.emit(f"np.maximum({a}, 0, out={a})")
    else:
        G.emit(f"v{s} = np.maximum({a}, 0)")
        a = f"v{s}"
    G.nm[s] = a
    return True


def _relu_bwd(self, G, k, op, g, want, dest):
    # g * sign(out) == g * (out > 0) bit for bit (out >= 0), and is cheaper than a bool mask
    t = G.fresh()
    G.emit(f"{t} = np.sign({G.nm[op[3]]})")
    G.emit(f"{t} *= {g}")
    return {0: t}


def _linear_fwd(self, G, k, op):
    if op[4] is None or not _floaty(op) or len(op[5]) != 2:
        return False
    x, w = G.nm[op[1][0]], G.nm[op[1][1]]
    s = op[3]
    wt = self._transposed(G, op[1][1], w)
    G.emit(f"v{s} = {x} @ {wt}")
    if len(op[1]) == 3:
        G.emit(f"v{s} += {G.nm[op[1][2]]}")
    G.nm[s] = f"v{s}"
    return True


def _transposed(self, G, j, w):
    if w.startswith("P"):  # a flat parameter: its view never changes while the plan lives
        return G.const(G.ns[w].T, "PT")
    return f"{w}.T"


_Fast._transposed = _transposed


def _linear_bwd(self, G, k, op, g, want, dest):
    x, w = G.nm[op[1][0]], G.nm[op[1][1]]
    G.emit(f"if 0 in {g}.strides: {g} = np.ascontiguousarray({g})")
    out = {}
    if 0 in want:
        t = G.fresh()
        G.emit(f"{t} = {g} @ {w}")
        out[0] = t
    if 1 in want:
        if 1 in dest:  # straight into the flat .grad buffer
            G.emit(f"np.matmul({g}.T, {x}, out={dest[1]})")
            out[1] = dest[1]
        else:
            t = G.fresh()
            G.emit(f"{t} = {g}.T @ {x}")
            out[1] = t
    if 2 in want:
        out[2] = _colsum(G, g, op[5][0], op[6], dest.get(2))
    return out


_DOT_MAX = 4096  # longest row/column summed by np.dot (sequential-ish float32 accumulation)


def _colsum(G, expr, rows, dt, dest) -> str:
    """Emit the column sums of the 2-D ``expr`` (``rows`` rows), into ``dest`` if given.
    NOTE: a ones-vector product (one BLAS call, ~2.5x faster than a pairwise add.reduce on
    small arrays; float32 rounding differs)."""
    if rows <= _DOT_MAX:
        ones = G.const(np.ones(rows, dt), "ONESR")
        call = f"np.dot({ones}, {expr}"
    else:
        call = f"np.add.reduce({expr}, axis=0"
    if dest is not None:
        G.emit(f"{call}, out={dest})")
        return dest
    t = G.fresh()
    G.emit(f"{t} = {call})")
    return t


def _sum_fwd(self, G, k, op):
    params = op[2]
    if op[4] is None or not _floaty(op, 1) or params["dtype"] is not None:
        return False
    s = op[3]
    pk = self.producer.get(op[1][0])
    pctx = G.ctx.get(pk) if pk is not None else None
    if type(pctx) is tuple and pctx[0] == "sq":
        # NOTE: sum(p * p) as one dot product (BLAS rounding, not a pairwise sum)
        x = G.ctx[pk][1]
        G.emit(f"v{s} = np.vdot({x}, {x})")
        G.nm[s] = f"v{s}"
        G.ctx[k] = "sq"
        return True
    a = G.nm[op[1][0]]
    axes, kd = params["axes"], params["keepdim"]
    G.emit(f"v{s} = np.add.reduce({a}, axis={axes!r}, keepdims={kd!r})")
    G.nm[s] = f"v{s}"
    return True


def _unreduce_src(G, g, in_shape, axes, keepdim, dt) -> str:
    """Emit ``_unreduce`` with its shapes resolved now (same results as the node's)."""
    in_shape = tuple(in_shape)
    kshape = tuple(1 if i in axes else n for i, n in enumerate(in_shape))
    out_shape = (
        kshape if keepdim or not axes else tuple(n for i, n in enumerate(in_shape) if i not in axes)
    )
    if out_shape == in_shape:
        return g
    t = G.fresh()
    if math.prod(in_shape) <= 65536:
        G.emit(f"{t} = np.empty({in_shape!r}, {G.const(dt)})")
        if kshape == out_shape or not out_shape:
            G.emit(f"{t}[...] = {g}")
        else:
            G.emit(f"{t}[...] = {g}.reshape({kshape!r})")
    else:
        G.emit(f"{t} = np.broadcast_to(np.reshape({g}, {kshape!r}), {in_shape!r})")
    return t


def _sum_bwd(self, G, k, op, g, want, dest):
    params = op[2]
    if G.ctx.get(k) == "sq":
        return {0: g}  # the scalar gradient of sum(p * p): the Mul's vjp scales p by it
    in_shape = op[4][1][0][0]
    return {0: _unreduce_src(G, g, in_shape, params["axes"], params["keepdim"], op[6])}


def _mean_fwd(self, G, k, op):
    params = op[2]
    if op[4] is None or not _floaty(op, 1):
        return False
    in_shape = op[4][1][0][0]
    axes, kd = params["axes"], params["keepdim"]
    count = math.prod(in_shape[i] for i in axes) if axes else 1
    if count == 0:
        return False
    s = op[3]
    a = G.nm[op[1][0]]
    # np.mean's own arithmetic: add.reduce, then a division by the count as an intp (so in
    # float64, rounded back), unrolled to skip np.mean's Python wrapper
    cnt, D = G.const(np.intp(count), "CNT"), G.const(op[6].type, "DT")
    G.emit(f"v{s} = np.add.reduce({a}, axis={axes!r}, keepdims={kd!r})")
    if op[5]:
        G.emit(f"np.true_divide(v{s}, {cnt}, out=v{s}, casting='unsafe')")
    else:
        G.emit(f"v{s} = {D}(v{s} / {cnt})")
    G.nm[s] = f"v{s}"
    G.ctx[k] = count
    return True


def _mean_bwd(self, G, k, op, g, want, dest):
    params = op[2]
    in_shape = op[4][1][0][0]
    t = G.fresh()
    G.emit(f"{t} = {g} / {G.ctx[k]}")
    return {0: _unreduce_src(G, t, in_shape, params["axes"], params["keepdim"], op[6])}


def _ln_fwd(self, G, k, op):
    params = op[2]
    if op[4] is None or not _floaty(op):
        return False
    kk, eps = params["k"], params["eps"]
    nd = len(op[5])
    axes = tuple(range(nd - kk, nd))
    n = math.prod(op[5][a] for a in axes)
    x = G.nm[op[1][0]]
    s = op[3]
    dt = op[6]
    c = f"c{k}_"
    G.ctx[k] = (c, axes, tuple(range(nd - kk)), n)
    if kk == 1 and nd == 2 and n <= _DOT_MAX:
        # NOTE: row sums as a matrix-vector product (one BLAS call, not a pairwise reduce)
        ones = G.const(np.full((op[5][1], 1), 1.0 / n, dt), "ONES")
        G.emit(f"{c}xc = {x} - np.dot({x}, {ones})")
        G.emit(f"{c}r = np.dot(np.square({c}xc), {ones})")
    else:
        G.emit(f"{c}xc = {x} - np.add.reduce({x}, axis={axes!r}, keepdims=True) / {n}")
        G.emit(f"{c}r = np.add.reduce(np.square({c}xc), axis={axes!r}, keepdims=True) / {n}")
    G.emit(f"{c}r += {G.const(dt.type(eps))}")
    G.emit(f"np.sqrt({c}r, out={c}r)")
    G.emit(f"np.divide(1.0, {c}r, out={c}r)")
    G.emit(f"{c}xh = {c}xc * {c}r")
    if len(op[1]) == 1:
        G.nm[s] = f"{c}xh"
        return True
    G.emit(f"v{s} = {c}xh * {G.nm[op[1][1]]}")
    if len(op[1]) == 3:
        G.emit(f"v{s} += {G.nm[op[1][2]]}")
    G.nm[s] = f"v{s}"
    return True


def _ln_bwd(self, G, k, op, g, want, dest):
    c, axes, lead, n = G.ctx[k]
    n_aff = len(op[1]) - 1
    out = {}
    if 0 in want:
        gxh = f"{c}gxh"
        if n_aff:
            G.emit(f"{gxh} = {g} * {G.nm[op[1][1]]}")
        else:
            gxh = g
        if len(axes) == 1 and len(op[5]) == 2 and n <= _DOT_MAX:
            ones = G.const(np.full((op[5][1], 1), 1.0 / n, op[6]), "ONES")
            G.emit(f"{c}a = np.dot({gxh}, {ones})")
            G.emit(f"{c}b = np.dot({gxh} * {c}xh, {ones})")
        else:
            G.emit(f"{c}a = np.add.reduce({gxh}, axis={axes!r}, keepdims=True) / {n}")
            G.emit(f"{c}b = np.add.reduce({gxh} * {c}xh, axis={axes!r}, keepdims=True) / {n}")
        t = G.fresh()
        G.emit(f"{t} = {gxh} - {c}a")
        G.emit(f"{c}b = {c}xh * {c}b")
        G.emit(f"{t} -= {c}b")
        G.emit(f"{t} *= {c}r")
        out[0] = t
    for i, expr in ((1, f"{g} * {c}xh"), (2, g)):
        if i in want and len(op[5]) == 2:
            out[i] = _colsum(G, expr, op[5][0], op[6], dest.get(i))
        elif i in want:
            t = dest.get(i)
            if t is not None:
                G.emit(f"np.add.reduce({expr}, axis={lead!r}, out={t})")
            else:
                t = G.fresh()
                G.emit(f"{t} = np.add.reduce({expr}, axis={lead!r})")
            out[i] = t
    return out


def _ce_fwd(self, G, k, op):
    """Cross entropy with class indices, no class weights or smoothing, mean reduction: the
    node's forward, statement for statement (bit-identical)."""
    from ..compile import _SlotRef

    p = op[2]
    if op[4] is None or not _floaty(op, 1) or len(op[4][1][0][0]) != 2:
        return False
    if p["weight"] is not None or p["ls"] or p["reduction"] != "mean":
        return False
    n, c = op[4][1][0][0]
    if not n or not c:
        return False
    tgt = p["target"]
    if type(tgt) is _SlotRef:
        t = G.nm[tgt.slot]
        if tgt.shape is not None:
            t = f"{t}.reshape({tgt.shape!r})"
    elif isinstance(tgt, np.ndarray) and tgt.shape == (n,):
        t = G.const(tgt)
    else:
        return False
    z, s, dt = G.nm[op[1][0]], op[3], op[6]
    D, ar, ign = G.const(dt, "DT"), G.const(np.arange(n), "AR"), int(p["ignore_index"])
    c_ = f"c{k}_"
    G.ctx[k] = (c_, ar, D)
    G.emit(f"{c_}m = np.max({z}, axis=1, keepdims=True)")
    G.emit(f"{c_}m = np.where(np.isfinite({c_}m), {c_}m, 0).astype({D}, copy=False)")
    G.emit(f"{c_}lp = {z} - {c_}m")
    G.emit(f"{c_}lp -= np.log(np.exp({c_}lp).sum(axis=1, keepdims=True))")
    G.emit(f"{c_}mask = {t} != {ign}")
    G.emit(f"{c_}safe = np.where({c_}mask, {t}, 0)")
    G.emit(f"{c_}wt = {c_}mask.astype({D})")  # (== np.ones(n) * mask, as the node)
    G.emit(f"{c_}per = -({c_}lp[{ar}, {c_}safe] * {c_}wt)")
    G.emit(f"{c_}per = np.where({c_}mask, {c_}per, 0).astype({D}, copy=False)")
    G.emit(f"{c_}den = {c_}wt.sum(dtype={D})")
    G.emit(f"v{s} = np.asarray({c_}per.sum(dtype={D}) / {c_}den, dtype={D})")
    G.nm[s] = f"v{s}"
    return True


def _ce_bwd(self, G, k, op, g, want, dest):
    c_, ar, D = G.ctx[k]
    t = G.fresh()
    # all targets ignored: the loss is nan (0/0) but the gradient is 0 (as the node)
    G.emit(f"{c_}sc = (np.ones((), {D}) / {c_}den).astype({D}) if {c_}den else np.zeros((), {D})")
    G.emit(f"{t} = np.exp({c_}lp)")
    G.emit(f"{t} *= {c_}wt[:, None]")
    G.emit(f"{t}[{ar}, {c_}safe] -= {c_}wt")  # (the node's ``p -= one_hot * wt``)
    G.emit(f"{t} *= {g} * {c_}sc")
    return {0: t}


_FWD: dict = {}
_BWD: dict = {}


def _register():
    from ..ops import elementwise as E
    from ..ops import nn_ops as N
    from ..ops import reduce as R

    _FWD.update(
        {
            E.Add: _binary("+"),
            E.Sub: _binary("-"),
            E.Mul: _binary("*"),
            E.Relu: _relu_fwd,
            N.Linear: _linear_fwd,
            R.Sum: _sum_fwd,
            R.Mean: _mean_fwd,
        }
    )
    _BWD.update(
        {
            E.Add: _add_bwd,
            E.Sub: _sub_bwd,
            E.Mul: _mul_bwd,
            E.Relu: _relu_bwd,
            N.Linear: _linear_bwd,
            R.Sum: _sum_bwd,
            R.Mean: _mean_bwd,
        }
    )
    _FWD[N.CrossEntropy] = _ce_fwd
    _BWD[N.CrossEntropy] = _ce_bwd
    for c in (N.LayerNorm, N._LayerNormAff, N._LayerNormAffBias):
        _FWD[c] = _ln_fwd
        _BWD[c] = _ln_bwd


_register()

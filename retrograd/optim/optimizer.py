"""``Optimizer``: the base class holding parameter groups and per-parameter state.

Updates run in place on the parameters' NumPy arrays (``p._data``) under ``no_grad``, with
NumPy ufuncs writing into preallocated buffers, so a step allocates (almost) nothing.
"""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..autograd.grad_mode import no_grad
from ..tensor import Tensor

__all__ = ["Optimizer", "required"]


class _Required:
    """Marker for an option without a default (``torch.optim.optimizer.required``)."""

    def __repr__(self) -> str:
        return "<required parameter>"

    def __deepcopy__(self, memo):
        return self


required = _Required()


class _HookHandle:
    __slots__ = ("_store", "id")
    _next = 0

    def __init__(self, store: dict):
        _HookHandle._next += 1
        self.id = _HookHandle._next
        self._store = store

    def remove(self) -> None:
        self._store.pop(self.id, None)


def _wrap_step(step: Callable) -> Callable:
    """Run the step pre/post hooks around a subclass's ``step`` and count calls."""

    def wrapper(self, *args, **kwargs):
        if self.__dict__.get("_in_step"):  # a subclass's step calling super().step()
            return step(self, *args, **kwargs)
        self._in_step = True
        try:
            return _hooked(self, args, kwargs)
        finally:
            self._in_step = False

    def _hooked(self, args, kwargs):
        for hook in list(self._step_pre_hooks.values()):
            res = hook(self, args, kwargs)
            if res is not None:
                args, kwargs = res
        self._opt_called = True
        out = step(self, *args, **kwargs)
        for hook in list(self._step_post_hooks.values()):
            hook(self, args, kwargs)
        return out

    wrapper.__wrapped__ = step
    wrapper.__doc__ = step.__doc__
    wrapper.__name__ = step.__name__
    return wrapper


class Optimizer:
    """Base class of all optimizers (``torch.optim.Optimizer``).

    ``params`` is an iterable of tensors, or of dicts defining parameter groups (each may
    override any option in ``defaults``), or of ``(name, tensor)`` pairs.

    >>> import retrograd as rg
    >>> w = rg.nn.Parameter(rg.ones(2))
    >>> opt = rg.optim.SGD([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step(); w.tolist()
    [0.800000011920929, 0.800000011920929]
    """

    def __init__(self, params: Iterable, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._step_pre_hooks: OrderedDict = OrderedDict()
        self._step_post_hooks: OrderedDict = OrderedDict()
        self._scratch: dict = {}
        self._opt_called = False
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                f"dicts, but got {type(params).__name__}"
            )
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:
            cls.step = _wrap_step(cls.__dict__["step"])

    # --- groups -------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (missing ones take the defaults).

        >>> import retrograd as rg
        >>> a, b = rg.nn.Parameter(rg.ones(1)), rg.nn.Parameter(rg.ones(1))
        >>> opt = rg.optim.SGD([a], lr=0.1)
        >>> opt.add_param_group({"params": [b], "lr": 0.01})
        >>> [g["lr"] for g in opt.param_groups]
        [0.1, 0.01]
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        param_group = dict(param_group)
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)
        names = []
        plist = []
        for p in params:
            if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str):
                names.append(p[0])
                p = p[1]
            if not isinstance(p, Tensor):
                raise TypeError(
                    "optimizer can only optimize Tensors, but one of the params is "
                    f"{type(p).__name__}"
                )
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
            plist.append(p)
        if names:
            if len(names) != len(plist):
                raise ValueError("all optimizer params should be with/without names")
            param_group["param_names"] = names
        param_group["params"] = plist
        if len({id(p) for p in plist}) != len(plist):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; in future, this "
                "will cause an error",
                stacklevel=3,
            )
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(
                    "parameter group didn't specify a value of required optimization parameter "
                    f"{name}"
                )
            param_group.setdefault(name, default)
        seen = set()
        for group in self.param_groups:
            seen.update(id(p) for p in group["params"])
        if any(id(p) in seen for p in plist):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    # --- grads --------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of every parameter: to ``None`` (default) or to zeros in place.

        With ``set_to_none=True`` a later ``p.grad += g`` fails as in PyTorch; accumulate with
        ``backward()`` instead, or use ``set_to_none=False``.
        """
        for group in self.param_groups:
            for p in group["params"]:
                g = p._grad
                if g is None:
                    continue
                if set_to_none:
                    p._grad = None
                else:
                    if g.grad_fn is not None:
                        g = g.detach()
                        p._grad = g
                    else:
                        g._requires_grad = False
                    g._data[...] = 0
                    g._bump()

    def step(self, closure: Callable | None = None):
        raise NotImplementedError

    # --- hooks --------------------------------------------------------------------
    def register_step_pre_hook(self, hook: Callable) -> _HookHandle:
        """``hook(optimizer, args, kwargs)`` runs before every ``step``."""
        h = _HookHandle(self._step_pre_hooks)
        self._step_pre_hooks[h.id] = hook
        return h

    def register_step_post_hook(self, hook: Callable) -> _HookHandle:
        """``hook(optimizer, args, kwargs)`` runs after every ``step``."""
        h = _HookHandle(self._step_post_hooks)
        self._step_post_hooks[h.id] = hook
        return h

    # --- state dict ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimizer state in PyTorch's layout: ``{"state": {index: {...}}, "param_groups":
        [{..., "params": [index, ...]}]}``. State tensors are shared, not copied.

        >>> import retrograd as rg
        >>> w = rg.nn.Parameter(rg.ones(2))
        >>> sorted(rg.optim.Adam([w]).state_dict()["param_groups"][0])[:3]
        ['amsgrad', 'betas', 'capturable']
        """
        mapping: dict[int, int] = {}
        start = 0
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                mapping.setdefault(id(p), i)
            packed["params"] = [mapping[id(p)] for p in group["params"]]
            start += len(packed["params"])
            groups.append(packed)
        state = {}
        for k, v in self.state.items():
            key = mapping[id(k)] if isinstance(k, Tensor) else k
            state[key] = v
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state from :meth:`state_dict` (state tensors are copied and cast to each
        parameter's dtype, except ``step``). The group structure must match."""
        state_dict = state_dict.copy()
        groups = self.param_groups
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError(
                "loaded state dict has a different number of parameter groups: optimizer has "
                f"{len(groups)} group(s), state dict has {len(saved_groups)}"
            )
        sizes = [len(g["params"]) for g in groups]
        saved_sizes = [len(g["params"]) for g in saved_groups]
        if sizes != saved_sizes:
            raise ValueError(
                "loaded state dict contains a parameter group that doesn't match the size of "
                f"optimizer's group: optimizer group sizes {sizes}, state dict group sizes "
                f"{saved_sizes}"
            )
        id_map = {}
        for g, sg in zip(groups, saved_groups):
            for old, p in zip(sg["params"], g["params"]):
                id_map[old] = p

        def cast(param: Tensor, value: Any, key: Any = None) -> Any:
            if isinstance(value, Tensor):
                arr = value._data if isinstance(value._data, np.ndarray) else np.asarray(value)
                if key != "step" and param._data.dtype.kind == "f" and arr.dtype.kind == "f":
                    arr = arr.astype(param._data.dtype, copy=True)
                else:
                    arr = np.array(arr, copy=True)
                return Tensor._make(arr)
            if isinstance(value, np.ndarray):
                return cast(param, Tensor._make(value), key)
            if isinstance(value, dict):
                return {k: cast(param, v, k) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(cast(param, v, key) for v in value)
            return value

        state: defaultdict = defaultdict(dict)
        for k, v in state_dict["state"].items():
            k2 = int(k) if isinstance(k, str) and k.lstrip("-").isdigit() else k
            if k2 in id_map:
                state[id_map[k2]] = cast(id_map[k2], v)
            else:
                state[k2] = v
        new_groups = []
        for g, sg in zip(groups, saved_groups):
            sg["params"] = g["params"]
            if "param_names" in g and "param_names" not in sg:
                sg["param_names"] = g["param_names"]
            new_groups.append(sg)
        self.state = state
        self.param_groups = new_groups
        self._scratch = {}

    # --- helpers for subclasses -------------------------------------------------------
    def _buffers(self, arr: np.ndarray, n: int = 2) -> list[np.ndarray]:
        """``n`` scratch arrays shaped like ``arr``: views into per-dtype flat buffers that are
        reused across parameters and steps (an update only needs them while it runs)."""
        size = arr.size
        out = []
        for k in range(n):
            key = (arr.dtype, k)
            buf = self._scratch.get(key)
            if buf is None or buf.size < size:
                buf = np.empty(max(size, 1), dtype=arr.dtype)
                self._scratch[key] = buf
            out.append(buf[:size].reshape(arr.shape))
        return out

    @staticmethod
    def _grad_of(p: Tensor, maximize: bool, weight_decay: float, buf: np.ndarray) -> np.ndarray:
        """The gradient as PyTorch's optimizers see it: negated for ``maximize``, plus
        ``weight_decay * p`` (L2). Written into ``buf`` when it has to change."""
        g = p._grad._data
        if maximize:
            np.negative(g, out=buf)
            g = buf
        if weight_decay != 0:
            if g is buf:
                # g + wd * p without a second buffer: the result lands in buf elementwise.
                np.add(g, np.multiply(p._data, weight_decay), out=buf)
            else:
                np.multiply(p._data, weight_decay, out=buf)
                buf += g
            g = buf
        return g

    def _params_with_grad(self, group: dict):
        for p in group["params"]:
            if p._grad is not None:
                yield p

    def _decayed_grad(
        self, p: Tensor, lr: float, wd: float, decoupled: bool, maximize: bool, buf: np.ndarray
    ) -> np.ndarray:
        """``_grad_of`` for optimizers with a ``decoupled_weight_decay`` option: decoupled
        decay shrinks the weights by ``1 - lr * wd`` first and leaves the gradient alone."""
        if wd != 0 and decoupled:
            p._data *= 1.0 - lr * wd
            return self._grad_of(p, maximize, 0.0, buf)
        return self._grad_of(p, maximize, wd, buf)

    def __getstate__(self):
        d = self.__dict__.copy()
        d["_scratch"] = {}
        return d

    def __repr__(self) -> str:
        lines = [self.__class__.__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key not in ("params", "param_names"):
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


class _PerParamOptimizer(Optimizer):
    """Base of the optimizers whose update treats each parameter on its own. ``step`` runs
    the closure, reads each group's options once (``_options``), creates a parameter's state
    on first use (``_init_param_state``) and applies ``_update`` in place under ``no_grad``
    with two scratch arrays shaped like the parameter."""

    def _options(self, group: dict) -> tuple:
        raise NotImplementedError

    def _init_param_state(self, state: dict, data: np.ndarray, group: dict) -> None:
        raise NotImplementedError

    def _update(self, p: Tensor, state: dict, opts: tuple, s1: np.ndarray, s2: np.ndarray) -> None:
        raise NotImplementedError

    def step(self, closure: Callable | None = None):
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = _run_closure(closure)
        with no_grad(), np.errstate(all="ignore"):
            for group in self.param_groups:
                opts = self._options(group)
                for p in self._params_with_grad(group):
                    state = self.state[p]
                    if len(state) == 0:
                        self._init_param_state(state, p._data, group)
                    self._update(p, state, opts, *self._buffers(p._data))
                    p._bump()
        return loss


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float, buf: np.ndarray) -> None:
    """``start.lerp_(end, weight)`` with PyTorch's two formulas (stable on both halves)."""
    np.subtract(end, start, out=buf)
    if weight < 0.5:
        buf *= weight
        start += buf
    else:
        buf *= weight - 1.0
        np.add(end, buf, out=start)


def _adam_options(group: dict) -> tuple:
    """The options Adam-like optimizers share, read once per group:
    ``(lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize)``."""
    beta1, beta2 = (float(b) for b in group["betas"])
    lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
    return lr, beta1, beta2, eps, wd, group.get("decoupled_weight_decay", False), group["maximize"]


def _ema_sq_(avg: np.ndarray, g: np.ndarray, beta: float, buf: np.ndarray) -> None:
    """``avg.mul_(beta).addcmul_(g, g, value=1 - beta)`` in place (``buf`` is scratch)."""
    avg *= beta
    np.multiply(g, 1.0 - beta, out=buf)
    buf *= g
    avg += buf


def _adam_moments_(
    m: np.ndarray, v: np.ndarray, g: np.ndarray, beta1: float, beta2: float, buf: np.ndarray
) -> None:
    """Adam's first and second moment updates, in place: ``m`` lerps towards ``g`` and ``v``
    is the running mean of ``g**2``."""
    _lerp_(m, g, 1.0 - beta1, buf)
    _ema_sq_(v, g, beta2, buf)


def _init_state(state: dict, like: np.ndarray, *names: str, **scalars: Tensor) -> None:
    """First-step state: a float32 ``step``, then ``scalars``, then zero buffers ``names``
    shaped like the parameter (PyTorch's key order)."""
    state["step"] = _new_step()
    state.update(scalars)
    for name in names:
        state[name] = Tensor._make(np.zeros_like(like))


def _step_tensor(state: dict) -> float:
    """Increment ``state['step']`` (a float32 scalar tensor as in PyTorch) and return it."""
    st = state["step"]
    st._data += 1
    return float(st._data)


def _new_step() -> Tensor:
    return Tensor._make(np.zeros((), dtype=np.float32))


def _run_closure(closure):
    if closure is None:
        return None
    from ..autograd.grad_mode import enable_grad

    with enable_grad():
        return closure()


_no_grad = no_grad

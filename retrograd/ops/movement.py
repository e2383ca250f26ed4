"""Shape primitives: broadcast/sum_to, reshape, permute, cat, flip, roll, pad, repeat."""

from __future__ import annotations

import numpy as np

from ..autograd.node import Node, apply
from ..tensor import Tensor, _wrap_dim
from ._util import ShapeError, dims


class BroadcastTo(Node):
    __slots__ = ("in_shape",)
    is_view = True

    def forward(self, a, shape):
        self.in_shape = a.shape
        return np.broadcast_to(a, shape)

    def backward(self, g):
        return (apply(SumTo, (g,), {"shape": self.in_shape}),)

    @classmethod
    def op_name(cls):
        return "Expand"


class SumTo(Node):
    __slots__ = ("in_shape",)

    def forward(self, a, shape):
        self.in_shape = a.shape
        lead = a.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(
            i + lead for i, s in enumerate(shape) if s == 1 and a.shape[i + lead] != 1
        )
        out = a.sum(axis=axes, keepdims=True) if axes else a
        return out.reshape(shape)

    def backward(self, g):
        return (apply(BroadcastTo, (g,), {"shape": self.in_shape}),)

    @classmethod
    def op_name(cls):
        return "Sum"


class Reshape(Node):
    __slots__ = ("in_shape",)
    is_view = True

    def forward(self, a, shape):
        self.in_shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return (apply(Reshape, (g,), {"shape": self.in_shape}),)

    @classmethod
    def op_name(cls):
        return "View"


class Permute(Node):
    __slots__ = ("perm",)
    is_view = True

    def forward(self, a, perm):
        self.perm = perm
        return a.transpose(perm)

    def backward(self, g):
        return (apply(Permute, (g,), {"perm": tuple(np.argsort(self.perm))}),)


class Transpose(Permute):
    """``transpose``/``swapaxes``/``mT``: a Permute named as in torch's graphs."""

    __slots__ = ()


class TNode(Permute):
    """``t()``: a Permute named ``TBackward0`` as in torch."""

    __slots__ = ()

    @classmethod
    def op_name(cls):
        return "T"


class Unsqueeze(Reshape):
    __slots__ = ()

    @classmethod
    def op_name(cls):
        return "Unsqueeze"


class Squeeze(Reshape):
    __slots__ = ()

    @classmethod
    def op_name(cls):
        return "Squeeze"


class Cat(Node):
    __slots__ = ("axis", "sizes")

    def forward(self, *arrays, axis):
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return np.concatenate(arrays, axis=axis)

    def backward(self, g):
        out, start = [], 0
        for s in self.sizes:
            out.append(narrow(g, self.axis, start, s))
            start += s
        return tuple(out)


class Flip(Node):
    __slots__ = ("axes",)

    def forward(self, a, axes):
        self.axes = axes
        return np.flip(a, axes)

    def backward(self, g):
        return (apply(Flip, (g,), {"axes": self.axes}),)


class Roll(Node):
    __slots__ = ("shifts", "axes")

    def forward(self, a, shifts, axes):
        self.shifts, self.axes = shifts, axes
        if axes is None:
            return np.roll(a.reshape(-1), shifts).reshape(a.shape)
        return np.roll(a, shifts, axes)

    def backward(self, g):
        neg = tuple(-s for s in self.shifts) if isinstance(self.shifts, tuple) else -self.shifts
        return (apply(Roll, (g,), {"shifts": neg, "axes": self.axes}),)


class Tile(Node):
    __slots__ = ("in_shape", "reps")

    def forward(self, a, reps):
        self.in_shape, self.reps = a.shape, reps
        return np.tile(a, reps)

    def backward(self, g):
        # Split each tiled axis into (rep, size) and sum over the reps.
        shape = (1,) * (len(self.reps) - len(self.in_shape)) + tuple(self.in_shape)
        split = []
        for r, s in zip(self.reps, shape):
            split += [r, s]
        gs = g.reshape(split).sum(tuple(range(0, len(split), 2)))
        return (gs.reshape(self.in_shape),)


class Pad(Node):
    """Constant padding with non-negative widths; the vjp crops the window back out."""

    __slots__ = ("widths",)

    def forward(self, a, widths, value):
        self.widths = widths
        return np.pad(a, widths, mode="constant", constant_values=value)

    def backward(self, g):
        from .indexing import getitem

        window = tuple(slice(lo, n - hi) for (lo, hi), n in zip(self.widths, g._data.shape))
        return (getitem(g, window),)

    @classmethod
    def op_name(cls):
        return "ConstantPadNd"


def pad(input, pad, mode: str = "constant", value=None) -> Tensor:
    """Pad the last dims: ``pad = (left, right, top, bottom, ...)``, last dim first.

    Modes: 'constant' (negative widths crop), 'reflect', 'replicate', 'circular'.

    >>> import retrograd as rg
    >>> rg.nn.functional.pad(rg.ones(1, 2), (1, 1)).tolist()
    [[0.0, 1.0, 1.0, 0.0]]
    """
    pad = tuple(int(p) for p in pad)
    nd = input._data.ndim
    if len(pad) % 2 or len(pad) // 2 > nd:
        raise RuntimeError(
            f"Padding length must be divisible by 2 and at most twice the number of dimensions "
            f"of the input; got {len(pad)} for a {nd}-D input"
        )
    widths = [(0, 0)] * nd
    for i in range(len(pad) // 2):
        widths[nd - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if mode == "constant":
        out = input
        if any(lo < 0 or hi < 0 for lo, hi in widths):
            from .indexing import getitem

            crop = tuple(
                slice(-lo if lo < 0 else 0, n + hi if hi < 0 else n)
                for (lo, hi), n in zip(widths, input._data.shape)
            )
            out = getitem(out, crop)
        pos = tuple((max(lo, 0), max(hi, 0)) for lo, hi in widths)
        if any(p != (0, 0) for p in pos):
            v = 0 if value is None else value
            out = apply(Pad, (out,), {"widths": pos, "value": v})
        return out
    np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}.get(mode)
    if np_mode is None:
        raise NotImplementedError(f"pad(): unknown padding mode {mode!r}")
    from .indexing import index_select

    out = input
    for ax, (lo, hi) in enumerate(widths):
        if lo or hi:
            n = input._data.shape[ax]
            if mode == "reflect" and (lo >= n or hi >= n):
                raise RuntimeError(
                    f"Argument #4: Padding size should be less than the corresponding input "
                    f"dimension, but got: padding ({lo}, {hi}) at dimension {ax} of input "
                    f"{list(input._data.shape)}"
                )
            idx = np.pad(np.arange(n), (lo, hi), mode=np_mode)
            out = index_select(out, ax, Tensor._make(idx))
    return out


# --- public functions ---------------------------------------------------------------------


def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], list | tuple):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _infer(shape: tuple, numel: int, op: str) -> tuple:
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = 1
    for s in shape:
        if s != -1:
            if s < 0:
                raise RuntimeError(f"invalid shape dimension {s}")
            known *= s
    if -1 in shape:
        if known == 0 or numel % known:
            raise ShapeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape = tuple(numel // known if s == -1 else s for s in shape)
    elif known != numel:
        raise ShapeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape


def reshape(input, *shape) -> Tensor:
    """The same elements in a new shape (a view when possible); one dim may be -1."""
    shape = _infer(_shape_arg(shape), input._data.size, "reshape")
    if shape == input._data.shape:
        return input
    return apply(Reshape, (input,), {"shape": shape})


def view(input, *shape) -> Tensor:
    """Like reshape, but errors (as PyTorch does) when the memory layout needs a copy."""
    if len(shape) == 1 and not isinstance(shape[0], int | list | tuple):
        from .elementwise import Cast

        return apply(Cast, (input,), {"dtype": np.dtype(shape[0].np)})
    shape = _infer(_shape_arg(shape), input._data.size, "view")
    try:
        v = input._data.view()
        v.shape = shape
    except AttributeError:
        raise RuntimeError(
            "view size is not compatible with input tensor's size and stride (at least one "
            "dimension spans across two contiguous subspaces). Use .reshape(...) instead."
        ) from None
    return apply(Reshape, (input,), {"shape": shape})


def flatten(input, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    nd = input._data.ndim
    if nd == 0:
        return reshape(input, 1)
    s = _wrap_dim(start_dim, nd, "flatten")
    e = _wrap_dim(end_dim, nd, "flatten")
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    sh = input._data.shape
    return reshape(input, sh[:s] + (-1 if 0 not in sh[s : e + 1] else 0,) + sh[e + 1 :])


def unflatten(input, dim: int, sizes) -> Tensor:
    d = _wrap_dim(dim, input._data.ndim, "unflatten")
    sh = input._data.shape
    sizes = tuple(sizes)
    if -1 in sizes:
        sizes = _infer(sizes, sh[d], "unflatten")
    if int(np.prod(sizes)) != sh[d]:
        raise RuntimeError(
            f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim {dim} "
            f"({sh[d]}) in the input tensor"
        )
    return reshape(input, sh[:d] + sizes + sh[d + 1 :])


def squeeze(input, dim=None) -> Tensor:
    sh = input._data.shape
    if dim is None:
        new = tuple(s for s in sh if s != 1)
    else:
        axes = dims(dim, input._data.ndim, "squeeze") if input._data.ndim else ()
        new = tuple(s for i, s in enumerate(sh) if not (i in axes and s == 1))
    return apply(Squeeze, (input,), {"shape": new}) if new != sh else input


def unsqueeze(input, dim: int) -> Tensor:
    nd = input._data.ndim + 1
    d = _wrap_dim(dim, nd, "unsqueeze")
    sh = input._data.shape
    return apply(Unsqueeze, (input,), {"shape": sh[:d] + (1,) + sh[d:]})


def permute(input, *dims_) -> Tensor:
    perm = _shape_arg(dims_)
    nd = input._data.ndim
    if len(perm) != nd:
        raise RuntimeError(
            f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
            f"length of the desired ordering of dimensions i.e. input.dim() = {nd} is not equal "
            f"to len(dims) = {len(perm)}"
        )
    perm = tuple(_wrap_dim(p, nd, "permute") for p in perm)
    if len(set(perm)) != nd:
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    if perm == tuple(range(nd)):
        return input
    return apply(Permute, (input,), {"perm": perm})


def transpose(input, dim0: int, dim1: int) -> Tensor:
    nd = input._data.ndim
    if nd == 0:
        return input
    a, b = _wrap_dim(dim0, nd, "transpose"), _wrap_dim(dim1, nd, "transpose")
    if a == b:
        return input
    perm = list(range(nd))
    perm[a], perm[b] = perm[b], perm[a]
    return apply(Transpose, (input,), {"perm": tuple(perm)})


swapaxes = swapdims = transpose


def movedim(input, source, destination) -> Tensor:
    nd = input._data.ndim
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    src = [_wrap_dim(s, nd, "movedim") for s in src]
    dst = [_wrap_dim(d, nd, "movedim") for d in dst]
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(input, *order)


moveaxis = movedim


def t(input) -> Tensor:
    """Transpose of a matrix (0-D and 1-D tensors are returned as is)."""
    if input._data.ndim > 2:
        raise RuntimeError(
            f"t() expects a tensor with <= 2 dimensions, but self is {input._data.ndim}D"
        )
    return apply(TNode, (input,), {"perm": (1, 0)}) if input._data.ndim == 2 else input


def expand(input, *sizes) -> Tensor:
    sizes = _shape_arg(sizes)
    sh = input._data.shape
    if len(sizes) < len(sh):
        raise RuntimeError(
            f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal to the "
            f"number of dimensions in the tensor ({len(sh)})"
        )
    lead = len(sizes) - len(sh)
    out = []
    for i, s in enumerate(sizes):
        cur = sh[i - lead] if i >= lead else None
        if s == -1:
            if cur is None:
                raise RuntimeError("expand: -1 is not allowed in a leading, non-existing dimension")
            s = cur
        if cur is not None and cur != s and cur != 1:
            raise ShapeError(
                f"The expanded size of the tensor ({s}) must match the existing size ({cur}) at "
                f"non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor sizes: "
                f"{list(sh)}"
            )
        out.append(s)
    out = tuple(out)
    if out == sh:
        return input
    return apply(BroadcastTo, (input,), {"shape": out})


def expand_as(input, other) -> Tensor:
    return expand(input, *other._data.shape)


def broadcast_to(input, shape) -> Tensor:
    return expand(input, *tuple(shape))


def broadcast_tensors(*tensors):
    from ._util import broadcast_shape

    shape = ()
    for x in tensors:
        shape = broadcast_shape(shape, x._data.shape, "broadcast_tensors")
    return tuple(broadcast_to(x, shape) for x in tensors)


def broadcast_shapes(*shapes):
    from ..size import Size
    from ._util import broadcast_shape

    out = ()
    for s in shapes:
        out = broadcast_shape(out, tuple(s) if not isinstance(s, int) else (s,), "broadcast_shapes")
    return Size(out)


def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    # legacy: 1-D empty tensors are skipped, as in PyTorch
    tensors = [x for x in tensors if not (x._data.ndim == 1 and x._data.shape[0] == 0)] or tensors[
        :1
    ]
    nd = tensors[0]._data.ndim
    if nd == 0:
        raise RuntimeError("zero-dimensional tensor (at position 0) cannot be concatenated")
    d = _wrap_dim(dim, nd, "cat")
    for i, x in enumerate(tensors):
        if x._data.ndim != nd:
            raise RuntimeError(
                f"Tensors must have same number of dimensions: got {nd} and {x._data.ndim}"
            )
        for ax in range(nd):
            if ax != d and x._data.shape[ax] != tensors[0]._data.shape[ax]:
                raise ShapeError(
                    f"Sizes of tensors must match except in dimension {d}. Expected size "
                    f"{tensors[0]._data.shape[ax]} but got size {x._data.shape[ax]} for tensor "
                    f"number {i} in the list."
                )
    from ._util import promote

    return apply(Cat, tuple(promote(tensors)), {"axis": d})


concat = concatenate = cat


def stack(tensors, dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    sh = tensors[0]._data.shape
    for i, x in enumerate(tensors):
        if x._data.shape != sh:
            raise ShapeError(
                f"stack expects each tensor to be equal size, but got {list(sh)} at entry 0 and "
                f"{list(x._data.shape)} at entry {i}"
            )
    d = _wrap_dim(dim, len(sh) + 1, "stack")
    return cat([unsqueeze(x, d) for x in tensors], d)


def hstack(tensors):
    tensors = list(tensors)
    return cat(tensors, 0 if tensors[0]._data.ndim == 1 else 1)


def vstack(tensors):
    return cat([x if x._data.ndim > 1 else x.reshape(1, -1) for x in tensors], 0)


def narrow(input, dim: int, start: int, length: int) -> Tensor:
    d = _wrap_dim(dim, input._data.ndim, "narrow")
    n = input._data.shape[d]
    if start < 0:
        start += n
    if start < 0 or start + length > n or length < 0:
        raise IndexError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    idx = (slice(None),) * d + (slice(start, start + length),)
    from .indexing import getitem

    return getitem(input, idx)


def split(tensor, split_size_or_sections, dim: int = 0):
    """Split into chunks of a given size, or of the given list of sizes."""
    d = _wrap_dim(dim, tensor._data.ndim, "split")
    n = tensor._data.shape[d]
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        if s <= 0 and n:
            raise RuntimeError(
                f"split_size can only be 0 if dimension size is 0, but got dimension size of {n}"
            )
        sizes = [min(s, n - i) for i in range(0, n, s)] if s else [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise RuntimeError(
                f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size "
                f"at dimension {d}), but got split_sizes={sizes}"
            )
    out, start = [], 0
    for s in sizes:
        out.append(narrow(tensor, d, start, s))
        start += s
    return tuple(out)


def tensor_split(input, indices_or_sections, dim: int = 0):
    d = _wrap_dim(dim, input._data.ndim, "tensor_split")
    n = input._data.shape[d]
    if isinstance(indices_or_sections, int):
        k = indices_or_sections
        q, r = divmod(n, k)
        sizes = [q + 1] * r + [q] * (k - r)
    else:
        bounds = [0] + list(indices_or_sections) + [n]
        sizes = [max(0, min(b, n) - min(a, n)) for a, b in zip(bounds, bounds[1:])]
    return split(input, sizes, d)


def chunk(input, chunks: int, dim: int = 0):
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0")
    d = _wrap_dim(dim, input._data.ndim, "chunk")
    n = input._data.shape[d]
    size = -(-n // chunks) if n else 1
    return split(input, size, d) if n else (input,)


def unbind(input, dim: int = 0):
    d = _wrap_dim(dim, input._data.ndim, "unbind")
    from .indexing import getitem

    return tuple(getitem(input, (slice(None),) * d + (i,)) for i in range(input._data.shape[d]))


def flip(input, *dims_) -> Tensor:
    """Reverse the order along ``dims`` (``flip(x, (0, 1))`` or ``x.flip(0, 1)``)."""
    if len(dims_) == 1 and isinstance(dims_[0], list | tuple):
        dims_ = tuple(dims_[0])
    axes = dims(dims_, input._data.ndim, "flip")
    return apply(Flip, (input,), {"axes": axes})


def fliplr(input):
    return flip(input, (1,))


def flipud(input):
    return flip(input, (0,))


def roll(input, shifts, dims_=None) -> Tensor:
    if dims_ is None:
        return apply(
            Roll,
            (input,),
            {"shifts": int(shifts) if isinstance(shifts, int) else int(shifts[0]), "axes": None},
        )
    sh = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dd = (dims_,) if isinstance(dims_, int) else tuple(dims_)
    if len(sh) != len(dd):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(sh)}, dims:{len(dd)}")
    dd = tuple(_wrap_dim(x, input._data.ndim, "roll") for x in dd)
    return apply(Roll, (input,), {"shifts": sh, "axes": dd})


def repeat(input, *sizes) -> Tensor:
    reps = _shape_arg(sizes)
    if len(reps) < input._data.ndim:
        raise RuntimeError(
            "Number of dimensions of repeat dims can not be smaller than number of dimensions of "
            "tensor"
        )
    _check_reps(reps, "repeat")
    return apply(Tile, (input,), {"reps": reps})


def _check_reps(reps, op):
    if any(r < 0 for r in reps):
        raise RuntimeError(f"{op}(): Trying to create tensor with negative dimension: {list(reps)}")


def tile(input, dims) -> Tensor:
    """Repeat ``input`` ``dims[i]`` times along each dim (missing leading dims count as 1);
    the method form also takes the counts as separate ints, ``x.tile(2, 1)``.

    >>> import retrograd as rg
    >>> rg.tile(rg.tensor([1, 2]), (2,))
    tensor([1, 2, 1, 2])
    """
    reps = (int(dims),) if isinstance(dims, int | np.integer) else tuple(int(d) for d in dims)
    if len(reps) < input._data.ndim:
        reps = (1,) * (input._data.ndim - len(reps)) + reps
    _check_reps(reps, "tile")
    return apply(Tile, (input,), {"reps": reps})


def repeat_interleave(input, repeats, dim=None) -> Tensor:
    from .indexing import index_select

    if dim is None:
        input = input.reshape(-1)
        dim = 0
    d = _wrap_dim(dim, input._data.ndim, "repeat_interleave")
    r = np.asarray(repeats._data if isinstance(repeats, Tensor) else repeats)
    n = input._data.shape[d]
    if r.ndim > 1 or (r.ndim == 1 and r.size not in (1, n)) or (r < 0).any():
        raise RuntimeError(
            f"repeat_interleave: repeats must be a non-negative scalar or have one entry per "
            f"element of dim {d} ({n}), got shape {tuple(r.shape)}"
        )
    idx = np.repeat(np.arange(n), r)
    return index_select(input, d, Tensor._make(idx))


def contiguous(input, memory_format=None) -> Tensor:
    if input._data.flags.c_contiguous:
        return input
    from .elementwise import clone

    return clone(input)

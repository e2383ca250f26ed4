"""Indexing primitives: ``__getitem__`` and its scatter-add vjp, gather/scatter, masks."""

from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import STATE
from ..autograd.node import Node, apply
from ..tensor import Tensor, _wrap_dim
from ._util import ShapeError, as_operand


def _norm_index(idx):
    """Turn Tensors and lists inside an index into arrays; True if any is advanced."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    out = []
    advanced = False
    for x in idx:
        if isinstance(x, Tensor):
            x = x._data
            if x.dtype.kind == "f":
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            if x.ndim == 0 and x.dtype.kind in "iu":
                x = int(x)
        elif isinstance(x, list):
            x = np.asarray(x)
            if x.dtype.kind == "f":
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        if isinstance(x, np.ndarray):
            if x.dtype.kind not in "iub":
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            advanced = True
        elif x is not None and x is not Ellipsis and not isinstance(x, int | slice | np.integer):
            raise IndexError(
                "only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables "
                f"are valid indices (got {type(x).__name__})"
            )
        if isinstance(x, slice) and x.step is not None and x.step <= 0:
            raise ValueError("step must be greater than zero")
        out.append(x)
    return tuple(out), advanced


def _is_int(i) -> bool:
    return isinstance(i, int | np.integer) and not isinstance(i, bool | np.bool_)


def _split_ints(idx):
    """torch applies integer indices as selects *before* advanced indexing, so they never
    join NumPy's advanced-index block: for ``x`` of shape (2, 3, 4), ``x[0, :, [1, 2]]`` is
    (3, 2) in torch but (2, 3) in NumPy. Returns ``(basic, rest)`` with
    ``x[basic][rest]`` following torch, or None where one NumPy step already agrees (the
    block lands in the same place unless the ints change whether it is contiguous)."""
    pos_np = [k for k, i in enumerate(idx) if isinstance(i, np.ndarray) or _is_int(i)]
    pos_torch = [k for k, i in enumerate(idx) if isinstance(i, np.ndarray)]
    if len(pos_np) == len(pos_torch):
        return None
    rest_items = [i for i in idx if not _is_int(i)]
    pos_rest = [k for k, i in enumerate(rest_items) if isinstance(i, np.ndarray)]

    def contiguous(pos):
        return pos[-1] - pos[0] == len(pos) - 1

    if contiguous(pos_np) == contiguous(pos_rest):
        return None
    basic, rest = [], []
    for i in idx:
        if isinstance(i, np.ndarray):  # a bool mask spans as many dims as it has
            basic.extend([slice(None)] * (i.ndim if i.dtype == bool else 1))
            rest.append(i)
        elif _is_int(i):
            basic.append(i)
        elif i is None or isinstance(i, slice):  # applied (new axis made) by the 1st step
            basic.append(i)
            rest.append(slice(None))
        else:  # Ellipsis
            basic.append(i)
            rest.append(i)
    return tuple(basic), tuple(rest)


def _index(arr, idx, shape_for_msg):
    try:
        return arr[idx]
    except IndexError as e:
        msg = str(e).replace("axis", "dimension")
        raise IndexError(f"{msg} (indexing a tensor of shape {tuple(shape_for_msg)})") from None


class GetItem(Node):
    __slots__ = ("idx", "advanced", "in_shape")

    def forward(self, a, idx, advanced):
        self.idx, self.advanced, self.in_shape = idx, advanced, a.shape
        out = _index(a, idx, a.shape)
        if not advanced and type(out) is not np.ndarray:
            # all-int index: NumPy returns a scalar copy; a 0-d view keeps in-place writes
            # (x[0].mul_(2)) landing in x, as in torch
            out = a[idx + (Ellipsis,)] if Ellipsis not in idx else np.asarray(out)
        return out

    def backward(self, g):
        return (
            apply(
                IndexAddZeros,
                (g,),
                {"idx": self.idx, "advanced": self.advanced, "shape": self.in_shape},
            ),
        )

    @classmethod
    def op_name(cls):
        return "Index"


class GetItemView(GetItem):
    __slots__ = ()
    is_view = True

    @classmethod
    def op_name(cls):
        return "Slice"


class Select(GetItemView):
    __slots__ = ()

    @classmethod
    def op_name(cls):
        return "Select"


class Gather(GetItem):
    __slots__ = ()

    @classmethod
    def op_name(cls):
        return "Gather"


class IndexAddZeros(Node):
    """Scatter ``g`` into zeros at ``idx``. NOTE: repeated indices accumulate (np.add.at),
    never ``z[idx] += g``, which keeps only one of them."""

    __slots__ = ("idx", "advanced")

    def forward(self, g, idx, advanced, shape):
        self.idx, self.advanced = idx, advanced
        z = np.zeros(shape, g.dtype)
        if advanced:
            np.add.at(z, idx, g)
        else:
            z[idx] = g
        return z

    def backward(self, gg):
        return (getitem(gg, self.idx),)

    @classmethod
    def op_name(cls):
        return "IndexBackward"


def getitem(input, idx) -> Tensor:
    """``input[idx]``: ints, slices with steps, None, Ellipsis, bool masks, integer arrays."""
    idx, advanced = _norm_index(idx)
    if not advanced and len(idx) == 1 and isinstance(idx[0], int) and input._data.ndim == 0:
        raise IndexError(
            "invalid index of a 0-dim tensor. Use `tensor.item()` to convert a 0-dim tensor to a "
            "number"
        )
    if advanced:
        split = _split_ints(idx)
        if split is not None:
            return getitem(getitem(input, split[0]), split[1])
        return apply(GetItem, (input,), {"idx": idx, "advanced": True})
    if all(isinstance(i, int | np.integer) for i in idx):
        return apply(Select, (input,), {"idx": idx, "advanced": False})  # torch's name
    return apply(GetItemView, (input,), {"idx": idx, "advanced": False})


class IndexPut(Node):
    """Out-of-place ``x[idx] = v``: the vjp routes g[idx] to v and the rest to x."""

    __slots__ = ("idx", "v_shape")

    def forward(self, x, v, idx):
        self.idx, self.v_shape = idx, v.shape
        out = x.copy()
        try:
            out[idx] = v
        except ValueError as e:
            raise ShapeError(
                f"index_put: shape mismatch: value tensor of shape {list(v.shape)} cannot be "
                f"broadcast to indexing result ({e})"
            ) from None
        return out

    def backward(self, g):
        gx = gv = None
        if self.next[0] is not None:
            mask = np.ones(g._data.shape, bool)
            mask[self.idx] = False
            gx = g * Tensor._make(mask)
        if self.next[1] is not None:
            from ._util import sum_to

            gv = sum_to(getitem(g, self.idx), self.v_shape)
        return gx, gv


def setitem(input, idx, value) -> None:
    """``input[idx] = value`` in place (recorded in the graph when grad is needed)."""
    nidx, advanced = _norm_index(idx)
    split = _split_ints(nidx) if advanced else None
    if split is not None:  # torch's order: the int selects first (see _split_ints)
        return setitem(getitem(input, split[0]), split[1], value)
    v = as_operand(value, input)
    if STATE.enabled and (input._requires_grad or v._requires_grad):
        from .inplace import commit

        if v._data.dtype != input._data.dtype:
            v = v.to(input.dtype)
        commit(input, lambda x: apply(IndexPut, (x, v), {"idx": nidx}), needs_old=False)
        return
    from .inplace import check_writable

    check_writable(input, "index_put_")
    try:
        input._data[nidx] = v._data
    except ValueError as e:
        raise ShapeError(
            f"shape mismatch: value tensor of shape {list(v._data.shape)} cannot be broadcast to "
            f"indexing result of shape {list(input._data[nidx].shape)}"
        ) from e
    except IndexError as e:
        raise IndexError(
            f"{str(e).replace('axis', 'dimension')} (indexing a tensor of shape "
            f"{tuple(input._data.shape)})"
        ) from None
    input._bump()


def _check_index(index, dim_size, op):
    ix = index._data
    if ix.dtype.kind not in "iu":
        raise RuntimeError(f"{op}(): Expected dtype int64 for index, got {index.dtype.name}")
    if ix.size and (ix.min() < -dim_size or ix.max() >= dim_size):
        bad = ix[(ix < -dim_size) | (ix >= dim_size)].flat[0]
        raise IndexError(f"{op}(): index {bad} is out of bounds for dimension with size {dim_size}")


def index_select(input, dim: int, index) -> Tensor:
    d = _wrap_dim(dim, input._data.ndim, "index_select")
    index = as_operand(index)
    if index._data.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    _check_index(index, input._data.shape[d] if input._data.ndim else 1, "index_select")
    return getitem(input, (slice(None),) * d + (index._data.reshape(-1),))


def _gather_idx(index_arr, d):
    """Full advanced index selecting index_arr along axis d (np.take_along_axis style)."""
    grids = np.indices(index_arr.shape, sparse=True)
    full = list(grids)
    full[d] = index_arr
    return tuple(full)


def gather(input, dim: int, index, *, sparse_grad=False) -> Tensor:
    """``out[i][j] = input[i][index[i][j]]`` along ``dim``; vjp scatter-adds."""
    nd = input._data.ndim
    d = _wrap_dim(dim, nd, "gather")
    ix = index._data
    if ix.ndim != nd:
        raise RuntimeError(
            "gather(): Index tensor must have the same number of dimensions as input tensor"
        )
    for ax in range(nd):
        if ax != d and ix.shape[ax] > input._data.shape[ax]:
            raise RuntimeError(
                f"Size does not match at dimension {ax} expected index {list(ix.shape)} to be "
                "smaller "
                f"than self {list(input._data.shape)} apart from dimension {d}"
            )
    _check_index(index, input._data.shape[d], "gather")
    return apply(Gather, (input,), {"idx": _gather_idx(ix, d), "advanced": True})


def take_along_dim(input, indices, dim=None) -> Tensor:
    if dim is None:
        return gather(input.reshape(-1), 0, indices.reshape(-1))
    d = _wrap_dim(dim, input._data.ndim, "take_along_dim")
    ix = indices._data
    if ix.ndim != input._data.ndim:
        raise RuntimeError(
            f"take_along_dim(): input and indices should have the same number of dimensions, "
            f"but got {input._data.ndim} dimensions for input, and {ix.ndim} dimensions for indices"
        )
    from ._util import broadcast_shape

    shape = list(
        broadcast_shape(
            tuple(s if i != d else 1 for i, s in enumerate(input._data.shape)),
            tuple(s if i != d else 1 for i, s in enumerate(ix.shape)),
            "take_along_dim",
        )
    )
    ishape = list(shape)
    ishape[d] = ix.shape[d]
    xshape = list(shape)
    xshape[d] = input._data.shape[d]
    x = input.expand(*xshape) if tuple(xshape) != input._data.shape else input
    return gather(x, d, Tensor._make(np.broadcast_to(ix, ishape)))


def take(input, index) -> Tensor:
    return getitem(input.reshape(-1), (index._data,))


class ScatterAdd(Node):
    __slots__ = ("idx",)

    def forward(self, a, src, idx):
        self.idx = idx
        out = a.copy()
        np.add.at(out, idx, src)
        return out

    def backward(self, g):
        gs = getitem(g, self.idx) if self.next[1] is not None else None
        return g, gs


class Scatter(Node):
    """NOTE: with duplicate indices the last write wins (NumPy order); PyTorch leaves it
    undefined. The vjp matches the forward: only the winning source gets the gradient."""

    __slots__ = ("idx", "written", "src_mask")

    def forward(self, a, src, idx):
        self.idx = idx
        out = a.copy()
        out[idx] = src
        written = np.zeros(a.shape, bool)
        written[idx] = True
        self.written = written
        # which source elements won their target (last occurrence)
        pos = np.full(a.shape, -1, np.int64)
        flat = np.arange(src.size).reshape(src.shape)
        pos[idx] = flat
        win = np.zeros(src.size, bool)
        win[pos[written]] = True
        self.src_mask = win.reshape(src.shape)
        return out

    def backward(self, g):
        ga = g * Tensor._make(~self.written)
        gs = (
            getitem(g, self.idx) * Tensor._make(self.src_mask) if self.next[1] is not None else None
        )
        return ga, gs


def _scatter_args(input, dim, index, src, op):
    nd = input._data.ndim
    d = _wrap_dim(dim, nd, op)
    ix = index._data
    if ix.ndim != nd and ix.size:
        raise RuntimeError(
            f"{op}(): Index tensor must have the same number of dimensions as self tensor"
        )
    _check_index(index, input._data.shape[d], op)
    src = as_operand(src, input)
    if src._data.dtype != input._data.dtype:
        src = src.to(input.dtype)
    if src._data.shape != ix.shape:
        if src._data.ndim == 0:
            src = src.expand(*ix.shape)
        else:
            slices = tuple(slice(0, s) for s in ix.shape)
            src = getitem(src, slices)
    return d, _gather_idx(ix, d), src


def scatter(input, dim: int, index, src=None, *, value=None, reduce=None) -> Tensor:
    """Out-of-place ``scatter``: write ``src`` (or ``value``) at ``index`` along ``dim``."""
    if reduce is not None:
        if reduce == "add":
            return scatter_add(input, dim, index, src if src is not None else value)
        raise NotImplementedError(f"scatter(): reduce={reduce!r} is not supported")
    src = value if src is None else src
    d, idx, src = _scatter_args(input, dim, index, src, "scatter")
    return apply(Scatter, (input, src), {"idx": idx})


def scatter_add(input, dim: int, index, src) -> Tensor:
    d, idx, src = _scatter_args(input, dim, index, src, "scatter_add")
    return apply(ScatterAdd, (input, src), {"idx": idx})


def index_add(input, dim: int, index, source, *, alpha=1) -> Tensor:
    d = _wrap_dim(dim, input._data.ndim, "index_add")
    _check_index(index, input._data.shape[d], "index_add")
    if index._data.ndim > 1:
        raise IndexError("index_add_(): Index is supposed to be a vector")
    src = source if alpha == 1 else source * alpha
    want = input._data.shape[:d] + (index._data.size,) + input._data.shape[d + 1 :]
    if src._data.shape != want and not (src._data.ndim == 0 and input._data.ndim == 0):
        raise ShapeError(
            f"index_add_(): source of shape {tuple(src._data.shape)} does not match the input "
            f"{tuple(input._data.shape)} with {index._data.size} indices along dim {d} "
            f"(expected {want})"
        )
    idx = (slice(None),) * d + (index._data,)
    return apply(ScatterAdd, (input, src), {"idx": idx})


def index_fill(input, dim, index, value):
    d = _wrap_dim(dim, input._data.ndim, "index_fill")
    index = as_operand(index)
    _check_index(index, input._data.shape[d] if input._data.ndim else 1, "index_fill")
    mask = np.zeros(input._data.shape, bool)
    mask[(slice(None),) * d + (index._data,)] = True
    return masked_fill(input, Tensor._make(mask), value)


def masked_fill(input, mask, value) -> Tensor:
    """Replace entries where ``mask`` is True by ``value``."""
    m = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != np.bool_:
        raise RuntimeError(
            f"masked_fill_ only supports boolean masks, but got mask with dtype {m.dtype}"
        )
    from ._util import broadcast_shape

    broadcast_shape(input._data.shape, m.shape, "masked_fill")
    from .elementwise import where

    v = value if isinstance(value, Tensor) else Tensor._make(np.asarray(value, input._data.dtype))
    if v._data.dtype != input._data.dtype and not v._requires_grad:
        v = Tensor._make(v._data.astype(input._data.dtype))
    out = where(Tensor._make(m), v, input)
    if out._data.shape != input._data.shape:
        raise ShapeError(
            f"masked_fill: mask of shape {list(m.shape)} cannot broadcast to input "
            f"{list(input._data.shape)}"
        )
    return out


def masked_select(input, mask) -> Tensor:
    """The entries of ``input`` where ``mask`` (broadcast) is True, as a 1-D tensor."""
    from ._util import broadcast_shape

    if mask._data.dtype != np.bool_:
        raise RuntimeError(f"masked_select: expected BoolTensor for mask, got {mask.dtype.name}")
    shape = broadcast_shape(mask._data.shape, input._data.shape, "masked_select")
    m = np.broadcast_to(mask._data, shape)
    x = input.expand(*m.shape) if input._data.shape != m.shape else input
    return getitem(x, (m,))


def _tri(input, diagonal, upper):
    if input._data.ndim < 2:
        raise RuntimeError(
            f"{'triu' if upper else 'tril'}: input tensor must have at least 2 dimensions"
        )
    n, m = input._data.shape[-2:]
    keep = (
        np.triu(np.ones((n, m), bool), diagonal)
        if upper
        else np.tril(np.ones((n, m), bool), diagonal)
    )
    from .elementwise import where

    zero = Tensor._make(np.zeros((), input._data.dtype))
    return where(Tensor._make(keep), input, zero)


def tril(input, diagonal: int = 0) -> Tensor:
    return _tri(input, diagonal, False)


def triu(input, diagonal: int = 0) -> Tensor:
    return _tri(input, diagonal, True)


def one_hot(tensor, num_classes: int = -1) -> Tensor:
    ix = tensor._data
    if ix.dtype.kind not in "iu":
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes == -1:
        num_classes = int(ix.max()) + 1 if ix.size else 0
    if ix.size and (ix.min() < 0 or ix.max() >= num_classes):
        raise RuntimeError(
            f"Class values must be smaller than num_classes ({num_classes}) and non-negative."
        )
    out = np.zeros(ix.shape + (num_classes,), np.int64)
    np.put_along_axis(out, ix[..., None], 1, axis=-1)
    return Tensor._make(out)

"""Matrix products: matmul (1-D, 2-D, batched with broadcast batch dims), einsum."""

from __future__ import annotations

import numpy as np

from ..autograd.node import Node, apply
from ..tensor import Tensor
from ._util import ShapeError, gemm_ready, promote, sum_to


class MatMul(Node):
    """2-D or batched product with equal-rank inputs; broadcasting of batch dims is handled
    by ``matmul`` before recording, so the vjp is two products."""

    __slots__ = ()
    save_inputs = (0, 1)

    def forward(self, a, b):
        return np.matmul(gemm_ready(a), gemm_ready(b))

    def backward(self, g):
        a, b = self.saved_tensors()
        ga = g @ b.mT if self.next[0] is not None else None
        gb = a.mT @ g if self.next[1] is not None else None
        if ga is not None and ga._data.shape != a._data.shape:
            ga = sum_to(ga, a._data.shape)
        if gb is not None and gb._data.shape != b._data.shape:
            gb = sum_to(gb, b._data.shape)
        return ga, gb

    @classmethod
    def op_name(cls):
        return "Mm"


def _mismatch(a, b):
    sa = "x".join(map(str, a._data.shape))
    sb = "x".join(map(str, b._data.shape))
    return ShapeError(f"mat1 and mat2 shapes cannot be multiplied ({sa} and {sb})")


def matmul(input, other) -> Tensor:
    """Matrix product with NumPy/PyTorch semantics for 1-D, 2-D and batched operands.

    >>> import retrograd as rg
    >>> (rg.ones(2, 3) @ rg.ones(3)).tolist()
    [3.0, 3.0]
    """
    if not isinstance(input, Tensor) or not isinstance(other, Tensor):
        raise TypeError("matmul(): both arguments must be Tensors")
    a, b = input, other
    if a._data.ndim == 0 or b._data.ndim == 0:
        raise RuntimeError(
            f"both arguments to matmul need to be at least 1D, but they are {a._data.ndim}D and "
            f"{b._data.ndim}D"
        )
    if a._data.dtype != b._data.dtype:
        if a._data.dtype.kind == "f" and b._data.dtype.kind == "f":
            raise RuntimeError(
                f"expected m1 and m2 to have the same dtype, but got: {a.dtype.name} != "
                f"{b.dtype.name}"
            )
        a, b = promote([a, b])
    if a._data.shape[-1] != b._data.shape[-2 if b._data.ndim > 1 else 0]:
        if a._data.ndim <= 2 and b._data.ndim <= 2:
            if a._data.ndim == 1 and b._data.ndim == 1:
                raise ShapeError(
                    f"inconsistent tensor size, expected tensor [{a._data.shape[0]}] and src "
                    f"[{b._data.shape[0]}] to have the same number of elements, but got "
                    f"{a._data.shape[0]} and {b._data.shape[0]} elements respectively"
                )
            raise _mismatch(a, b)
        raise ShapeError(
            f"Expected size for first two dimensions of batch2 tensor to be: "
            f"{list(b._data.shape[:-2]) + [a._data.shape[-1]]} but got: {list(b._data.shape)} "
            f"(matmul of shapes {tuple(a._data.shape)} and {tuple(b._data.shape)})"
        )
    squeeze_a = a._data.ndim == 1
    squeeze_b = b._data.ndim == 1
    if squeeze_a:
        a = a.unsqueeze(0)
    if squeeze_b:
        b = b.unsqueeze(-1)
    # a 3-D+ input against a matrix: fold the batch into rows (one GEMM, no broadcast)
    if b._data.ndim == 2 and a._data.ndim > 2:
        lead = a._data.shape[:-1]
        out = apply(MatMul, (a.reshape(-1, a._data.shape[-1]), b)).reshape(*lead, b._data.shape[-1])
    else:
        if a._data.ndim != b._data.ndim or a._data.shape[:-2] != b._data.shape[:-2]:
            from ._util import broadcast_shape

            batch = broadcast_shape(a._data.shape[:-2], b._data.shape[:-2], "matmul")
            if a._data.shape[:-2] != batch:
                a = a.expand(*batch, *a._data.shape[-2:])
            if b._data.shape[:-2] != batch:
                b = b.expand(*batch, *b._data.shape[-2:])
        out = apply(MatMul, (a, b))
    if squeeze_a:
        out = out.squeeze(-2)
    if squeeze_b:
        out = out.squeeze(-1)
    return out


def mm(input, mat2) -> Tensor:
    if input._data.ndim != 2 or mat2._data.ndim != 2:
        raise RuntimeError(
            f"mm(): expected 2-D tensors, got {input._data.ndim}-D and {mat2._data.ndim}-D"
        )
    return matmul(input, mat2)


def bmm(input, mat2) -> Tensor:
    if input._data.ndim != 3 or mat2._data.ndim != 3:
        raise RuntimeError(
            f"bmm(): batch1 must be a 3D tensor, got {input._data.ndim}-D and {mat2._data.ndim}-D"
        )
    if input._data.shape[0] != mat2._data.shape[0]:
        raise ShapeError(
            f"bmm(): batch sizes differ: {tuple(input._data.shape)} and {tuple(mat2._data.shape)}"
        )
    return matmul(input, mat2)


def mv(input, vec) -> Tensor:
    return matmul(input, vec)


def dot(input, other) -> Tensor:
    if input._data.ndim != 1 or other._data.ndim != 1:
        raise RuntimeError(
            f"1D tensors expected, but got {input._data.ndim}D and {other._data.ndim}D tensors"
        )
    return matmul(input, other)


inner = dot


def outer(input, vec2) -> Tensor:
    """Outer product of two 1-D tensors."""
    if input._data.ndim != 1 or vec2._data.ndim != 1:
        raise RuntimeError(
            f"outer: Expected 1-D arguments, but got {input._data.ndim}-D and {vec2._data.ndim}-D"
        )
    return input.unsqueeze(-1) * vec2.unsqueeze(0)


ger = outer


def addmm(input, mat1, mat2, *, beta=1, alpha=1) -> Tensor:
    prod = mm(mat1, mat2)
    if alpha != 1:
        prod = prod * alpha
    return prod + (input if beta == 1 else input * beta)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1) -> Tensor:
    prod = bmm(batch1, batch2)
    if alpha != 1:
        prod = prod * alpha
    return prod + (input if beta == 1 else input * beta)


class Einsum(Node):
    """vjp of operand i: an einsum of g with the other operands into operand i's subscripts
    (repeated/diagonal subscripts within one operand are not supported)."""

    __slots__ = ("ins", "out")

    def forward(self, *arrays, ins, out):
        self.ins, self.out = ins, out
        return np.einsum(",".join(ins) + "->" + out, *arrays, optimize=len(arrays) > 2)

    def backward(self, g):
        ops = self.saved_tensors()
        grads = []
        for i, sub in enumerate(self.ins):
            if self.next[i] is None:
                grads.append(None)
                continue
            others = [o for j, o in enumerate(ops) if j != i]
            osubs = [s for j, s in enumerate(self.ins) if j != i]
            present = set(self.out).union(*osubs) if osubs else set(self.out)
            missing = [c for c in sub if c not in present]
            gi = einsum(
                ",".join([self.out, *osubs]) + "->" + "".join(c for c in sub if c in present),
                g,
                *others,
            )
            shape = ops[i]._data.shape
            if missing:  # summed-out index only in this operand: broadcast back
                keep = "".join(c for c in sub if c in present)
                gi = gi.reshape(*[shape[sub.index(c)] if c in keep else 1 for c in sub]).expand(
                    *shape
                )
            if gi._data.shape != shape:  # size-1 dims broadcast against size n
                # n here and 1 in the operand: sum; 1 here and n in the operand: expand
                axes = tuple(k for k, (a, b) in enumerate(zip(gi._data.shape, shape)) if b == 1)
                if axes:
                    gi = gi.sum(dim=axes, keepdim=True)
                if gi._data.shape != shape:
                    gi = gi.expand(*shape)
            grads.append(gi)
        return tuple(grads)


def _parse_einsum(eq: str, operands):
    eq = eq.replace(" ", "")
    if "->" in eq:
        lhs, out = eq.split("->")
    else:
        lhs = eq
        letters = lhs.replace(",", "").replace("...", "")
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    ins = lhs.split(",")
    if len(ins) != len(operands):
        raise RuntimeError(
            f"einsum(): {len(ins)} operands in the equation but {len(operands)} were given"
        )
    if "..." in eq:
        free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in eq]
        n_ell = max(op._data.ndim - (len(s) - 3) for s, op in zip(ins, operands) if "..." in s)
        ell = "".join(free[:n_ell])
        new_ins = []
        for s, op in zip(ins, operands):
            if "..." in s:
                k = op._data.ndim - (len(s) - 3)
                s = s.replace("...", ell[n_ell - k :])
            new_ins.append(s)
        ins = new_ins
        out = out.replace("...", ell) if "..." in out else (ell + out if "->" not in eq else out)
    for s, op in zip(ins, operands):
        if len(s) != op._data.ndim:
            raise RuntimeError(
                f"einsum(): the number of subscripts in the equation ({len(s)}) does not match the "
                f"number of dimensions ({op._data.ndim}) for operand {tuple(op._data.shape)}"
            )
        for c in set(s):
            if s.count(c) > 1 and len({op._data.shape[i] for i, x in enumerate(s) if x == c}) > 1:
                raise ShapeError(
                    f"einsum(): subscript {c} is repeated for operand {tuple(op._data.shape)} "
                    "but the sizes don't match"
                )
    sizes: dict = {}
    for s, op in zip(ins, operands):
        for c, n in zip(s, op._data.shape):
            if sizes.setdefault(c, n) != n and n != 1 and sizes[c] != 1:
                raise ShapeError(
                    f"einsum(): operands do not broadcast with remapped shapes: subscript {c!r} "
                    f"has size {sizes[c]} and {n} (operand shapes "
                    f"{[tuple(o._data.shape) for o in operands]})"
                )
            if sizes[c] == 1:
                sizes[c] = n
    for c in out:
        if c not in sizes:
            raise RuntimeError(
                f"einsum(): output subscript {c} does not appear in the equation for any input "
                "operand"
            )
    return ins, out


def einsum(*args) -> Tensor:
    """Einstein summation, as ``torch.einsum``: ``einsum('bij,bjk->bik', a, b)``, the operands
    as one list, or the sublist form ``einsum(a, [0, 1], b, [1, 2], [0, 2])``.

    >>> import retrograd as rg
    >>> rg.einsum("ij,j->i", rg.ones(2, 3), rg.ones(3))
    tensor([3., 3.])
    """
    if not args:
        raise TypeError("einsum(): must specify the equation string and at least one operand")
    if isinstance(args[0], str):
        equation, operands = args[0], args[1:]
    else:
        equation, operands = _sublist_equation(args)
    if len(operands) == 1 and isinstance(operands[0], list | tuple):
        operands = tuple(operands[0])
    ins, out = _parse_einsum(equation, operands)
    ops = promote(list(operands))
    for k, s in enumerate(ins):
        if len(set(s)) != len(s):  # 'ii->i', 'ii->', 'iij->j': take the diagonal first
            ins[k], ops[k] = _diagonal(s, ops[k])
    return apply(_einsum_node(len(ops)), tuple(ops), {"ins": ins, "out": out})


def _sublist_equation(args) -> tuple:
    """``(a, [0, 1], b, [1, 2], [0, 2])`` -> ``("ab,bc->ac", (a, b))``; Ellipsis is ``...``."""
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

    def subs(lst):
        out = []
        for v in lst:
            if v is Ellipsis:
                out.append("...")
            elif isinstance(v, int) and 0 <= v < len(letters):
                out.append(letters[v])
            else:
                raise ValueError(
                    f"einsum(): expected subscript in [0, {len(letters)}) or Ellipsis, got {v!r}"
                )
        return "".join(out)

    pairs = list(args)
    out = None
    if len(pairs) % 2 == 1:
        out = subs(pairs.pop())
    operands = tuple(pairs[0::2])
    eq = ",".join(subs(s) for s in pairs[1::2])
    return (eq if out is None else eq + "->" + out), operands


def _diagonal(sub: str, op: Tensor):
    """The generalised diagonal of ``op`` over repeated subscripts, as a differentiable
    advanced index (its vjp scatter-adds back onto the diagonal)."""
    from .indexing import getitem

    uniq = "".join(dict.fromkeys(sub))
    sizes = {c: op._data.shape[sub.index(c)] for c in uniq}
    idx = []
    for c in sub:
        k = uniq.index(c)
        shape = [1] * len(uniq)
        shape[k] = sizes[c]
        idx.append(np.arange(sizes[c]).reshape(shape))
    return uniq, getitem(op, tuple(idx))


_EINSUM_NODES: dict = {}


def _einsum_node(n: int):
    """An Einsum node class that saves all ``n`` operands (one class per arity)."""
    cls = _EINSUM_NODES.get(n)
    if cls is None:
        cls = _EINSUM_NODES[n] = type(
            "Einsum", (Einsum,), {"__slots__": (), "save_inputs": tuple(range(n))}
        )
    return cls

"""Errors: PyTorch's exception classes, messages that name the op, shapes and dims, and no raw
NumPy exception escaping from an op."""

from __future__ import annotations

import pytest

import retrograd as rg
from retrograd.ops._util import ShapeError

F = rg.nn.functional


def test_T60_matmul_mismatch_names_both_shapes():
    a, b = rg.ones(2, 3), rg.ones(4, 5)
    with pytest.raises(RuntimeError, match=r"2x3 and 4x5"):
        a @ b
    with pytest.raises(ValueError, match=r"2x3 and 4x5"):
        a @ b
    with pytest.raises(ShapeError):
        rg.mm(a, b)
    with pytest.raises(RuntimeError, match=r"\(2, 2, 3\).*\(2, 4, 5\)"):
        rg.ones(2, 2, 3) @ rg.ones(2, 4, 5)
    with pytest.raises(RuntimeError, match="3.*4"):
        rg.dot(rg.ones(3), rg.ones(4))


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.sum(2),
        lambda x: x.sum((0, 5)),
        lambda x: x.mean(-3),
        lambda x: x.softmax(3),
        lambda x: x.log_softmax(-4),
        lambda x: x.max(4),
        lambda x: x.argmax(4),
        lambda x: x.cumsum(3),
        lambda x: x.var(4),
        lambda x: x.norm(dim=3),
        lambda x: x.transpose(0, 3),
        lambda x: x.squeeze(4),
        lambda x: x.flip(3),
        lambda x: x.gather(3, rg.tensor([[0]])),
        lambda x: x.logsumexp(3),
        lambda x: x.unbind(2),
        lambda x: rg.cat([x, x], 2),
    ],
)
def test_bad_dim_names_ndim(fn):
    with pytest.raises(IndexError, match=r"Dimension out of range.*2 dimensions"):
        fn(rg.ones(2, 3))


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x[5],
        lambda x: x[0, 7],
        lambda x: x[-3],
        lambda x: x[0, 0, 0],
        lambda x: x[rg.tensor([0, 9])],
        lambda x: x[[0, 2]],
        lambda x: x.gather(1, rg.tensor([[5]])),
        lambda x: x.index_select(0, rg.tensor([4])),
        lambda x: x.scatter(1, rg.tensor([[9]]), 1.0),
        lambda x: x.index_fill(1, rg.tensor([7]), 0.0),
        lambda x: rg.take(x, rg.tensor([10])),
        lambda x: x.__setitem__(7, 1.0),
        lambda x: x.__setitem__(rg.tensor([5]), 1.0),
        lambda x: x.narrow(1, 2, 5),
        lambda x: x[rg.tensor([0.5])],
    ],
)
def test_out_of_range_index_is_index_error(fn):
    with pytest.raises(IndexError):
        fn(rg.ones(2, 3))


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, y: x + y,
        lambda x, y: x - y,
        lambda x, y: x * y,
        lambda x, y: x / y,
        lambda x, y: x**y,
        lambda x, y: x % y,
        lambda x, y: x < y,
        lambda x, y: x == y,
        lambda x, y: rg.maximum(x, y),
        lambda x, y: rg.where(x > 0, x, y),
        lambda x, y: rg.logical_and(x > 0, y > 0),
        lambda x, y: rg.lerp(x, y, 0.5),
        lambda x, y: x.masked_fill(y > 0, 0.0),
        lambda x, y: rg.masked_select(x, y > 0),
        lambda x, y: x.add_(y),
    ],
)
def test_broadcast_mismatch_names_both_shapes(fn):
    x, y = rg.ones(2, 3), rg.ones(4)
    with pytest.raises(RuntimeError, match=r"\(3\).*\(4\)|\(4\).*\(3\)"):
        fn(x, y)
    with pytest.raises(ValueError):
        fn(x, y)


@pytest.mark.parametrize(
    "name,fn",
    [
        ("reshape", lambda x: x.reshape(4, 2)),
        ("view", lambda x: x.view(5)),
        ("expand", lambda x: x.expand(3, 3)),
        ("cat", lambda x: rg.cat([x, rg.ones(2, 4)])),
        ("stack", lambda x: rg.stack([x, rg.ones(3, 2)])),
        ("setitem", lambda x: x.__setitem__(0, rg.ones(4))),
        ("einsum", lambda x: rg.einsum("ij,jk->ik", x, rg.ones(4, 2))),
        ("take_along_dim", lambda x: rg.take_along_dim(x, rg.tensor([[0], [1], [0]]), 1)),
        ("index_add", lambda x: x.index_add(0, rg.tensor([0]), rg.ones(1, 4))),
        ("add_", lambda x: rg.ones(3).add_(rg.ones(2, 3))),
        ("backward", lambda x: (x * 2).backward(rg.ones(2))),
    ],
)
def test_shape_errors_are_runtime_and_value_errors(name, fn):
    x = rg.ones(2, 3, requires_grad=name == "backward")
    with pytest.raises(ShapeError):
        fn(x)


def test_other_errors_follow_torch(torch):
    x = rg.ones(2, 3)
    with pytest.raises(RuntimeError, match="duplicate"):
        x.permute(0, 0)
    with pytest.raises(RuntimeError, match="Padding"):
        F.pad(x, (1, 1, 1, 1, 1, 1))
    with pytest.raises(RuntimeError, match="Padding size"):
        F.pad(x, (3, 3), mode="reflect")
    with pytest.raises(RuntimeError, match="repeat"):
        x.repeat(2)
    with pytest.raises(RuntimeError, match="1-D"):
        rg.outer(x, rg.ones(3))
    with pytest.raises(RuntimeError, match="output subscript"):
        rg.einsum("ij,jk->iq", x, rg.ones(3, 2))
    with pytest.raises(RuntimeError, match="6 elements"):
        x.item()
    with pytest.raises(RuntimeError, match="bool"):
        rg.tensor([True]) - rg.tensor([True])
    with pytest.raises(RuntimeError, match="k out of range"):
        x.topk(5)
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        rg.ones(3).tril()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(x)
    with pytest.raises(RuntimeError, match="Integers to negative integer powers"):
        rg.tensor([2]) ** -1
    with pytest.raises(RuntimeError, match="requires grad"):
        rg.ones(2, requires_grad=True).numpy()
    with pytest.raises(TypeError):
        len(rg.tensor(1.0))
    with pytest.raises(ValueError):
        rg.tensor([[1, 2], [3]])


def test_no_raw_numpy_exception_escapes():
    """Every probe raises one of our messages, never NumPy's own (which say 'axis' or
    'operands could not be broadcast')."""
    x = rg.ones(2, 3)
    probes = [
        lambda: rg.logical_or(x > 0, rg.ones(4) > 0),
        lambda: rg.tensor([5, 3]).bitwise_and(rg.tensor([1, 2, 3])),
        lambda: rg.einsum("ij,jk->ik", x, rg.ones(4, 2)),
        lambda: rg.take_along_dim(x, rg.tensor([[0, 1], [0, 1], [0, 1]]), 1),
        lambda: x.index_add(0, rg.tensor([0]), rg.ones(1, 4)),
        lambda: x.index_fill(1, rg.tensor([7]), 0.0),
        lambda: rg.masked_select(x, rg.tensor([True, False])),
        lambda: x[rg.tensor([True, False, True])],
        lambda: x[0, 0, 0],
        lambda: x.copy_(rg.ones(4)),
        lambda: x.repeat(-1, 1),
        lambda: x.tile((-1,)),
        lambda: rg.ones(3).repeat_interleave(rg.tensor([1, 2])),
        lambda: rg.take(x, rg.tensor([0.5])),
        lambda: rg.einsum("ii->i", rg.ones(2, 3)),
    ]
    for p in probes:
        with pytest.raises(Exception) as ei:
            p()
        msg = str(ei.value)
        assert "axis" not in msg and "operands could not be broadcast" not in msg, msg
        assert type(ei.value).__module__ != "numpy.exceptions", type(ei.value)

"""Losses vs PyTorch (values and input gradients), stability pitfalls and error messages."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import retrograd as rg

F = rg.nn.functional
RTOL, ATOL = 1e-4, 1e-5


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def check(torch, rg_fn, t_fn, diff, const=(), rtol=RTOL, atol=ATOL):
    """Run both losses on the same inputs; compare value and gradients of ``diff`` inputs."""
    rin = [rg.tensor(a, requires_grad=True) for a in diff]
    tin = [torch.from_numpy(a.copy()).requires_grad_(True) for a in diff]
    rc = [rg.tensor(c) for c in const]
    tc = [torch.from_numpy(np.asarray(c).copy()) for c in const]
    yr, yt = rg_fn(*rin, *rc), t_fn(*tin, *tc)
    np.testing.assert_allclose(yr.detach().numpy(), yt.detach().numpy(), rtol=rtol, atol=atol)
    g = np.random.default_rng(2).standard_normal(tuple(yt.shape)).astype(np.float32)
    yr.backward(rg.tensor(g))
    yt.backward(torch.from_numpy(g))
    for a, b in zip(rin, tin):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=atol)
        assert a.grad.dtype == rg.float32


RED = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"ignore_index": 1},
        {"label_smoothing": 0.2},
        {"weight": True},
        {"weight": True, "ignore_index": 0, "label_smoothing": 0.1},
    ],
)
@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5), (2, 4, 2, 3), (4,)])
def test_cross_entropy_indices_matches_torch(torch, reduction, kw, shape):
    kw = dict(kw)
    c = shape[1] if len(shape) > 1 else shape[0]
    x = randn(*shape) * 3
    tshape = (shape[0],) + shape[2:] if len(shape) > 1 else ()
    tgt = np.random.default_rng(1).integers(0, c, tshape).astype(np.int64)
    kr, kt = dict(kw), dict(kw)
    if kw.get("weight"):
        w = np.random.default_rng(3).uniform(0.5, 2, c).astype(np.float32)
        kr["weight"], kt["weight"] = rg.tensor(w), torch.from_numpy(w)
    check(
        torch,
        lambda a, t: F.cross_entropy(a, t, reduction=reduction, **kr),
        lambda a, t: torch.nn.functional.cross_entropy(a, t, reduction=reduction, **kt),
        [x],
        [tgt],
    )
    mr = rg.nn.CrossEntropyLoss(reduction=reduction, **kr)
    mt = torch.nn.CrossEntropyLoss(reduction=reduction, **kt)
    check(torch, mr, mt, [x], [tgt])


@pytest.mark.parametrize("kw", [{}, {"label_smoothing": 0.3}, {"weight": True}])
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4)])
def test_cross_entropy_probabilities_matches_torch(torch, kw, shape):
    kw = dict(kw)
    x = randn(*shape)
    p = np.random.default_rng(4).dirichlet(np.ones(shape[1]), (shape[0],) + shape[2:])
    p = np.moveaxis(p, -1, 1).astype(np.float32)
    kr, kt = dict(kw), dict(kw)
    if kw.get("weight"):
        w = np.linspace(0.5, 2, shape[1]).astype(np.float32)
        kr["weight"], kt["weight"] = rg.tensor(w), torch.from_numpy(w)
    for red in RED:
        check(
            torch,
            lambda a, t, red=red: F.cross_entropy(a, t, reduction=red, **kr),
            lambda a, t, red=red: torch.nn.functional.cross_entropy(a, t, reduction=red, **kt),
            [x],
            [p],
        )


def test_T28_cross_entropy_huge_logits():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            for tgt, loss, grad in [(0, 0.0, [0.0, 0.0, 0.0]), (2, 2000.0, [1.0, 0.0, -1.0])]:
                x = rg.tensor([[1000.0, 0.0, -1000.0]], requires_grad=True)
                y = F.cross_entropy(x, rg.tensor([tgt]))
                y.backward()
                assert y.item() == loss
                np.testing.assert_allclose(x.grad.numpy()[0], grad, atol=1e-7)


def test_T29_cross_entropy_path_is_finite_where_log_softmax_naive_underflows():
    x = rg.tensor([[0.0, 50.0, -50.0]], requires_grad=True)
    for t in range(3):
        x.grad = None
        F.cross_entropy(x, rg.tensor([t])).backward()
        assert np.isfinite(x.grad.numpy()).all()
    x.grad = None
    F.nll_loss(F.log_softmax(x, 1), rg.tensor([2])).backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_T30_masked_logits():
    x = rg.tensor([[0.0, -float("inf")]], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = F.cross_entropy(x, rg.tensor([0]))
        y.backward()
    assert y.item() == 0.0
    assert np.isfinite(x.grad.numpy()[0, 0])
    assert x.grad.numpy()[0, 0] == 0.0


def test_T62_float_targets_rejected_clearly():
    x = rg.randn(4, 3)
    with pytest.raises(TypeError) as e:
        F.cross_entropy(x, rg.tensor([0.0, 1.0, 2.0, 1.0]))
    msg = str(e.value)
    assert "class indices" in msg and "probabilities" in msg and "target" in msg
    with pytest.raises(TypeError):
        F.nll_loss(x, rg.tensor([0.0, 1.0, 2.0, 1.0]))


def test_T63_out_of_range_class_index():
    x = rg.randn(2, 3)
    with pytest.raises(IndexError, match=r"Target 5 is out of bounds \[0, 3\)"):
        F.cross_entropy(x, rg.tensor([0, 5]))
    with pytest.raises(IndexError, match="Target -1"):
        F.cross_entropy(x, rg.tensor([-1, 0]))
    with pytest.raises(IndexError):
        F.nll_loss(x, rg.tensor([3, 0]))
    # -1 is fine when it is the ignore_index
    assert np.isfinite(F.cross_entropy(x, rg.tensor([-1, 0]), ignore_index=-1).item())


def test_T64_mse_broadcast_warns(torch):
    pred, tgt = rg.randn(4, 1), rg.randn(4)
    with pytest.warns(UserWarning, match="different to the input size"):
        r = F.mse_loss(pred, tgt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = torch.nn.functional.mse_loss(
            torch.from_numpy(pred.numpy()), torch.from_numpy(tgt.numpy())
        )
    np.testing.assert_allclose(r.item(), t.item(), rtol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.mse_loss(pred, rg.randn(4, 1))


def test_T65_empty_batch(torch):
    x = rg.zeros(0, 3, requires_grad=True)
    tx = torch.zeros(0, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = F.cross_entropy(x, rg.zeros(0, dtype=rg.int64))
        m = F.mse_loss(x, rg.zeros(0, 3))
        s = F.cross_entropy(x, rg.zeros(0, dtype=rg.int64), reduction="sum")
    assert np.isnan(y.item()) and np.isnan(
        torch.nn.functional.cross_entropy(tx, torch.zeros(0, dtype=torch.long)).item()
    )
    assert np.isnan(m.item())
    assert s.item() == 0.0
    y.backward()
    assert x.grad.shape == (0, 3)
    assert F.softmax(x, 1).shape == (0, 3)


def test_cross_entropy_all_ignored_is_nan_like_torch(torch):
    x = randn(3, 4)
    t = np.array([-100, -100, -100], np.int64)
    r = F.cross_entropy(rg.tensor(x), rg.tensor(t)).item()
    tt = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)).item()
    assert np.isnan(r) and np.isnan(tt)


def test_cross_entropy_shape_errors():
    with pytest.raises(ValueError, match="batch_size"):
        F.cross_entropy(rg.randn(4, 3), rg.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="weight"):
        F.cross_entropy(rg.randn(4, 3), rg.tensor([0, 1, 1, 0]), weight=rg.ones(4))
    with pytest.raises(ValueError):
        F.cross_entropy(rg.randn(4, 3), rg.tensor([0, 1, 1, 0]), reduction="avg")


@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("weight", [False, True])
def test_nll_matches_torch(torch, reduction, weight):
    x = randn(5, 4)
    t = np.array([0, 3, 1, 1, 2], np.int64)
    w = np.linspace(0.2, 1.5, 4).astype(np.float32)
    kr = {"weight": rg.tensor(w)} if weight else {}
    kt = {"weight": torch.from_numpy(w)} if weight else {}
    check(
        torch,
        lambda a, b: F.nll_loss(a, b, reduction=reduction, ignore_index=1, **kr),
        lambda a, b: torch.nn.functional.nll_loss(a, b, reduction=reduction, ignore_index=1, **kt),
        [x],
        [t],
    )
    check(
        torch,
        rg.nn.NLLLoss(reduction=reduction, **kr),
        torch.nn.NLLLoss(reduction=reduction, **kt),
        [x],
        [t],
    )


REG = [
    ("MSELoss", {}),
    ("L1Loss", {}),
    ("SmoothL1Loss", {}),
    ("SmoothL1Loss", {"beta": 0.5}),
    ("SmoothL1Loss", {"beta": 0.0}),
    ("HuberLoss", {}),
    ("HuberLoss", {"delta": 0.3}),
    ("SoftMarginLoss", {}),
]


@pytest.mark.parametrize("name,kw", REG)
@pytest.mark.parametrize("reduction", RED)
def test_regression_losses_match_torch(torch, name, kw, reduction):
    x, y = randn(4, 3) * 2, randn(4, 3, seed=1)
    r, t = (
        getattr(rg.nn, name)(reduction=reduction, **kw),
        getattr(torch.nn, name)(reduction=reduction, **kw),
    )
    if name == "SoftMarginLoss":  # target not differentiable in torch
        check(torch, r, t, [x], [np.sign(y)])
    else:
        check(torch, r, t, [x, y])


@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("weight", [False, True])
def test_bce_matches_torch(torch, reduction, weight):
    p = np.random.default_rng(0).uniform(0.01, 0.99, (4, 3)).astype(np.float32)
    y = np.random.default_rng(1).uniform(0, 1, (4, 3)).astype(np.float32)
    w = np.linspace(0.5, 2, 3).astype(np.float32)
    r = rg.nn.BCELoss(weight=rg.tensor(w) if weight else None, reduction=reduction)
    t = torch.nn.BCELoss(weight=torch.from_numpy(w) if weight else None, reduction=reduction)
    check(torch, r, t, [p, y])


@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("pos", [False, True])
@pytest.mark.parametrize("weight", [False, True])
def test_bce_with_logits_matches_torch(torch, reduction, pos, weight):
    x = randn(4, 3) * 4
    y = np.random.default_rng(1).uniform(0, 1, (4, 3)).astype(np.float32)
    pw = np.array([0.5, 2.0, 3.0], np.float32)
    w = np.linspace(0.5, 2, 3).astype(np.float32)
    r = rg.nn.BCEWithLogitsLoss(
        weight=rg.tensor(w) if weight else None,
        reduction=reduction,
        pos_weight=rg.tensor(pw) if pos else None,
    )
    t = torch.nn.BCEWithLogitsLoss(
        weight=torch.from_numpy(w) if weight else None,
        reduction=reduction,
        pos_weight=torch.from_numpy(pw) if pos else None,
    )
    check(torch, r, t, [x, y])


def test_T34_bce_stability():
    x = rg.tensor([100.0], requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, rg.tensor([0.0]))
    loss.backward()
    assert loss.item() == 100.0 and x.grad.item() == 1.0
    x = rg.tensor([-float("inf")], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.binary_cross_entropy_with_logits(x, rg.tensor([0.0]))
        loss.backward()
    assert loss.item() == 0.0 and x.grad.item() == 0.0
    p = rg.tensor([1.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.binary_cross_entropy(p, rg.tensor([0.0]))
        loss.backward()
    assert loss.item() == 100.0 and np.isfinite(p.grad.item())
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(rg.tensor([1.5]), rg.tensor([0.0]))


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none", "mean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(torch, reduction, log_target):
    x = np.log(np.random.default_rng(0).dirichlet(np.ones(4), 3)).astype(np.float32)
    t = np.random.default_rng(1).dirichlet(np.ones(4), 3).astype(np.float32)
    t[0, 1] = 0.0
    if log_target:
        t = np.log(t + 1e-3).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(
            torch,
            rg.nn.KLDivLoss(reduction=reduction, log_target=log_target),
            torch.nn.KLDivLoss(reduction=reduction, log_target=log_target),
            [x],
            [t],
        )


@pytest.mark.parametrize("reduction", RED)
def test_pair_and_margin_losses_match_torch(torch, reduction):
    a, b = randn(5, 4), randn(5, 4, seed=1)
    s = np.array([1, -1, 1, -1, 1], np.float32)
    check(
        torch,
        rg.nn.CosineEmbeddingLoss(0.2, reduction=reduction),
        torch.nn.CosineEmbeddingLoss(0.2, reduction=reduction),
        [a, b],
        [s],
    )
    check(
        torch,
        rg.nn.MarginRankingLoss(0.3, reduction=reduction),
        torch.nn.MarginRankingLoss(0.3, reduction=reduction),
        [a[:, 0].copy(), b[:, 0].copy()],
        [s],
    )
    check(
        torch,
        rg.nn.HingeEmbeddingLoss(0.5, reduction=reduction),
        torch.nn.HingeEmbeddingLoss(0.5, reduction=reduction),
        [a],
        [np.sign(b)],
    )
    c = randn(5, 4, seed=2)
    check(
        torch,
        rg.nn.TripletMarginLoss(reduction=reduction),
        torch.nn.TripletMarginLoss(reduction=reduction),
        [a, b, c],
    )
    check(
        torch,
        rg.nn.TripletMarginLoss(swap=True, p=1, reduction=reduction),
        torch.nn.TripletMarginLoss(swap=True, p=1, reduction=reduction),
        [a, b, c],
    )
    t = np.array([0, 3, 1, 2, 2], np.int64)
    for p in (1, 2):
        check(
            torch,
            rg.nn.MultiMarginLoss(p=p, reduction=reduction),
            torch.nn.MultiMarginLoss(p=p, reduction=reduction),
            [a],
            [t],
        )
    check(
        torch,
        rg.nn.MultiLabelSoftMarginLoss(reduction=reduction),
        torch.nn.MultiLabelSoftMarginLoss(reduction=reduction),
        [a],
        [(b > 0).astype(np.float32)],
    )


@pytest.mark.parametrize("reduction", RED)
def test_nll_family_misc_match_torch(torch, reduction):
    x, y = randn(4, 3), np.abs(randn(4, 3, seed=1)) * 3
    var = np.abs(randn(4, 3, seed=2)) + 0.1
    check(
        torch,
        rg.nn.GaussianNLLLoss(reduction=reduction),
        torch.nn.GaussianNLLLoss(reduction=reduction),
        [x, y, var],
    )
    check(
        torch,
        rg.nn.GaussianNLLLoss(full=True, reduction=reduction),
        torch.nn.GaussianNLLLoss(full=True, reduction=reduction),
        [x, y, var],
    )
    for kw in ({}, {"full": True}, {"log_input": False}):
        xx = np.abs(x) + 0.1 if kw.get("log_input") is False else x
        check(
            torch,
            rg.nn.PoissonNLLLoss(reduction=reduction, **kw),
            torch.nn.PoissonNLLLoss(reduction=reduction, **kw),
            [xx],
            [np.round(y)],
        )


def test_loss_module_reprs_and_state(torch):
    assert repr(rg.nn.CrossEntropyLoss()) == repr(torch.nn.CrossEntropyLoss())
    w = rg.ones(3)
    assert list(rg.nn.CrossEntropyLoss(weight=w).state_dict()) == list(
        torch.nn.CrossEntropyLoss(weight=torch.ones(3)).state_dict()
    )


# --- gradcheck of the fused primitives ---------------------------------------------------------


def _d(*shape, seed=0):
    return rg.tensor(
        np.random.default_rng(seed).standard_normal(shape), dtype=rg.float64, requires_grad=True
    )


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"ignore_index": 2},
        {"label_smoothing": 0.25},
        {"weight": True, "ignore_index": 0, "label_smoothing": 0.1},
        {"reduction": "none"},
        {"reduction": "sum", "weight": True},
    ],
)
def test_cross_entropy_gradcheck_and_gradgradcheck(kw):
    kw = dict(kw)
    if kw.pop("weight", False):
        kw["weight"] = rg.tensor([0.5, 1.0, 2.0, 1.5], dtype=rg.float64)
    x = _d(5, 4)
    t = rg.tensor([0, 2, 3, 1, 2])

    def fn(a):
        return F.cross_entropy(a, t, **kw)

    assert rg.autograd.gradcheck(fn, (x,))
    assert rg.autograd.gradgradcheck(fn, (x,))


def test_cross_entropy_spatial_gradcheck():
    x = _d(2, 3, 4)
    t = rg.tensor([[0, 1, 2, 1], [2, 2, 0, 1]])
    assert rg.autograd.gradcheck(lambda a: F.cross_entropy(a, t, label_smoothing=0.1), (x,))


def test_bce_primitives_gradcheck():
    x = _d(4, 3)
    y = rg.tensor(
        np.random.default_rng(1).uniform(0, 1, (4, 3)), dtype=rg.float64, requires_grad=True
    )
    pw = rg.tensor([0.5, 2.0, 1.0], dtype=rg.float64)
    assert rg.autograd.gradcheck(
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, pos_weight=pw), (x, y)
    )
    assert rg.autograd.gradgradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b), (x, y))
    p = rg.tensor(
        np.random.default_rng(2).uniform(0.1, 0.9, (4, 3)), dtype=rg.float64, requires_grad=True
    )
    assert rg.autograd.gradcheck(lambda a, b: F.binary_cross_entropy(a, b), (p, y))

"""Layers vs PyTorch with identical weights: outputs, parameter and input gradients."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg

RTOL, ATOL = 1e-4, 1e-5


def copy_weights(torch, rg_mod, t_mod):
    """Load retrograd's state dict into the torch module (NumPy exchange)."""
    sd = {k: torch.from_numpy(v.detach().numpy().copy()) for k, v in rg_mod.state_dict().items()}
    t_mod.load_state_dict(sd)


def compare(
    torch,
    rg_mod,
    t_mod,
    x_np,
    *,
    train=True,
    extra_inputs=(),
    int_input=False,
    rtol=RTOL,
    atol=ATOL,
):
    """Forward + backward of both modules on the same input and a fixed upstream grad."""
    copy_weights(torch, rg_mod, t_mod)
    rg_mod.train(train)
    t_mod.train(train)
    if int_input:
        xr, xt = rg.tensor(x_np), torch.from_numpy(x_np.copy())
    else:
        xr = rg.tensor(x_np, requires_grad=True)
        xt = torch.from_numpy(x_np.copy()).requires_grad_(True)
    yr = rg_mod(xr, *[rg.tensor(e) for e in extra_inputs])
    yt = t_mod(xt, *[torch.from_numpy(e.copy()) for e in extra_inputs])
    np.testing.assert_allclose(yr.detach().numpy(), yt.detach().numpy(), rtol=rtol, atol=atol)
    assert yr.dtype == rg.float32
    g = np.random.default_rng(1).standard_normal(yt.shape).astype(np.float32)
    yr.backward(rg.tensor(g))
    yt.backward(torch.from_numpy(g))
    if not int_input:
        np.testing.assert_allclose(xr.grad.numpy(), xt.grad.numpy(), rtol=rtol, atol=atol)
    tp = dict(t_mod.named_parameters())
    for name, p in rg_mod.named_parameters():
        if tp[name].grad is None:
            assert p.grad is None or not np.any(p.grad.numpy()), name
            continue
        np.testing.assert_allclose(
            p.grad.numpy(), tp[name].grad.numpy(), rtol=rtol, atol=atol, err_msg=name
        )
        assert p.grad.dtype == p.dtype
    tb = dict(t_mod.named_buffers())
    for name, b in rg_mod.named_buffers():
        np.testing.assert_allclose(b.numpy(), tb[name].numpy(), rtol=rtol, atol=atol, err_msg=name)


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# --- Linear -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5), (5,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(torch, shape, bias):
    compare(torch, rg.nn.Linear(5, 3, bias=bias), torch.nn.Linear(5, 3, bias=bias), randn(*shape))


def test_bilinear_matches_torch(torch):
    r, t = rg.nn.Bilinear(3, 4, 2), torch.nn.Bilinear(3, 4, 2)
    copy_weights(torch, r, t)
    a, b = randn(5, 3), randn(5, 4, seed=1)
    ar, br = rg.tensor(a, requires_grad=True), rg.tensor(b, requires_grad=True)
    at, bt = torch.from_numpy(a).requires_grad_(), torch.from_numpy(b).requires_grad_()
    r(ar, br).sum().backward()
    t(at, bt).sum().backward()
    np.testing.assert_allclose(ar.grad.numpy(), at.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(r.weight.grad.numpy(), t.weight.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_T61_linear_wrong_input_size_names_layer():
    fc = rg.nn.Linear(10, 5)
    with pytest.raises(RuntimeError) as e:
        fc(rg.randn(4, 7))
    msg = str(e.value)
    assert "Linear" in msg and "in_features=10" in msg and "got 7" in msg


def test_linear_is_one_node():
    fc = rg.nn.Linear(4, 3)
    y = fc(rg.randn(2, 4))
    assert y.grad_fn.name() == "AddmmBackward0"
    assert all(e is None or not hasattr(e[0], "next") for e in y.grad_fn.next_functions)


# --- activations ------------------------------------------------------------------------------

ACTS = [
    ("ReLU", (), {}),
    ("ReLU6", (), {}),
    ("LeakyReLU", (0.2,), {}),
    ("ELU", (0.7,), {}),
    ("SELU", (), {}),
    ("CELU", (1.3,), {}),
    ("GELU", (), {}),
    ("GELU", (), {"approximate": "tanh"}),
    ("SiLU", (), {}),
    ("Mish", (), {}),
    ("Softplus", (), {"beta": 2.0, "threshold": 3.0}),
    ("Hardtanh", (-0.5, 0.7), {}),
    ("Hardsigmoid", (), {}),
    ("Hardswish", (), {}),
    ("Sigmoid", (), {}),
    ("Tanh", (), {}),
    ("LogSigmoid", (), {}),
    ("Softsign", (), {}),
    ("Tanhshrink", (), {}),
    ("Softmax", (1,), {}),
    ("LogSoftmax", (-1,), {}),
    ("Softmin", (0,), {}),
    ("PReLU", (), {}),
    ("PReLU", (4,), {"init": 0.1}),
    ("GLU", (), {}),
    ("Threshold", (0.1, 20.0), {}),
    ("Hardshrink", (), {}),
    ("Softshrink", (0.3,), {}),
]


@pytest.mark.parametrize("name,args,kw", ACTS, ids=[f"{a[0]}{i}" for i, a in enumerate(ACTS)])
def test_activation_modules_match_torch(torch, name, args, kw):
    x = randn(3, 4, 2) * 3
    compare(torch, getattr(rg.nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw), x)
    assert repr(getattr(rg.nn, name)(*args, **kw)) == repr(getattr(torch.nn, name)(*args, **kw))


def test_inplace_flag_accepted_and_repr(torch):
    for name in ["ReLU", "ReLU6", "SELU", "SiLU", "Hardswish"]:
        r = getattr(rg.nn, name)(inplace=True)
        assert repr(r) == repr(getattr(torch.nn, name)(inplace=True))
        assert r(rg.tensor([-1.0, 2.0])).shape == (2,)
    assert repr(rg.nn.LeakyReLU(0.1, True)) == repr(torch.nn.LeakyReLU(0.1, True))


def test_T32_T33_saturating_activations():
    x = rg.tensor([-1000.0, 0.0, 1000.0], requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = rg.nn.Sigmoid()(x)
        y.sum().backward()
    assert y.tolist() == [0.0, 0.5, 1.0]
    assert x.grad.tolist() == [0.0, 0.25, 0.0]
    t = rg.tensor([1000.0], requires_grad=True)
    rg.nn.Tanh()(t).sum().backward()
    assert t.grad.tolist() == [0.0]


# --- normalisation ----------------------------------------------------------------------------


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"affine": False},
        {"momentum": None},
        {"track_running_stats": False},
        {"momentum": 0.3, "eps": 1e-3},
    ],
)
def test_batchnorm1d_matches_torch(torch, train, kw):
    r, t = rg.nn.BatchNorm1d(4, **kw), torch.nn.BatchNorm1d(4, **kw)
    with rg.no_grad():
        if r.weight is not None:
            r.weight.uniform_(0.5, 1.5)
            r.bias.uniform_(-0.5, 0.5)
    for step in range(3):  # running statistics over several batches
        compare(torch, r, t, randn(6, 4, seed=step) * 2 + 1, train=train)
        copy_weights(torch, r, t)
    compare(torch, r, t, randn(5, 4, 3), train=train)


@pytest.mark.parametrize("train", [True, False])
def test_batchnorm2d_matches_torch(torch, train):
    r, t = rg.nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    compare(torch, r, t, randn(4, 3, 5, 5) * 3 + 2, train=True)
    compare(torch, r, t, randn(2, 3, 4, 4, seed=3), train=train)
    assert int(r.num_batches_tracked.item()) == int(t.num_batches_tracked.item())


@pytest.mark.parametrize("shape,norm", [((4, 6), 6), ((2, 3, 6), (6,)), ((2, 3, 4), (3, 4))])
@pytest.mark.parametrize("kw", [{}, {"elementwise_affine": False}, {"bias": False}, {"eps": 1e-2}])
def test_layernorm_matches_torch(torch, shape, norm, kw):
    r, t = rg.nn.LayerNorm(norm, **kw), torch.nn.LayerNorm(norm, **kw)
    with rg.no_grad():
        for p in r.parameters():
            p.uniform_(0.5, 1.5)
    compare(torch, r, t, randn(*shape) * 2 + 0.5)


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_groupnorm_matches_torch(torch, groups):
    r, t = rg.nn.GroupNorm(groups, 6), torch.nn.GroupNorm(groups, 6)
    with rg.no_grad():
        r.weight.uniform_(0.5, 1.5)
        r.bias.uniform_(-1, 1)
    compare(torch, r, t, randn(3, 6, 4))


@pytest.mark.parametrize("kw", [{}, {"eps": 1e-3}, {"elementwise_affine": False}])
def test_rmsnorm_matches_torch(torch, kw):
    r, t = rg.nn.RMSNorm((3, 4), **kw), torch.nn.RMSNorm((3, 4), **kw)
    with rg.no_grad():
        for p in r.parameters():
            p.uniform_(0.5, 1.5)
    compare(torch, r, t, randn(2, 3, 4))


def test_T44_constant_rows_are_finite():
    for mod, x in [
        (rg.nn.LayerNorm(5), rg.full((3, 5), 7.0)),
        (rg.nn.BatchNorm1d(5), rg.full((4, 5), -2.0)),
        (rg.nn.GroupNorm(1, 5), rg.full((2, 5), 3.0)),
        (rg.nn.RMSNorm(5), rg.zeros(2, 5)),
    ]:
        x.requires_grad_(True)
        y = mod(x)
        (y * rg.randn(*y.shape)).sum().backward()
        assert np.isfinite(y.detach().numpy()).all(), type(mod).__name__
        assert np.isfinite(x.grad.numpy()).all(), type(mod).__name__
        for p in mod.parameters():
            assert np.isfinite(p.grad.numpy()).all()


# --- embedding --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw", [{}, {"padding_idx": 2}, {"padding_idx": -1}, {"scale_grad_by_freq": True}]
)
def test_embedding_matches_torch(torch, kw):
    r, t = rg.nn.Embedding(7, 3, **kw), torch.nn.Embedding(7, 3, **kw)
    ids = np.array([[1, 2, 2], [6, 0, 1]], np.int64)
    compare(torch, r, t, ids, int_input=True)
    assert repr(r) == repr(t)


def test_T25_embedding_repeated_ids_accumulate():
    emb = rg.nn.Embedding(4, 2)
    up = rg.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    (emb(rg.tensor([1, 1, 2])) * up).sum().backward()
    g = emb.weight.grad.numpy()
    np.testing.assert_allclose(g[1], [4.0, 6.0])
    np.testing.assert_allclose(g[2], [5.0, 6.0])
    assert not g[0].any() and not g[3].any()


def test_embedding_padding_idx_zero_and_no_grad():
    emb = rg.nn.Embedding(4, 3, padding_idx=0)
    assert not emb.weight.detach().numpy()[0].any()
    emb(rg.tensor([0, 0, 1])).sum().backward()
    assert not emb.weight.grad.numpy()[0].any()
    np.testing.assert_allclose(emb.weight.grad.numpy()[1], [1, 1, 1])


def test_embedding_max_norm_matches_torch(torch):
    r, t = rg.nn.Embedding(5, 4, max_norm=1.0), torch.nn.Embedding(5, 4, max_norm=1.0)
    copy_weights(torch, r, t)
    ids = np.array([0, 3, 3], np.int64)
    yr, yt = r(rg.tensor(ids)), t(torch.from_numpy(ids))
    np.testing.assert_allclose(yr.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        r.weight.detach().numpy(), t.weight.detach().numpy(), rtol=1e-5, atol=1e-6
    )


def test_embedding_from_pretrained_and_errors():
    w = rg.tensor([[1.0, 2.0], [3.0, 4.0]])
    emb = rg.nn.Embedding.from_pretrained(w)
    assert not emb.weight.requires_grad
    assert emb(rg.tensor([1])).tolist() == [[3.0, 4.0]]
    assert rg.nn.Embedding.from_pretrained(w, freeze=False).weight.requires_grad
    with pytest.raises(IndexError):
        emb(rg.tensor([2]))
    with pytest.raises(RuntimeError):
        emb(rg.tensor([0.0]))


def test_embedding_double_backward():
    w = rg.randn(5, 2, dtype=rg.float64, requires_grad=True)
    ids = rg.tensor([1, 1, 4])
    assert rg.autograd.gradcheck(lambda w: rg.nn.functional.embedding(ids, w) ** 2, (w,))
    assert rg.autograd.gradgradcheck(lambda w: rg.nn.functional.embedding(ids, w) ** 2, (w,))


# --- dropout ----------------------------------------------------------------------------------


def test_dropout_scale_eval_and_seed():
    x = rg.ones(1000)
    rg.manual_seed(3)
    a = rg.nn.Dropout(0.25)(x)
    rg.manual_seed(3)
    b = rg.nn.functional.dropout(x, 0.25)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    vals = set(np.unique(a.numpy()).tolist())
    assert vals <= {0.0, np.float32(1 / 0.75)}
    assert 0.15 < (a.numpy() == 0).mean() < 0.35
    assert a.dtype == rg.float32
    d = rg.nn.Dropout(0.5).eval()
    assert d(x) is x or np.array_equal(d(x).numpy(), x.numpy())
    assert rg.nn.functional.dropout(x, 1.0).numpy().sum() == 0
    with pytest.raises(ValueError):
        rg.nn.Dropout(1.5)


def test_dropout_gradient_uses_mask():
    x = rg.randn(50, requires_grad=True)
    y = rg.nn.functional.dropout(x, 0.4)
    y.sum().backward()
    kept = y.detach().numpy() != 0
    np.testing.assert_allclose(x.grad.numpy()[kept], 1 / 0.6, rtol=1e-6)
    assert not x.grad.numpy()[~kept].any()


def test_dropout2d_zeros_whole_channels():
    y = rg.nn.Dropout2d(0.5)(rg.ones(8, 6, 3, 3)).numpy()
    per_channel = y.reshape(8, 6, -1)
    assert ((per_channel == 0).all(-1) | (per_channel == 2).all(-1)).all()
    y1 = rg.nn.Dropout1d(0.5)(rg.ones(4, 5, 7)).numpy()
    assert ((y1 == 0).all(-1) | (y1 == 2).all(-1)).all()


def test_alpha_dropout_keeps_moments():
    x = rg.randn(200000)
    y = rg.nn.AlphaDropout(0.2)(x).numpy()
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1) < 0.02
    assert np.array_equal(rg.nn.AlphaDropout(0.2).eval()(x).numpy(), x.numpy())


# --- containers / shape helpers ---------------------------------------------------------------


def test_flatten_unflatten_identity(torch):
    x = randn(2, 3, 4, 5)
    for r, t in [
        (rg.nn.Flatten(), torch.nn.Flatten()),
        (rg.nn.Flatten(0, 2), torch.nn.Flatten(0, 2)),
        (rg.nn.Unflatten(1, (3, 1)), torch.nn.Unflatten(1, (3, 1))),
        (rg.nn.Identity(54, x=1), torch.nn.Identity(54, x=1)),
    ]:
        assert tuple(r(rg.tensor(x)).shape) == tuple(t(torch.from_numpy(x)).shape)
        assert repr(r) == repr(t)


# --- less common layers -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_matches_torch(torch, mode):
    w = randn(10, 3)
    ids, off = np.array([1, 2, 4, 5, 4, 3, 2, 9]), np.array([0, 4, 5])
    wr, wt = rg.tensor(w, requires_grad=True), torch.from_numpy(w).requires_grad_()
    a = rg.nn.functional.embedding_bag(rg.tensor(ids), wr, rg.tensor(off), mode=mode)
    b = torch.nn.functional.embedding_bag(
        torch.from_numpy(ids), wt, torch.from_numpy(off), mode=mode
    )
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6)
    a.sum().backward()
    b.sum().backward()
    np.testing.assert_allclose(wr.grad.numpy(), wt.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_and_softmax2d_match_torch(torch, affine):
    compare(
        torch,
        rg.nn.InstanceNorm1d(3, affine=affine),
        torch.nn.InstanceNorm1d(3, affine=affine),
        randn(2, 3, 6),
    )
    compare(
        torch,
        rg.nn.InstanceNorm2d(3, affine=affine),
        torch.nn.InstanceNorm2d(3, affine=affine),
        randn(2, 3, 4, 5),
    )
    compare(torch, rg.nn.Softmax2d(), torch.nn.Softmax2d(), randn(2, 3, 4, 5))


def test_batchnorm_without_bias_and_errors(torch):
    compare(
        torch, rg.nn.BatchNorm1d(4, bias=False), torch.nn.BatchNorm1d(4, bias=False), randn(5, 4)
    )
    with pytest.raises(ValueError, match="expected 4D input"):
        rg.nn.BatchNorm2d(3)(rg.randn(2, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        rg.nn.BatchNorm1d(3)(rg.randn(1, 3))
    with pytest.raises(RuntimeError, match="num_groups"):
        rg.nn.functional.group_norm(rg.randn(2, 5), 2)


def test_gumbel_softmax_hard_is_one_hot():
    y = rg.nn.functional.gumbel_softmax(rg.randn(4, 5, requires_grad=True), hard=True)
    assert y.sum(1).tolist() == [1.0] * 4
    assert set(np.unique(y.detach().numpy()).tolist()) <= {0.0, 1.0}

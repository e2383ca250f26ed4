"""Attention vs PyTorch: F.scaled_dot_product_attention (fused), MultiheadAttention,
TransformerEncoderLayer/TransformerEncoder; gradcheck/gradgradcheck, init, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import retrograd as rg
import retrograd.nn.functional as F
from retrograd.autograd import gradcheck, gradgradcheck

RTOL, ATOL = 1e-4, 1e-5


def _arr(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _to_rg(v):
    return rg.tensor(v) if isinstance(v, np.ndarray) else v


def _sdpa_case(torch, rng, shapes, mask=None, mask_grad=False, **kw):
    arrs = [_arr(rng, *s) for s in shapes]
    R = [rg.tensor(a, requires_grad=True) for a in arrs]
    T = [torch.tensor(a, requires_grad=True) for a in arrs]
    kr, kt = dict(kw), dict(kw)
    if mask is not None:
        kr["attn_mask"] = rg.tensor(mask, requires_grad=mask_grad)
        kt["attn_mask"] = torch.tensor(mask, requires_grad=mask_grad)
    yr = F.scaled_dot_product_attention(*R, **kr)
    yt = torch.nn.functional.scaled_dot_product_attention(*T, **kt)
    assert tuple(yr.shape) == tuple(yt.shape) and yr.dtype == rg.float32
    np.testing.assert_allclose(yr.detach().numpy(), yt.detach().numpy(), rtol=RTOL, atol=ATOL)
    g = _arr(rng, *yt.shape)
    yr.backward(rg.tensor(g))
    yt.backward(torch.tensor(g))
    for a, b in zip(R, T):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=RTOL, atol=ATOL)
    if mask_grad:
        np.testing.assert_allclose(kr["attn_mask"].grad.numpy(), kt["attn_mask"].grad.numpy(),
                                   rtol=RTOL, atol=ATOL)


QKV = [(2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7)]


@pytest.mark.parametrize("kw", [dict(), dict(is_causal=True), dict(scale=0.3),
                                dict(is_causal=True, scale=2.0)])
def test_sdpa_matches_torch(torch, rng, kw):
    _sdpa_case(torch, rng, QKV, **kw)


def test_sdpa_unbatched_and_square_causal(torch, rng):
    _sdpa_case(torch, rng, [(5, 4), (6, 4), (6, 7)])
    _sdpa_case(torch, rng, [(3, 6, 8)] * 3, is_causal=True)


@pytest.mark.parametrize("mshape", [(5, 6), (2, 1, 5, 6), (3, 5, 6), (1, 6)])
def test_sdpa_bool_mask_true_means_attend(torch, rng, mshape):
    mask = rng.random(mshape) > 0.3
    mask[..., 0] = True  # every row keeps one key
    _sdpa_case(torch, rng, QKV, mask)


@pytest.mark.parametrize("grad", [False, True])
def test_sdpa_float_mask_is_added(torch, rng, grad):
    _sdpa_case(torch, rng, QKV, _arr(rng, 3, 5, 6), mask_grad=grad)


def test_T30_sdpa_fully_masked_rows_give_zeros_and_zero_grads(torch, rng):
    mask = rng.random((5, 6)) > 0.3
    mask[1] = False
    _sdpa_case(torch, rng, QKV, mask)
    fmask = np.zeros((5, 6), np.float32)
    fmask[2] = -np.inf
    q = rg.tensor(_arr(rng, 5, 4), requires_grad=True)
    out = F.scaled_dot_product_attention(q, rg.tensor(_arr(rng, 6, 4)), rg.tensor(_arr(rng, 6, 3)),
                                         attn_mask=rg.tensor(fmask))
    assert np.all(out.detach().numpy()[2] == 0)
    out.sum().backward()
    assert np.isfinite(q.grad.numpy()).all() and np.all(q.grad.numpy()[2] == 0)


def test_sdpa_gqa_and_batch_broadcast(torch, rng):
    _sdpa_case(torch, rng, [(2, 4, 5, 4), (2, 2, 6, 4), (2, 2, 6, 7)], enable_gqa=True)
    _sdpa_case(torch, rng, [(2, 4, 5, 4), (2, 1, 6, 4), (1, 4, 6, 7)])


def test_sdpa_dropout_statistics_and_seed():
    q = rg.zeros(1, 1, 200, 8)
    v = rg.ones(1, 1, 200, 8)
    rg.manual_seed(3)
    a = F.scaled_dot_product_attention(q, q, v, dropout_p=0.5)
    rg.manual_seed(3)
    b = F.scaled_dot_product_attention(q, q, v, dropout_p=0.5)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    # uniform attention over 200 keys with 1/(1-p)-scaled dropout keeps the mean near 1
    assert abs(a.numpy().mean() - 1.0) < 0.05
    assert a.numpy().std() > 0.01
    assert np.all(F.scaled_dot_product_attention(q, q, v, dropout_p=1.0).numpy() == 0)


def test_sdpa_dropout_gradient_uses_the_same_mask(rng):
    """With dropout, the vjp w.r.t. v must use the forward's keep mask: out is linear in v."""
    q, k = rg.tensor(_arr(rng, 4, 3)), rg.tensor(_arr(rng, 6, 3))
    v = rg.tensor(_arr(rng, 6, 2), requires_grad=True)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.4)
    g = _arr(rng, 4, 2)
    out.backward(rg.tensor(g))
    # out = P v with P fixed: recover P from out on the basis vectors is not possible, but
    # <g, out> = <P^T g, v> holds exactly for a linear map
    lhs = (g * out.detach().numpy()).sum()
    np.testing.assert_allclose(lhs, (v.grad.numpy() * v.detach().numpy()).sum(),
                               rtol=1e-4)


def _t64(rng, *shape):
    return rg.tensor(rng.standard_normal(shape), dtype=rg.float64, requires_grad=True)


@pytest.mark.parametrize("which", ["plain", "causal", "bool", "float"])
def test_gradcheck_and_gradgradcheck_sdpa(rng, which):
    q, k, v = _t64(rng, 2, 3, 4), _t64(rng, 2, 5, 4), _t64(rng, 2, 5, 3)
    kw = {}
    if which == "causal":
        kw["is_causal"] = True
    elif which == "bool":
        m = rng.random((3, 5)) > 0.3
        m[1] = False
        kw["attn_mask"] = rg.tensor(m)
    elif which == "float":
        kw["attn_mask"] = rg.tensor(rng.standard_normal((3, 5)))

    def f(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, **kw)

    assert gradcheck(f, (q, k, v))
    assert gradgradcheck(f, (q, k, v))


def test_gradgradcheck_sdpa_learnable_mask(rng):
    q, k, v, m = _t64(rng, 3, 4), _t64(rng, 5, 4), _t64(rng, 5, 3), _t64(rng, 3, 5)

    def f(q, k, v, m):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m)

    assert gradcheck(f, (q, k, v, m))
    assert gradgradcheck(f, (q, k, v, m))


def test_sdpa_errors():
    q = rg.zeros(2, 5, 4)
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=rg.ones(5, 5, dtype=rg.bool),
                                       is_causal=True)
    with pytest.raises(RuntimeError, match="cannot be broadcast"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=rg.ones(4, 5, dtype=rg.bool))
    with pytest.raises(RuntimeError, match="same embedding size"):
        F.scaled_dot_product_attention(q, rg.zeros(2, 5, 3), q)
    with pytest.raises(RuntimeError, match="same dtype"):
        F.scaled_dot_product_attention(q, q, q.double())
    with pytest.raises(RuntimeError, match="same sequence length"):
        F.scaled_dot_product_attention(q, q, rg.zeros(2, 6, 4))


# --- MultiheadAttention ------------------------------------------------------------------------


def _module_case(torch, m, tm, inputs, train=False, **fkw):
    tm.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in m.state_dict().items()})
    m.train(train)
    tm.train(train)
    R = [rg.tensor(a, requires_grad=True) for a in inputs]
    T = [torch.tensor(a, requires_grad=True) for a in inputs]
    if len(R) == 1:
        R, T = R * 3, T * 3
    rk = {k: _to_rg(v) for k, v in fkw.items()}
    tk = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in fkw.items()}
    yr, yt = m(*R, **rk), tm(*T, **tk)
    if isinstance(yt, tuple):
        (yr, wr), (yt, wt) = yr, yt
        assert (wr is None) == (wt is None)
        if wt is not None:
            np.testing.assert_allclose(wr.detach().numpy(), wt.detach().numpy(), rtol=RTOL,
                                       atol=ATOL)
    np.testing.assert_allclose(yr.detach().numpy(), yt.detach().numpy(), rtol=RTOL, atol=ATOL)
    g = np.random.default_rng(5).standard_normal(tuple(yt.shape)).astype(np.float32)
    yr.backward(rg.tensor(g))
    yt.backward(torch.tensor(g))
    for a, b in zip(R[: len(inputs)], T[: len(inputs)]):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=RTOL, atol=ATOL)
    tp = dict(tm.named_parameters())
    assert [n for n, _ in m.named_parameters()] == list(tp)
    for n, p in m.named_parameters():
        if tp[n].grad is None:
            assert p.grad is None or not p.grad.numpy().any()
            continue
        np.testing.assert_allclose(p.grad.numpy(), tp[n].grad.numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=n)


E, H = 8, 2
CAUSAL = np.triu(np.ones((5, 5), bool), 1)
KPM = np.array([[False] * 3 + [True] * 2, [False] * 5, [False, True] + [False] * 3])


def _mha(torch, **kw):
    return rg.nn.MultiheadAttention(E, H, **kw), torch.nn.MultiheadAttention(E, H, **kw)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("avg", [True, False])
def test_mha_self_attention_weights(torch, rng, train, avg):
    _module_case(torch, *_mha(torch), [_arr(rng, 5, 3, E)], train=train, average_attn_weights=avg)


def test_mha_batch_first_need_weights_false(torch, rng):
    _module_case(torch, *_mha(torch, batch_first=True), [_arr(rng, 3, 5, E)], need_weights=False)


def test_mha_cross_attention_kdim_vdim(torch, rng):
    m, tm = _mha(torch, kdim=6, vdim=5)
    assert "q_proj_weight" in dict(m.named_parameters()) and m.in_proj_weight is None
    _module_case(torch, m, tm, [_arr(rng, 5, 3, E), _arr(rng, 7, 3, 6), _arr(rng, 7, 3, 5)])


def test_mha_key_is_value(torch, rng):
    m, tm = _mha(torch, batch_first=True)
    tm.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in m.state_dict().items()})
    q, kv = _arr(rng, 3, 4, E), _arr(rng, 3, 6, E)
    yr = m(rg.tensor(q), rg.tensor(kv), rg.tensor(kv))[0]
    yt = tm(torch.tensor(q), torch.tensor(kv), torch.tensor(kv))[0]
    np.testing.assert_allclose(yr.detach().numpy(), yt.detach().numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_masks(torch, rng, need_weights):
    m, tm = _mha(torch, batch_first=True)
    _module_case(torch, m, tm, [_arr(rng, 3, 5, E)], key_padding_mask=KPM, attn_mask=CAUSAL,
                 need_weights=need_weights)
    _module_case(torch, m, tm, [_arr(rng, 3, 5, E)], need_weights=need_weights,
                 attn_mask=_arr(rng, 3 * H, 5, 5))
    _module_case(torch, m, tm, [_arr(rng, 3, 5, E)], need_weights=need_weights,
                 key_padding_mask=np.where(KPM, -1e9, 0).astype(np.float32))


def test_mha_causal_hint(torch, rng):
    _module_case(torch, *_mha(torch, batch_first=True), [_arr(rng, 3, 5, E)], attn_mask=CAUSAL,
                 is_causal=True, need_weights=False)


def test_mha_bias_kv_zero_attn_and_no_bias(torch, rng):
    _module_case(torch, *_mha(torch, add_bias_kv=True, add_zero_attn=True), [_arr(rng, 5, 3, E)],
                 key_padding_mask=KPM)
    _module_case(torch, *_mha(torch, bias=False), [_arr(rng, 5, E)])  # unbatched


def test_mha_dropout_changes_train_not_eval(rng):
    m = rg.nn.MultiheadAttention(E, H, dropout=0.5)
    x = rg.tensor(_arr(rng, 5, 3, E))
    m.eval()
    a, b = m(x, x, x)[0].detach(), m(x, x, x)[0].detach()
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    m.train()
    c = m(x, x, x)[0].detach()
    assert not np.allclose(a.numpy(), c.numpy())


def test_mha_state_dict_keys_and_init(torch):
    m, tm = rg.nn.MultiheadAttention(64, 4), torch.nn.MultiheadAttention(64, 4)
    assert list(m.state_dict()) == list(tm.state_dict())
    assert all(tuple(v.shape) == tuple(tm.state_dict()[k].shape) for k, v in m.state_dict().items())
    w = m.in_proj_weight.detach().numpy()
    bound = math.sqrt(6 / (64 + 3 * 64))  # xavier_uniform over the packed (3E, E) matrix
    assert np.abs(w).max() <= bound + 1e-7
    np.testing.assert_allclose(w.std(), bound / math.sqrt(3), rtol=0.05)
    assert not m.in_proj_bias.detach().numpy().any() and not m.out_proj.bias.detach().numpy().any()
    ow = m.out_proj.weight.detach().numpy()
    assert np.abs(ow).max() <= 1 / math.sqrt(64) + 1e-7


def test_mha_errors(rng):
    with pytest.raises(AssertionError, match="divisible by num_heads"):
        rg.nn.MultiheadAttention(10, 3)
    m = rg.nn.MultiheadAttention(E, H, batch_first=True)
    x = rg.tensor(_arr(rng, 3, 5, E))
    with pytest.raises(RuntimeError, match="The shape of the 2D attn_mask is \\(4, 5\\)"):
        m(x, x, x, attn_mask=rg.ones(4, 5, dtype=rg.bool))
    with pytest.raises(RuntimeError, match="The shape of the 3D attn_mask"):
        m(x, x, x, attn_mask=rg.zeros(3, 5, 5))
    with pytest.raises(RuntimeError, match="key_padding_mask shape"):
        m(x, x, x, key_padding_mask=rg.ones(3, 4, dtype=rg.bool))
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        m(x, x, x, is_causal=True)
    with pytest.raises(AssertionError, match="expecting embedding dimension"):
        m(rg.zeros(3, 5, 6), rg.zeros(3, 5, 6), rg.zeros(3, 5, 6))


# --- Transformer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_encoder_layer(torch, rng, norm_first, activation):
    kw = dict(dim_feedforward=16, dropout=0.0, activation=activation, norm_first=norm_first,
              batch_first=True)
    m, tm = rg.nn.TransformerEncoderLayer(E, H, **kw), torch.nn.TransformerEncoderLayer(E, H, **kw)
    x = _arr(rng, 3, 5, E)
    _layer_case(torch, m, tm, x, True, src_key_padding_mask=KPM)
    _layer_case(torch, m, tm, x, False, src_mask=CAUSAL, is_causal=True)


def _layer_case(torch, m, tm, x, train, **fkw):
    tm.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in m.state_dict().items()})
    m.train(train)
    tm.train(train)
    xr, xt = rg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    rk = {k: _to_rg(v) for k, v in fkw.items()}
    tk = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in fkw.items()}
    yr, yt = m(xr, **rk), tm(xt, **tk)
    np.testing.assert_allclose(yr.detach().numpy(), yt.detach().numpy(), rtol=RTOL, atol=ATOL)
    g = np.random.default_rng(7).standard_normal(tuple(yt.shape)).astype(np.float32)
    yr.backward(rg.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(xr.grad.numpy(), xt.grad.numpy(), rtol=RTOL, atol=ATOL)
    tp = dict(tm.named_parameters())
    assert [n for n, _ in m.named_parameters()] == list(tp)
    for n, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[n].grad.numpy(), rtol=RTOL, atol=1e-5,
                                   err_msg=n)


def test_transformer_encoder_layer_callable_activation_and_eval_dropout(torch, rng):
    kw = dict(dim_feedforward=16, dropout=0.1, activation=torch.nn.functional.silu)
    tm = torch.nn.TransformerEncoderLayer(E, H, **kw)
    m = rg.nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.1, activation=F.silu)
    _layer_case(torch, m, tm, _arr(rng, 5, 3, E), False)  # eval: dropout is off


def test_transformer_encoder_stack(torch, rng):
    layer = rg.nn.TransformerEncoderLayer(E, H, 16, dropout=0.0)
    m = rg.nn.TransformerEncoder(layer, 2, norm=rg.nn.LayerNorm(E))
    tm = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(E, H, 16, dropout=0.0), 2,
                                     norm=torch.nn.LayerNorm(E), enable_nested_tensor=False)
    assert list(m.state_dict()) == list(tm.state_dict())
    # the copies are independent
    assert m.layers[0].linear1.weight is not m.layers[1].linear1.weight
    _layer_case(torch, m, tm, _arr(rng, 5, 3, E), True, mask=CAUSAL)
    _layer_case(torch, m, tm, _arr(rng, 5, 3, E), False, mask=CAUSAL, src_key_padding_mask=KPM)


@pytest.mark.parametrize("float_mask", [False, True])
def test_transformer_encoder_eval_no_grad_zeroes_padding_like_torch(torch, rng, float_mask):
    """PyTorch's eval/no-grad nested-tensor path outputs zeros (then norm) at padded spots."""
    layer = rg.nn.TransformerEncoderLayer(E, H, 16, batch_first=True)
    m = rg.nn.TransformerEncoder(layer, 2, norm=rg.nn.LayerNorm(E))
    tm = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(E, H, 16, batch_first=True),
                                     2, norm=torch.nn.LayerNorm(E))
    tm.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in m.state_dict().items()})
    m.eval()
    tm.eval()
    x = _arr(rng, 3, 5, E)
    kpm = np.zeros((3, 5), bool)
    kpm[0, 3:] = True
    kpm[2, 4] = True
    if float_mask:
        kpm = np.where(kpm, -np.inf, 0).astype(np.float32)
    with torch.no_grad():
        yt = tm(torch.tensor(x), src_key_padding_mask=torch.tensor(kpm)).numpy()
    with rg.no_grad():
        yr = m(rg.tensor(x), src_key_padding_mask=rg.tensor(kpm)).numpy()
    np.testing.assert_allclose(yr, yt, rtol=RTOL, atol=ATOL)
    # with autograd on, PyTorch computes every position (no zeroing), and so do we
    yr2 = m(rg.tensor(x), src_key_padding_mask=rg.tensor(kpm)).detach().numpy()
    np.testing.assert_allclose(yr2[1], yt[1], rtol=RTOL, atol=ATOL)
    assert not np.allclose(yr2[0, 3:], yt[0, 3:])


def _pair_case(torch, m, tm, tgt, mem, train, **fkw):
    """Two-input modules (decoder): outputs and grads of both inputs and all parameters."""
    tm.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in m.state_dict().items()})
    m.train(train)
    tm.train(train)
    R = [rg.tensor(a, requires_grad=True) for a in (tgt, mem)]
    T = [torch.tensor(a, requires_grad=True) for a in (tgt, mem)]
    rk = {k: _to_rg(v) for k, v in fkw.items()}
    tk = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in fkw.items()}
    yr, yt = m(*R, **rk), tm(*T, **tk)
    np.testing.assert_allclose(yr.detach().numpy(), yt.detach().numpy(), rtol=RTOL, atol=ATOL)
    g = np.random.default_rng(3).standard_normal(tuple(yt.shape)).astype(np.float32)
    yr.backward(rg.tensor(g))
    yt.backward(torch.tensor(g))
    for a, b in zip(R, T):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=RTOL, atol=ATOL)
    tp = dict(tm.named_parameters())
    assert [n for n, _ in m.named_parameters()] == list(tp)
    for n, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[n].grad.numpy(), rtol=RTOL, atol=1e-5,
                                   err_msg=n)


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_decoder_layer(torch, rng, norm_first):
    kw = dict(dim_feedforward=16, dropout=0.0, norm_first=norm_first, batch_first=True)
    m, tm = rg.nn.TransformerDecoderLayer(E, H, **kw), torch.nn.TransformerDecoderLayer(E, H, **kw)
    tgt, mem = _arr(rng, 3, 5, E), _arr(rng, 3, 6, E)
    mkpm = np.zeros((3, 6), bool)
    mkpm[1, 4:] = True
    _pair_case(torch, m, tm, tgt, mem, True, tgt_mask=CAUSAL, tgt_key_padding_mask=KPM,
               memory_key_padding_mask=mkpm)
    _pair_case(torch, m, tm, tgt, mem, False, tgt_mask=CAUSAL, tgt_is_causal=True)


def test_transformer_decoder_and_full_model(torch, rng):
    layer = rg.nn.TransformerDecoderLayer(E, H, 16, dropout=0.0, activation="gelu")
    m = rg.nn.TransformerDecoder(layer, 2, norm=rg.nn.LayerNorm(E))
    tm = torch.nn.TransformerDecoder(
        torch.nn.TransformerDecoderLayer(E, H, 16, dropout=0.0, activation="gelu"), 2,
        norm=torch.nn.LayerNorm(E))
    tgt, mem = _arr(rng, 5, 3, E), _arr(rng, 6, 3, E)
    _pair_case(torch, m, tm, tgt, mem, True, tgt_mask=CAUSAL)

    kw = dict(d_model=E, nhead=H, num_encoder_layers=2, num_decoder_layers=1,
              dim_feedforward=16, dropout=0.0)
    full, tfull = rg.nn.Transformer(**kw), torch.nn.Transformer(**kw)
    assert list(full.state_dict()) == list(tfull.state_dict())
    mask = rg.nn.Transformer.generate_square_subsequent_mask(5)
    np.testing.assert_array_equal(mask.numpy(),
                                  torch.nn.Transformer.generate_square_subsequent_mask(5).numpy())
    src = _arr(rng, 6, 3, E)
    _pair_case(torch, full, tfull, src, tgt, True, tgt_mask=mask.numpy())
    # Xavier-uniform init of every matrix, as PyTorch's Transformer
    w = full.encoder.layers[0].linear1.weight.detach().numpy()
    assert np.abs(w).max() <= math.sqrt(6 / (E + 16)) + 1e-7

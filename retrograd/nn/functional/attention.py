"""Attention: ``scaled_dot_product_attention`` (a fused primitive) and
``multi_head_attention_forward`` (the functional core of ``nn.MultiheadAttention``)."""

from __future__ import annotations

import math

import numpy as np

from ...ops.attention import sdpa_raw
from ...ops.movement import broadcast_shapes
from ...random import _rng
from ...tensor import Tensor

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]


def _dropout_keep(shape, p: float, dt) -> np.ndarray:
    """Scaled keep mask: 0 with probability ``p``, else ``1/(1-p)``."""
    if p >= 1.0:
        return np.zeros(shape, dt)
    keep = _rng(None).random(shape) >= p
    return (keep / (1.0 - p)).astype(dt)


def _additive_mask(attn_mask, is_causal, L, S, dt, op):
    """(constant additive mask or None, float mask Tensor that needs a grad or None)."""
    const, learn = None, None
    if attn_mask is not None and is_causal:
        raise RuntimeError(
            "_scaled_dot_product_attention: Explicit attn_mask should not be set when "
            "is_causal=True"
        )
    if attn_mask is not None:
        m = attn_mask._data if isinstance(attn_mask, Tensor) else np.asarray(attn_mask)
        if m.dtype == np.bool_:
            const = np.where(m, 0.0, -np.inf).astype(dt)
        elif isinstance(attn_mask, Tensor) and attn_mask.requires_grad:
            if m.dtype != dt:
                raise RuntimeError(
                    f"{op}: Expected attn_mask dtype to be bool or float or to match query dtype, "
                    f"but got attn_mask.dtype: {attn_mask.dtype.name} and query.dtype: {dt}"
                )
            learn = attn_mask
        else:
            if m.dtype.kind != "f":
                raise RuntimeError(
                    f"{op}: Expected attn_mask dtype to be bool or float, got {m.dtype}"
                )
            const = m.astype(dt, copy=False)
    if is_causal:
        causal = np.where(np.tri(L, S, dtype=np.bool_), 0.0, -np.inf).astype(dt)
        const = causal
    return const, learn


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask=None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale=None,
    enable_gqa: bool = False,
) -> Tensor:
    """``softmax(q k^T * scale + mask) v`` over the last two dims; ``scale`` defaults to
    ``1/sqrt(E)``. A bool ``attn_mask`` marks the keys that take part (True = keep); a float
    mask is added to the scores. ``is_causal`` applies a lower-triangular mask (then
    ``attn_mask`` must be None). Rows with no key get zeros.

    >>> import retrograd as rg
    >>> q = rg.ones(1, 2, 3, 4)
    >>> rg.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True).shape
    retrograd.Size([1, 2, 3, 4])
    """
    op = "scaled_dot_product_attention"
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}(): argument '{name}' must be Tensor, not {type(t).__name__}")
        if t._data.ndim < 2:
            raise RuntimeError(f"{op}: {name} must be at least 2-dimensional, got {list(t.shape)}")
    q, k, v = query, key, value
    dt = q._data.dtype
    if dt.kind != "f" or k._data.dtype != dt or v._data.dtype != dt:
        raise RuntimeError(
            f"Expected query, key, and value to have the same dtype, but got query.dtype: "
            f"{q.dtype.name} key.dtype: {k.dtype.name}, and value.dtype: {v.dtype.name} instead."
        )
    L, E = q._data.shape[-2:]
    S = k._data.shape[-2]
    if k._data.shape[-1] != E:
        raise RuntimeError(
            f"{op}: query and key must have the same embedding size, got query {list(q.shape)} "
            f"and key {list(k.shape)}"
        )
    if v._data.shape[-2] != S:
        raise RuntimeError(
            f"{op}: key and value must have the same sequence length, got key {list(k.shape)} "
            f"and value {list(v.shape)}"
        )
    if enable_gqa and q._data.ndim >= 3:
        hq, hk, hv = q._data.shape[-3], k._data.shape[-3], v._data.shape[-3]
        if hq % hk or hq % hv:
            raise RuntimeError(
                f"{op}: number of heads in key/value ({hk}/{hv}) must divide the number of heads "
                f"in query ({hq}) when enable_gqa=True"
            )
        if hk != hq:
            k = k.repeat_interleave(hq // hk, dim=-3)
        if hv != hq:
            v = v.repeat_interleave(hq // hv, dim=-3)
    try:
        batch = tuple(broadcast_shapes(q._data.shape[:-2], k._data.shape[:-2], v._data.shape[:-2]))
    except RuntimeError:
        raise RuntimeError(
            f"{op}: query, key and value batch dimensions must broadcast, got {list(q.shape)}, "
            f"{list(k.shape)} and {list(v.shape)}"
        ) from None
    const, learn = _additive_mask(attn_mask, is_causal, L, S, dt, op)
    out_batch = batch
    for m in (const, learn):
        if m is None:
            continue
        ms = m.shape if isinstance(m, np.ndarray) else tuple(m._data.shape)
        try:
            full = tuple(broadcast_shapes(batch + (L, S), ms))
        except RuntimeError:
            raise RuntimeError(
                f"{op}: attn_mask of shape {list(ms)} cannot be broadcast to the attention "
                f"scores of shape {list(batch + (L, S))}"
            ) from None
        out_batch = full[:-2]
    batch = out_batch

    def expand(t, last):
        want = batch + last
        return t if tuple(t._data.shape) == want else t.expand(*want)

    q = expand(q, (L, E))
    k = expand(k, (S, E))
    v = expand(v, (S, v._data.shape[-1]))
    if const is not None:
        const = np.broadcast_to(const, batch + (L, S))
    sc = 1.0 / math.sqrt(E) if scale is None else float(scale)
    keep = _dropout_keep(batch + (L, S), dropout_p, dt) if dropout_p > 0.0 else None
    return sdpa_raw(q, k, v, learn, const, keep, sc)


def _canonical_mask(mask, name: str, dt):
    """Bool masks (True = masked out, MHA's convention) become additive float masks."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name} must be a Tensor, got {type(mask).__name__}")
    if mask._data.dtype == np.bool_:
        return Tensor._make(np.where(mask._data, -np.inf, 0.0).astype(dt))
    if mask._data.dtype.kind != "f":
        raise AssertionError(f"only bool and floating types of {name} are supported")
    return mask


def multi_head_attention_forward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    embed_dim_to_check: int,
    num_heads: int,
    in_proj_weight,
    in_proj_bias,
    bias_k,
    bias_v,
    add_zero_attn: bool,
    dropout_p: float,
    out_proj_weight: Tensor,
    out_proj_bias,
    training: bool = True,
    key_padding_mask=None,
    need_weights: bool = True,
    attn_mask=None,
    use_separate_proj_weight: bool = False,
    q_proj_weight=None,
    k_proj_weight=None,
    v_proj_weight=None,
    static_k=None,
    static_v=None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
):
    """Multi-head attention on sequence-first inputs ``(L, N, E)`` (or unbatched ``(L, E)``);
    returns ``(output, weights or None)`` exactly as ``torch.nn.functional``'s version.

    >>> import retrograd as rg
    >>> x = rg.ones(3, 2, 4)
    >>> w, ow = rg.ones(12, 4), rg.ones(4, 4)
    >>> out, att = rg.nn.functional.multi_head_attention_forward(
    ...     x, x, x, 4, 2, w, None, None, None, False, 0.0, ow, None)
    >>> out.shape, att.shape
    (retrograd.Size([3, 2, 4]), retrograd.Size([2, 3, 3]))
    """
    from ...ops.movement import cat, pad
    from ...ops.nn_ops import linear
    from ...ops.reduce import softmax
    from ..functional.dropout import dropout

    batched = query._data.ndim == 3
    if query._data.ndim not in (2, 3):
        raise AssertionError(
            f"query should be unbatched 2D or batched 3D tensor but received {query.dim()}-D "
            "query tensor"
        )
    if key._data.ndim != query._data.ndim or value._data.ndim != query._data.ndim:
        raise AssertionError(
            f"For {'batched (3-D)' if batched else 'unbatched (2-D)'} `query`, expected `key` and "
            f"`value` to be {query.dim()}-D but found {key.dim()}-D and {value.dim()}-D tensors "
            "respectively"
        )
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query._data.shape
    src_len = key._data.shape[0]
    dt = query._data.dtype
    if embed_dim != embed_dim_to_check:
        raise AssertionError(
            f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}"
        )
    if embed_dim % num_heads:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    head_dim = embed_dim // num_heads
    if key._data.shape[:2] != value._data.shape[:2]:
        raise AssertionError(
            f"key shape {tuple(key.shape)} does not match value shape {tuple(value.shape)}"
        )
    key_padding_mask = _canonical_mask(key_padding_mask, "key_padding_mask", dt)
    if key_padding_mask is not None and tuple(key_padding_mask.shape) != (bsz, src_len):
        raise RuntimeError(
            f"expecting key_padding_mask shape of {(bsz, src_len)}, but got "
            f"{tuple(key_padding_mask.shape)}"
        )
    if is_causal and attn_mask is None:
        raise RuntimeError(
            "Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
            "method `generate_square_subsequent_mask` to create this mask."
        )
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # sdpa builds the causal mask itself
    else:
        attn_mask = _canonical_mask(attn_mask, "attn_mask", dt)
        if key_padding_mask is not None:
            is_causal = False

    # input projections
    if not use_separate_proj_weight:
        if in_proj_weight is None:
            raise AssertionError("use_separate_proj_weight is False but in_proj_weight is None")
        E = embed_dim
        if query is key and key is value:
            q, k, v = linear(query, in_proj_weight, in_proj_bias).chunk(3, -1)
        else:
            bq = bk = bv = None
            if in_proj_bias is not None:
                bq, bk, bv = in_proj_bias[:E], in_proj_bias[E : 2 * E], in_proj_bias[2 * E :]
            q = linear(query, in_proj_weight[:E], bq)
            if key is value:
                bkv = None if bk is None else in_proj_bias[E:]
                k, v = linear(key, in_proj_weight[E:], bkv).chunk(2, -1)
            else:
                k = linear(key, in_proj_weight[E : 2 * E], bk)
                v = linear(value, in_proj_weight[2 * E :], bv)
    else:
        if q_proj_weight is None or k_proj_weight is None or v_proj_weight is None:
            raise AssertionError("use_separate_proj_weight is True but q/k/v_proj_weight is None")
        E = embed_dim
        bq = bk = bv = None
        if in_proj_bias is not None:
            bq, bk, bv = in_proj_bias[:E], in_proj_bias[E : 2 * E], in_proj_bias[2 * E :]
        q = linear(query, q_proj_weight, bq)
        k = linear(key, k_proj_weight, bk)
        v = linear(value, v_proj_weight, bv)

    if attn_mask is not None:
        if attn_mask._data.ndim == 2:
            if tuple(attn_mask.shape) != (tgt_len, src_len):
                raise RuntimeError(
                    f"The shape of the 2D attn_mask is {tuple(attn_mask.shape)}, but should be "
                    f"{(tgt_len, src_len)}."
                )
            attn_mask = attn_mask.unsqueeze(0)
        elif attn_mask._data.ndim == 3:
            if tuple(attn_mask.shape) != (bsz * num_heads, tgt_len, src_len):
                raise RuntimeError(
                    f"The shape of the 3D attn_mask is {tuple(attn_mask.shape)}, but should be "
                    f"{(bsz * num_heads, tgt_len, src_len)}."
                )
        else:
            raise RuntimeError(f"attn_mask's dimension {attn_mask.dim()} is not supported")

    if bias_k is not None and bias_v is not None:
        if static_k is not None or static_v is not None:
            raise AssertionError("bias cannot be added to static key/value.")
        k = cat([k, bias_k.expand(1, bsz, embed_dim)])
        v = cat([v, bias_v.expand(1, bsz, embed_dim)])
        if attn_mask is not None:
            attn_mask = pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = pad(key_padding_mask, (0, 1))

    # (L, N, E) -> (N*H, L, hd)
    q = q.reshape(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    k = (
        static_k
        if static_k is not None
        else k.reshape(k.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    )
    v = (
        static_v
        if static_v is not None
        else v.reshape(v.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    )
    if add_zero_attn:
        zshape = (bsz * num_heads, 1, head_dim)
        k = cat([k, Tensor._make(np.zeros(zshape, dt))], 1)
        v = cat([v, Tensor._make(np.zeros(zshape, dt))], 1)
        if attn_mask is not None:
            attn_mask = pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = pad(key_padding_mask, (0, 1))
    src_len = k.shape[1]

    if key_padding_mask is not None:
        kpm = key_padding_mask.reshape(bsz, 1, 1, src_len).expand(bsz, num_heads, 1, src_len)
        kpm = kpm.reshape(bsz * num_heads, 1, src_len)
        attn_mask = kpm if attn_mask is None else attn_mask + kpm

    if not training:
        dropout_p = 0.0

    if need_weights:
        q_scaled = q * math.sqrt(1.0 / head_dim)
        scores = q_scaled @ k.transpose(-2, -1)
        if attn_mask is not None:
            scores = scores + attn_mask
        weights = softmax(scores, -1)
        if dropout_p > 0.0:
            weights = dropout(weights, p=dropout_p)
        out = weights @ v
        out = out.transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
        out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, embed_dim)
        weights = weights.reshape(bsz, num_heads, tgt_len, src_len)
        if average_attn_weights:
            weights = weights.mean(1)
        if not batched:
            out, weights = out.squeeze(1), weights.squeeze(0)
        return out, weights

    if attn_mask is not None:
        if attn_mask.shape[0] == 1 and attn_mask._data.ndim == 3:
            attn_mask = attn_mask.unsqueeze(0)
        else:
            attn_mask = attn_mask.reshape(bsz, num_heads, -1, src_len)
    q = q.reshape(bsz, num_heads, tgt_len, head_dim)
    k = k.reshape(bsz, num_heads, src_len, head_dim)
    v = v.reshape(bsz, num_heads, src_len, head_dim)
    out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
    out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
    out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, embed_dim)
    if not batched:
        out = out.squeeze(1)
    return out, None

"""W3 ``gpt``: nanoGPT-style character transformer (4 layers, 4 heads, 128 wide), AdamW.

Variant ``sdpa`` uses ``F.scaled_dot_product_attention(is_causal=True)`` instead of the
explicit masked-softmax attention.
"""

from __future__ import annotations

import math

import numpy as np

from ._common import as_lib, layer_norm, load, train_step

N_LAYER, N_HEAD, N_EMBD, BLOCK, VOCAB, BATCH = 4, 4, 128, 64, 65, 12
_TOK = BATCH * BLOCK
FWD_FLOPS = (
    2
    * _TOK
    * (N_LAYER * (N_EMBD * 3 * N_EMBD + N_EMBD * N_EMBD + 2 * N_EMBD * 4 * N_EMBD) + N_EMBD * VOCAB)
    + N_LAYER * 2 * 2 * BATCH * BLOCK * BLOCK * N_EMBD
)
STEP_FLOPS = 3 * FWD_FLOPS


def make_params() -> dict:
    rng = np.random.default_rng(8)
    std, proj_std = 0.02, 0.02 / math.sqrt(2 * N_LAYER)

    def normal(shape, s):
        return (rng.standard_normal(shape) * s).astype(np.float32)

    p: dict = {
        "wte.weight": normal((VOCAB, N_EMBD), std),
        "wpe.weight": normal((BLOCK, N_EMBD), std),
    }
    for i in range(N_LAYER):
        b = f"h.{i}"
        layer_norm(p, f"{b}.ln_1", N_EMBD)
        p[f"{b}.attn.c_attn.weight"] = normal((3 * N_EMBD, N_EMBD), std)
        p[f"{b}.attn.c_attn.bias"] = np.zeros(3 * N_EMBD, np.float32)
        p[f"{b}.attn.c_proj.weight"] = normal((N_EMBD, N_EMBD), proj_std)
        p[f"{b}.attn.c_proj.bias"] = np.zeros(N_EMBD, np.float32)
        layer_norm(p, f"{b}.ln_2", N_EMBD)
        p[f"{b}.mlp.c_fc.weight"] = normal((4 * N_EMBD, N_EMBD), std)
        p[f"{b}.mlp.c_fc.bias"] = np.zeros(4 * N_EMBD, np.float32)
        p[f"{b}.mlp.c_proj.weight"] = normal((N_EMBD, 4 * N_EMBD), proj_std)
        p[f"{b}.mlp.c_proj.bias"] = np.zeros(N_EMBD, np.float32)
    layer_norm(p, "ln_f", N_EMBD)
    return p


def make_data() -> dict:
    rng = np.random.default_rng(9)
    return {
        "idx": rng.integers(0, VOCAB, (BATCH, BLOCK)).astype(np.int64),
        "targets": rng.integers(0, VOCAB, (BATCH, BLOCK)).astype(np.int64),
    }


def build(lib, params: dict, data: dict, sdpa: bool = False):
    nn = lib.nn
    F = nn.functional

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(N_EMBD, 3 * N_EMBD)
            self.c_proj = nn.Linear(N_EMBD, N_EMBD)

        def forward(self, x, mask):
            B, T, C = x.shape
            q, k, v = self.c_attn(x).split(N_EMBD, dim=2)
            hs = C // N_HEAD
            q = q.view(B, T, N_HEAD, hs).transpose(1, 2)
            k = k.view(B, T, N_HEAD, hs).transpose(1, 2)
            v = v.view(B, T, N_HEAD, hs).transpose(1, 2)
            if sdpa:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
                att = att.masked_fill(mask[:T, :T] == 0, float("-inf"))
                att = F.softmax(att, dim=-1)
                y = att @ v
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            return self.c_proj(y)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = nn.Linear(N_EMBD, 4 * N_EMBD)
            self.gelu = nn.GELU(approximate="tanh")
            self.c_proj = nn.Linear(4 * N_EMBD, N_EMBD)

        def forward(self, x):
            return self.c_proj(self.gelu(self.c_fc(x)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(N_EMBD)
            self.attn = CausalSelfAttention()
            self.ln_2 = nn.LayerNorm(N_EMBD)
            self.mlp = MLP()

        def forward(self, x, mask):
            x = x + self.attn(self.ln_1(x), mask)
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(VOCAB, N_EMBD)
            self.wpe = nn.Embedding(BLOCK, N_EMBD)
            self.h = nn.ModuleList([Block() for _ in range(N_LAYER)])
            self.ln_f = nn.LayerNorm(N_EMBD)
            self.register_buffer("mask", lib.tril(lib.ones(BLOCK, BLOCK)), persistent=False)

        def forward(self, idx):
            _, T = idx.shape
            pos = lib.arange(0, T, dtype=lib.long)
            x = self.wte(idx) + self.wpe(pos)
            for block in self.h:
                x = block(x, self.mask)
            # weight-tied lm_head, no bias (nanoGPT)
            return F.linear(self.ln_f(x), self.wte.weight)

    model = load(lib, GPT(), params)
    opt = lib.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    idx, tgt = as_lib(lib, data["idx"]), as_lib(lib, data["targets"])

    def loss_fn():
        logits = model(idx)
        return F.cross_entropy(logits.view(-1, VOCAB), tgt.view(-1))

    return train_step(model, opt, loss_fn), model, opt

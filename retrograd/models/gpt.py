"""``GPT``: a decoder-only transformer in the style of nanoGPT (same parameter names and init).

Parameter names follow nanoGPT (``transformer.wte``, ``transformer.h.0.attn.c_attn.weight``, ...),
so a nanoGPT state dict of the same config loads as is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..creation import arange, ones
from ..creation import tensor as _tensor
from ..nn import functional as F
from ..ops.indexing import tril
from ..tensor import Tensor
from ._sampling import sample_next


@dataclass
class GPTConfig:
    """Hyper-parameters of :class:`GPT` (nanoGPT's defaults are GPT-2 small's)."""

    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t only sees positions <= t."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if config.n_embd % config.n_head != 0:
            raise ValueError(
                f"GPT: n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head})"
            )
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.flash = hasattr(F, "scaled_dot_product_attention")
        if not self.flash:
            # lower-triangular mask; non-persistent so state dicts match the fused path's
            mask = tril(ones(config.block_size, config.block_size))
            self.register_buffer(
                "bias", mask.view(1, 1, config.block_size, config.block_size), persistent=False
            )

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        hs = C // self.n_head
        # (B, T, C) -> (B, nh, T, hs)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        if self.flash:
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
            )
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = self.attn_dropout(F.softmax(att, dim=-1))
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-join the heads
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """The transformer's position-wise feed-forward net: Linear(4x) -> GELU -> Linear."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """A pre-LayerNorm transformer block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A GPT language model: token + position embeddings, ``n_layer`` blocks, tied output layer.

    ``forward(idx, targets=None)`` returns ``(logits, loss)``. With targets, logits cover every
    position and ``loss`` is the mean cross-entropy (targets of -1 are ignored); without,
    only the last position's logits are computed (all that generation needs) and loss is None.

    >>> import retrograd as rg
    >>> cfg = rg.models.GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=8)
    >>> model = rg.models.GPT(cfg)
    >>> logits, loss = model(rg.randint(0, 11, (2, 8)), rg.randint(0, 11, (2, 8)))
    >>> logits.shape
    retrograd.Size([2, 8, 11])
    >>> model.generate(rg.zeros(1, 1, dtype=rg.long), 5).shape
    retrograd.Size([1, 6])
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # weight tying (Press & Wolf, 2017): the output layer reuses the token embedding
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        # scaled init of the residual projections (GPT-2 paper): keeps the residual stream's
        # variance from growing with depth
        std = 0.02 / math.sqrt(2 * config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def get_num_params(self, non_embedding: bool = True) -> int:
        """Number of parameters (tied weights counted once); by default without ``wpe``."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def forward(self, idx: Tensor, targets: Tensor | None = None):
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(
                f"GPT: cannot forward a sequence of length {T}, block_size is only "
                f"{self.config.block_size}"
            )
        pos = arange(0, T, dtype=idx.dtype)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(
                logits.view(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1
            )
        else:
            logits = self.lm_head(x[:, -1:, :])  # inference: only the last position
            loss = None
        return logits, loss

    def configure_optimizers(
        self, weight_decay: float, learning_rate: float, betas: tuple[float, float] = (0.9, 0.95)
    ):
        """AdamW with weight decay on matrices (dim >= 2) only, not on biases and LayerNorms."""
        from ..optim import AdamW

        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return AdamW(groups, lr=learning_rate, betas=betas)

    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
    ) -> Tensor:
        """Append ``max_new_tokens`` sampled tokens to ``idx`` (B, T); the context is cropped to
        the last ``block_size`` tokens. ``temperature`` < 1 sharpens, ``top_k`` keeps the k most
        likely tokens."""
        was_training = self.training
        self.eval()
        seq = np.asarray(idx.numpy(), dtype=np.int64)
        with no_grad():
            for _ in range(max_new_tokens):
                ctx = seq[:, -self.config.block_size :]
                logits, _ = self(_tensor(ctx))
                nxt = sample_next(logits[:, -1, :], temperature, top_k)
                seq = np.concatenate([seq, nxt], axis=1)
        self.train(was_training)
        return _tensor(seq)

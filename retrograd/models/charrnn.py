"""``CharRNN``: a character-level language model, Embedding -> LSTM -> Linear."""

from __future__ import annotations

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..creation import tensor as _tensor
from ..nn import functional as F
from ..tensor import Tensor
from ._sampling import sample_next


class CharRNN(nn.Module):
    """Predict the next character from the previous ones with a multi-layer LSTM.

    ``forward(idx, targets=None)`` returns ``(logits, loss)`` like :class:`GPT`, so the same
    training loop drives both; ``loss`` is ``None`` without targets.

    Args:
        vocab_size: number of distinct tokens.
        embed_dim: size of the token embedding.
        hidden_size: LSTM hidden size.
        num_layers: stacked LSTM layers.
        dropout: dropout between LSTM layers and before the output layer.

    >>> import retrograd as rg
    >>> m = rg.models.CharRNN(vocab_size=10, embed_dim=8, hidden_size=16)
    >>> logits, loss = m(rg.randint(0, 10, (2, 5)), rg.randint(0, 10, (2, 5)))
    >>> logits.shape
    retrograd.Size([2, 5, 10])
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(
            embed_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def step(self, idx: Tensor, hidden=None):
        """Run the LSTM over ``idx`` (B, T) from state ``hidden``; returns ``(logits, hidden)``."""
        out, hidden = self.lstm(self.embed(idx), hidden)
        return self.head(self.drop(out)), hidden

    def forward(self, idx: Tensor, targets: Tensor | None = None):
        logits, _ = self.step(idx)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1))
        return logits, loss

    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
    ) -> Tensor:
        """Extend ``idx`` (B, T) by ``max_new_tokens`` sampled tokens; returns (B, T + new).

        The prompt is read once; each new token then costs one LSTM step (the state carries
        the context, so there is no window limit).
        """
        was_training = self.training
        self.eval()
        out = [np.asarray(idx.numpy(), dtype=np.int64)]
        with no_grad():
            logits, hidden = self.step(idx)
            for _ in range(max_new_tokens):
                nxt = sample_next(logits[:, -1, :], temperature, top_k)
                out.append(nxt)
                logits, hidden = self.step(_tensor(nxt), hidden)
        self.train(was_training)
        return _tensor(np.concatenate(out, axis=1))

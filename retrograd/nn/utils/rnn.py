"""Sequence padding helpers (``torch.nn.utils.rnn.pad_sequence`` / ``unpad_sequence``)."""

from __future__ import annotations

from ...tensor import Tensor

__all__ = ["pad_sequence", "unpad_sequence"]


def pad_sequence(
    sequences, batch_first: bool = False, padding_value: float = 0.0, padding_side: str = "right"
) -> Tensor:
    """Stack variable-length tensors (L_i, *) into (L_max, B, *) or (B, L_max, *), padding
    with ``padding_value`` (differentiable).

    >>> import retrograd as rg
    >>> rg.nn.utils.rnn.pad_sequence([rg.ones(2), rg.ones(1)], batch_first=True).tolist()
    [[1.0, 1.0], [1.0, 0.0]]
    """
    from ...ops.movement import pad, stack

    if padding_side not in ("left", "right"):
        raise ValueError(
            f"Expected padding_side to be one of left or right, but got {padding_side}."
        )
    seqs = list(sequences)
    if not seqs:
        raise RuntimeError("received an empty list of sequences")
    max_len = max(s.shape[0] for s in seqs)
    padded = []
    for s in seqs:
        extra = max_len - s.shape[0]
        widths = [0, 0] * (s.dim() - 1) + ([0, extra] if padding_side == "right" else [extra, 0])
        padded.append(pad(s, tuple(widths), value=padding_value) if extra else s)
    out = stack(padded, 0)
    return out if batch_first else out.transpose(0, 1)


def unpad_sequence(padded_sequences: Tensor, lengths, batch_first: bool = False) -> list:
    """Split a padded batch back into a list of tensors of the given lengths."""
    x = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    lens = lengths.tolist() if isinstance(lengths, Tensor) else list(lengths)
    return [x[i, : int(n)] for i, n in enumerate(lens)]

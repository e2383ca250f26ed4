"""Tiny Shakespeare, character level, split 90/10 like nanoGPT."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from ...random import _rng
from ...tensor import Tensor
from ..dataset import Dataset
from ._files import bundled

__all__ = ["TinyShakespeare"]


class TinyShakespeare(Dataset):
    """Character-level Tiny Shakespeare (1,115,394 characters, vocabulary of 65).

    The vocabulary is the sorted set of characters of the whole text (``stoi``/``itos``,
    ``encode``/``decode``); the first 90% of the encoded text is ``split='train'``, the rest
    ``'val'`` (nanoGPT's ``shakespeare_char`` preparation). ``ds[i]`` is ``(x, y)``: int64
    tensors of ``block_size`` tokens starting at ``i`` and the same shifted by one.
    :meth:`get_batch` draws random blocks like nanoGPT's ``get_batch``.

    ``root`` may be a text file or a folder containing ``tinyshakespeare.txt`` or
    ``input.txt``; ``None`` uses the bundled copy.

    >>> import retrograd as rg
    >>> ds = rg.data.datasets.TinyShakespeare(split="val", block_size=8)
    >>> ds.vocab_size, ds.decode(ds.encode("To be")), ds[0][0].shape
    (65, 'To be', retrograd.Size([8]))
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "train",
        block_size: int = 256,
        train_fraction: float = 0.9,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"TinyShakespeare: split must be 'train' or 'val', got {split!r}")
        if block_size < 1:
            raise ValueError(f"TinyShakespeare: block_size must be >= 1, got {block_size}")
        path = self._find(root)
        with open(path, encoding="utf-8") as f:
            self.text = f.read()
        chars = sorted(set(self.text))
        self.chars = chars
        self.vocab_size = len(chars)
        self.stoi = {c: i for i, c in enumerate(chars)}
        self.itos = dict(enumerate(chars))
        self._lut = np.zeros(max(map(ord, chars)) + 1, dtype=np.int64)
        self._lut[[ord(c) for c in chars]] = np.arange(len(chars))
        data = self._encode_array(self.text)
        n = int(len(data) * train_fraction)
        self.split = split
        self.block_size = block_size
        self.data = data[:n] if split == "train" else data[n:]
        if len(self.data) <= block_size:
            raise ValueError(
                f"TinyShakespeare: the {split} split has {len(self.data)} tokens, not more than "
                f"block_size={block_size}"
            )

    @staticmethod
    def _find(root: Any) -> str:
        if root is None:
            return bundled("tinyshakespeare.txt")
        root = os.fspath(root)
        if os.path.isfile(root):
            return root
        names = ("tinyshakespeare.txt", "input.txt")
        for name in names:
            if os.path.isfile(os.path.join(root, name)):
                return os.path.join(root, name)
        raise FileNotFoundError(f"TinyShakespeare: found neither of {names} in {root!r}")

    def _encode_array(self, s: str) -> np.ndarray:
        codes = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32)
        bad = (codes >= len(self._lut)) | ~np.isin(codes, [ord(c) for c in self.chars])
        if bad.any():
            ch = chr(int(codes[bad][0]))
            raise KeyError(f"TinyShakespeare.encode: character {ch!r} is not in the vocabulary")
        return self._lut[codes]

    def encode(self, s: str) -> list[int]:
        """Text to token ids."""
        return self._encode_array(s).tolist()

    def decode(self, ids: Iterable[int] | Tensor) -> str:
        """Token ids (a list or a tensor) to text."""
        if isinstance(ids, Tensor):
            ids = ids._data.reshape(-1).tolist()
        return "".join(self.itos[int(i)] for i in ids)

    def __len__(self) -> int:
        return len(self.data) - self.block_size

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} is out of range for TinyShakespeare of length {len(self)}")
        chunk = self.data[i : i + self.block_size + 1]
        return Tensor._make(chunk[:-1].copy()), Tensor._make(chunk[1:].copy())

    def get_batch(self, batch_size: int, generator: Any = None) -> tuple[Tensor, Tensor]:
        """``batch_size`` random blocks: ``x`` and ``y = x`` shifted by one, int64 ``(B, T)``.

        >>> import retrograd as rg
        >>> ds = rg.data.datasets.TinyShakespeare(block_size=16)
        >>> x, y = ds.get_batch(4, generator=rg.Generator().manual_seed(0))
        >>> x.shape, bool((x[:, 1:] == y[:, :-1]).all())
        (retrograd.Size([4, 16]), True)
        """
        ix = _rng(generator).integers(0, len(self.data) - self.block_size, size=batch_size)
        rows = ix[:, None] + np.arange(self.block_size + 1)
        blocks = self.data[rows]
        return Tensor._make(blocks[:, :-1].copy()), Tensor._make(blocks[:, 1:].copy())

"""Image transforms (``torchvision.transforms``-like) that work on one image or a batch.

Images are channel-first: ``(C, H, W)`` for a sample, ``(N, C, H, W)`` for a batch (rg tensors
or NumPy arrays). Random transforms draw from the rg RNG (``rg.manual_seed``) or a
``generator``; on a batch every image gets its own random draw, vectorised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import _dtype
from ..random import _rng
from ..tensor import Tensor

__all__ = [
    "Compose",
    "ToTensor",
    "ConvertImageDtype",
    "Normalize",
    "RandomCrop",
    "RandomShift",
    "RandomHorizontalFlip",
    "Lambda",
]


def _arr(x: Any) -> np.ndarray:
    return x._data if isinstance(x, Tensor) else np.asarray(x)


def _like(x: Any, arr: np.ndarray) -> Any:
    return Tensor._make(arr) if isinstance(x, Tensor) else arr


class Compose:
    """Apply transforms in order.

    >>> import retrograd as rg
    >>> from retrograd.data import transforms as T
    >>> f = T.Compose([T.ConvertImageDtype(rg.float32), T.Normalize([0.5], [0.5])])
    >>> f(rg.full((1, 2, 2), 255, dtype=rg.uint8)).tolist()
    [[[1.0, 1.0], [1.0, 1.0]]]
    """

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Any) -> Any:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"


class Lambda:
    """Wrap a function as a transform."""

    def __init__(self, lambd: Callable) -> None:
        self.lambd = lambd

    def __call__(self, x: Any) -> Any:
        return self.lambd(x)


class ToTensor:
    """A NumPy image (``H x W`` or ``H x W x C``; a batch ``N x H x W x C``) to a float32
    channel-first tensor; uint8 values are scaled to ``[0, 1]``. An rg tensor is taken as
    already channel-first and only converted (like :class:`ConvertImageDtype`).

    >>> import numpy as np
    >>> from retrograd.data import transforms as T
    >>> T.ToTensor()(np.full((28, 28), 255, np.uint8)).shape
    retrograd.Size([1, 28, 28])
    """

    def __call__(self, pic: Any) -> Tensor:
        if isinstance(pic, Tensor):
            return ConvertImageDtype(_dtype.float32)(pic)
        a = np.asarray(pic)
        if a.ndim == 2:
            a = a[None]
        elif a.ndim == 3:
            a = a.transpose(2, 0, 1)
        elif a.ndim == 4:
            a = a.transpose(0, 3, 1, 2)
        else:
            raise ValueError(
                f"ToTensor: expected an image of 2 or 3 dims (or a batch of 4), got {a.shape}"
            )
        return Tensor._make(_to_float(np.ascontiguousarray(a)))

    def __repr__(self) -> str:
        return "ToTensor()"


def _to_float(a: np.ndarray, dtype=np.float32) -> np.ndarray:
    if a.dtype == np.uint8:
        out = a.astype(dtype)
        out *= dtype(1.0 / 255.0) if dtype is np.float64 else np.float32(1.0 / 255.0)
        return out
    return a.astype(dtype, copy=False)


class ConvertImageDtype:
    """Convert an image or batch to a float dtype, scaling uint8 ``0..255`` to ``[0, 1]``."""

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype

    def __call__(self, x: Any) -> Any:
        np_dtype = _dtype.to_numpy_dtype(self.dtype)
        a = _arr(x)
        if np.dtype(np_dtype).kind != "f":
            return _like(x, a.astype(np_dtype))
        return _like(x, _to_float(a, np.dtype(np_dtype).type))

    def __repr__(self) -> str:
        return f"ConvertImageDtype(dtype={self.dtype})"


class Normalize:
    """``(x - mean[c]) / std[c]`` per channel, for ``(C, H, W)`` or ``(N, C, H, W)``.

    >>> import retrograd as rg
    >>> from retrograd.data import transforms as T
    >>> T.Normalize([0.1307], [0.3081])(rg.zeros(2, 1, 2, 2)).shape
    retrograd.Size([2, 1, 2, 2])
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        self.mean = list(mean) if isinstance(mean, (list, tuple)) else [float(mean)]
        self.std = list(std) if isinstance(std, (list, tuple)) else [float(std)]
        if any(s == 0 for s in self.std):
            raise ValueError(
                "std evaluated to zero after conversion to float, leading to division by zero: "
                f"{self.std}"
            )
        self.inplace = inplace

    def __call__(self, x: Any) -> Any:
        a = _arr(x)
        if a.dtype.kind != "f":
            raise TypeError(f"Normalize: input tensor should be a float tensor. Got {a.dtype}.")
        if a.ndim < 3:
            raise ValueError(
                f"Normalize: expected a tensor of 3 (C, H, W) or 4 dims, got shape {a.shape}"
            )
        mean = np.asarray(self.mean, dtype=a.dtype).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype=a.dtype).reshape(-1, 1, 1)
        out = a if self.inplace else a.copy()
        out -= mean
        out /= std
        if self.inplace and isinstance(x, Tensor):
            x._bump()
            return x
        return _like(x, out)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


class RandomCrop:
    """Pad by ``padding`` (zeros by default), then cut a random ``size`` window; on a batch
    each image gets its own window (vectorised, no per-image Python).

    >>> import retrograd as rg
    >>> from retrograd.data import transforms as T
    >>> T.RandomCrop(28, padding=2)(rg.zeros(5, 1, 28, 28)).shape
    retrograd.Size([5, 1, 28, 28])
    """

    def __init__(
        self,
        size: int | Sequence[int],
        padding: int | Sequence[int] | None = None,
        pad_if_needed: bool = False,
        fill: float = 0,
        padding_mode: str = "constant",
        *,
        generator: Any = None,
    ) -> None:
        self.size = _pair(size)
        self.padding = padding
        self.pad_if_needed = pad_if_needed
        self.fill = fill
        self.padding_mode = padding_mode
        self.generator = generator

    def _pad(self, a: np.ndarray) -> np.ndarray:
        if self.padding is None:
            pl = pr = pt = pb = 0
        elif isinstance(self.padding, (int, np.integer)):
            pl = pr = pt = pb = int(self.padding)
        elif len(self.padding) == 2:
            pl = pr = int(self.padding[0])
            pt = pb = int(self.padding[1])
        else:
            pl, pt, pr, pb = (int(p) for p in self.padding)
        h, w = a.shape[-2:]
        th, tw = self.size
        if self.pad_if_needed:
            if h + pt + pb < th:
                extra = th - (h + pt + pb)
                pt, pb = pt + extra, pb + extra
            if w + pl + pr < tw:
                extra = tw - (w + pl + pr)
                pl, pr = pl + extra, pr + extra
        if pl == pr == pt == pb == 0:
            return a
        widths = [(0, 0)] * (a.ndim - 2) + [(pt, pb), (pl, pr)]
        mode = {
            "constant": "constant",
            "edge": "edge",
            "reflect": "reflect",
            "symmetric": "symmetric",
        }
        if self.padding_mode not in mode:
            raise ValueError(
                "padding_mode should be constant, edge, reflect or symmetric, got "
                f"{self.padding_mode}"
            )
        if self.padding_mode == "constant":
            return np.pad(a, widths, mode="constant", constant_values=self.fill)
        return np.pad(a, widths, mode=mode[self.padding_mode])

    def __call__(self, x: Any) -> Any:
        a = self._pad(_arr(x))
        h, w = a.shape[-2:]
        th, tw = self.size
        if h < th or w < tw:
            raise ValueError(
                f"RandomCrop: required crop size {(th, tw)} is larger than the input image size "
                f"{(h, w)}"
            )
        rng = _rng(self.generator)
        if a.ndim <= 3:
            i = int(rng.integers(0, h - th + 1))
            j = int(rng.integers(0, w - tw + 1))
            return _like(x, np.ascontiguousarray(a[..., i : i + th, j : j + tw]))
        n = a.shape[0]
        lead = a.reshape(n, -1, h, w)
        oi = rng.integers(0, h - th + 1, size=n)
        oj = rng.integers(0, w - tw + 1, size=n)
        # row/column index grids per image: out[n, c, r, s] = lead[n, c, oi[n] + r, oj[n] + s]
        rows = (oi[:, None] + np.arange(th))[:, None, :, None]
        cols = (oj[:, None] + np.arange(tw))[:, None, None, :]
        out = lead[
            np.arange(n)[:, None, None, None],
            np.arange(lead.shape[1])[None, :, None, None],
            rows,
            cols,
        ]
        return _like(x, out.reshape(a.shape[:-2] + (th, tw)))

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomShift(RandomCrop):
    """Translate each image by a random whole number of pixels in ``[-max_shift, max_shift]``
    along each axis, filling with zeros (a same-size :class:`RandomCrop` of the padded image).

    >>> import retrograd as rg
    >>> from retrograd.data import transforms as T
    >>> T.RandomShift(2)(rg.ones(3, 1, 8, 8)).shape
    retrograd.Size([3, 1, 8, 8])
    """

    def __init__(self, max_shift: int, fill: float = 0, *, generator: Any = None) -> None:
        super().__init__(1, padding=max_shift, fill=fill, generator=generator)
        self.max_shift = max_shift

    def __call__(self, x: Any) -> Any:
        self.size = tuple(_arr(x).shape[-2:])
        return super().__call__(x)

    def __repr__(self) -> str:
        return f"RandomShift(max_shift={self.max_shift})"


class RandomHorizontalFlip:
    """Flip each image left-right with probability ``p`` (per image on a batch)."""

    def __init__(self, p: float = 0.5, *, generator: Any = None) -> None:
        self.p = p
        self.generator = generator

    def __call__(self, x: Any) -> Any:
        a = _arr(x)
        rng = _rng(self.generator)
        if a.ndim <= 3:
            return _like(x, np.ascontiguousarray(a[..., ::-1])) if rng.random() < self.p else x
        flip = rng.random(a.shape[0]) < self.p
        out = a.copy()
        out[flip] = a[flip][..., ::-1]
        return _like(x, out)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"

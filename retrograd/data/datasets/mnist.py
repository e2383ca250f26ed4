"""MNIST and Fashion-MNIST from IDX files (gzipped or not); the MNIST test set is bundled."""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from ...tensor import Tensor
from ..dataset import Dataset
from ._files import FILES_DIR

__all__ = ["MNIST", "FashionMNIST", "read_idx"]

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (LeCun's format; ``.gz`` is decompressed) into a NumPy array.

    >>> from retrograd.data.datasets.mnist import read_idx
    >>> from retrograd.data.datasets._files import bundled
    >>> read_idx(bundled("t10k-labels-idx1-ubyte.gz")).shape
    (10000,)
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(raw)} bytes)")
    zero, code, ndim = raw[0] << 8 | raw[1], raw[2], raw[3]
    if zero != 0 or code not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[code])
    count = int(np.prod(dims)) if dims else 1
    offset = 4 + 4 * ndim
    if len(raw) - offset < count * dtype.itemsize:
        raise ValueError(f"{path}: truncated IDX file (header says {dims}, data is short)")
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


class MNIST(Dataset):
    """Handwritten digits, 28x28 uint8 images with int64 labels (``torchvision`` layout).

    ``root=None`` uses the bundled 10,000-image MNIST test set, split deterministically: the
    first 8,000 images are ``train=True``, the last 2,000 ``train=False``. With ``root`` the
    standard files ``train-images-idx3-ubyte``/``train-labels-idx1-ubyte`` (or ``t10k-*``
    for ``train=False``), optionally ``.gz``, are read from ``root``, ``root/raw`` or
    ``root/<ClassName>/raw``. Nothing is ever downloaded.

    ``data`` is a uint8 tensor ``(N, 28, 28)``, ``targets`` an int64 tensor. A sample is
    ``(image, label)``: the image is a uint8 ``(28, 28)`` NumPy array passed through
    ``transform`` if given (e.g. ``transforms.ToTensor()``), the label an int.

    >>> import retrograd as rg
    >>> ds = rg.data.datasets.MNIST(train=False)
    >>> len(ds), ds.data.shape
    (2000, retrograd.Size([2000, 28, 28]))
    """

    classes = [
        "0 - zero",
        "1 - one",
        "2 - two",
        "3 - three",
        "4 - four",
        "5 - five",
        "6 - six",
        "7 - seven",
        "8 - eight",
        "9 - nine",
    ]
    _bundled_train = 8000

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        train: bool = True,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        download: bool = False,
    ) -> None:
        self.root = None if root is None else os.fspath(root)
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        if self.root is None:
            images, labels = self._load_bundled()
        else:
            images, labels = self._load_folder(self.root, download)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{type(self).__name__}: {images.shape[0]} images but {labels.shape[0]} labels"
            )
        self.data = Tensor._make(images)
        self.targets = Tensor._make(labels.astype(np.int64))

    def _load_bundled(self) -> tuple[np.ndarray, np.ndarray]:
        if type(self) is not MNIST:
            raise RuntimeError(
                f"{type(self).__name__} is not bundled with retrograd; pass root= a folder holding "
                "its IDX files"
            )
        images = read_idx(os.path.join(FILES_DIR, "t10k-images-idx3-ubyte.gz"))
        labels = read_idx(os.path.join(FILES_DIR, "t10k-labels-idx1-ubyte.gz"))
        k = self._bundled_train
        return (images[:k], labels[:k]) if self.train else (images[k:], labels[k:])

    def _load_folder(self, root: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
        prefix = "train" if self.train else "t10k"
        wanted = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
        folders = [root, os.path.join(root, "raw"), os.path.join(root, type(self).__name__, "raw")]
        found = []
        for base in wanted:
            hit = None
            for folder in folders:
                for name in (base, base + ".gz"):
                    if os.path.isfile(os.path.join(folder, name)):
                        hit = os.path.join(folder, name)
                        break
                if hit:
                    break
            found.append(hit)
        if None in found:
            missing = [w for w, h in zip(wanted, found) if h is None]
            msg = (
                f"{type(self).__name__}: could not find {', '.join(m + '[.gz]' for m in missing)} "
                f"in {', '.join(repr(f) for f in folders)}"
            )
            if download:
                msg += (
                    ". download=True cannot help: retrograd never fetches data from the network; "
                    "copy the IDX files there yourself"
                )
                raise RuntimeError(msg)
            raise FileNotFoundError(msg)
        return read_idx(found[0]), read_idx(found[1])

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img = self.data._data[index]
        target = int(self.targets._data[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def __repr__(self) -> str:
        src = "bundled MNIST test set" if self.root is None else self.root
        split = "Train" if self.train else "Test"
        return (
            f"Dataset {type(self).__name__}\n    Number of datapoints: {len(self)}\n"
            f"    Root location: {src}\n    Split: {split}"
        )


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST (same IDX file names as MNIST); needs ``root``."""

    classes = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]

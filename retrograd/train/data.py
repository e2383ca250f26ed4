"""Data for the trainer: whole data sets as NumPy arrays, and batches that are a pure function of
``(seed, step)``, so a resumed run sees exactly the batches the uninterrupted run would have.
"""

from __future__ import annotations

import numpy as np

from ..data import datasets

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class DataError(FileNotFoundError):
    """A data set's files are missing or unreadable."""


def _rng(*key: int) -> np.random.Generator:
    """A generator determined only by ``key`` (e.g. ``(seed, epoch)``), independent of history."""
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in key])


def load_mnist(root: str | None, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images (uint8, (N, 28, 28)) and labels (int64) via ``rg.data.datasets.MNIST``.

    ``root=None`` is the bundled 10,000-image set split 8,000 (train) / 2,000 (test); a folder
    holds the standard ``train-*``/``t10k-*`` IDX files.
    """
    try:
        ds = datasets.MNIST(root, train=train)
    except (FileNotFoundError, RuntimeError) as e:
        raise DataError(str(e)) from None
    return ds.data.numpy(), ds.targets.numpy()


def shift_images(x: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Translate each image (N, C, H, W) by a random whole number of pixels in [-s, s] per axis,
    filling with the background value (the minimum)."""
    if max_shift <= 0:
        return x
    s = max_shift
    n = x.shape[0]
    dy = rng.integers(-s, s + 1, n)
    dx = rng.integers(-s, s + 1, n)
    padded = np.pad(x, ((0, 0), (0, 0), (s, s), (s, s)), constant_values=float(x.min()))
    out = np.empty_like(x)
    h, w = x.shape[2:]
    for oy in range(-s, s + 1):
        for ox in range(-s, s + 1):
            sel = np.nonzero((dy == oy) & (dx == ox))[0]
            if sel.size:
                out[sel] = padded[sel, :, s - oy : s - oy + h, s - ox : s - ox + w]
    return out


class ClassificationData:
    """A train/val split held in memory; ``batch(step)`` is a pure function of (seed, step).

    Each epoch is a fresh permutation drawn from ``(seed, epoch)``; the augmentation of a batch
    is drawn from ``(seed, step)``. The last incomplete batch of an epoch is dropped.
    """

    kind = "classification"

    def __init__(self, cfg: dict, seed: int) -> None:
        d = cfg["data"]
        self.seed = seed
        self.batch_size = int(d["batch_size"])
        self.augment_shift = int(d.get("augment_shift", 0) or 0)
        if d["name"] == "moons":
            n_train, n_val = int(d.get("n_train", 1000)), int(d.get("n_val", 1000))
            x, y = datasets.make_moons(n_train + n_val, noise=float(d.get("noise", 0.1)),
                                       random_state=1234)
            x, y = x.numpy(), y.numpy()
            self.x_train, self.y_train = x[:n_train], y[:n_train]
            self.x_val, self.y_val = x[n_train:], y[n_train:]
            self.num_classes = 2
            self.image = False
        elif d["name"] == "mnist":
            root = d.get("root")
            xs, ys = load_mnist(root, True)
            xv, yv = load_mnist(root, False)
            n_train, n_val = int(d.get("n_train") or len(xs)), int(d.get("n_val") or len(xv))

            def prep(img: np.ndarray) -> np.ndarray:
                return ((img.astype(np.float32) / 255.0 - MNIST_MEAN) / MNIST_STD)[:, None]

            self.x_train, self.y_train = prep(xs[:n_train]), ys[:n_train]
            self.x_val, self.y_val = prep(xv[:n_val]), yv[:n_val]
            self.num_classes = 10
            self.image = True
        else:
            raise DataError(f"unknown classification data set {d['name']!r}")
        n = len(self.x_train)
        if self.batch_size > n:
            raise ValueError(f"batch_size {self.batch_size} exceeds the {n} training samples")
        self.steps_per_epoch = n // self.batch_size
        self.samples_per_step = self.batch_size

    def batch(self, step: int, rank: int = 0, world: int = 1) -> tuple[np.ndarray, np.ndarray]:
        epoch, i = divmod(step, self.steps_per_epoch)
        perm = _rng(self.seed, epoch).permutation(len(self.x_train))
        idx = perm[i * self.batch_size : (i + 1) * self.batch_size][rank::world]
        x = self.x_train[idx]
        if self.image and self.augment_shift:
            x = shift_images(x, self.augment_shift, _rng(self.seed, step, 1))
        return x, self.y_train[idx]


class TextData:
    """Character-level text (``rg.data.datasets.TinyShakespeare``): 90/10 split, random windows."""

    kind = "lm"

    def __init__(self, cfg: dict, seed: int) -> None:
        d = cfg["data"]
        self.seed = seed
        self.block_size = int(d.get("block_size", 64))
        self.batch_size = int(d["batch_size"])
        try:
            kw = {"root": d.get("path"), "block_size": self.block_size,
                  "train_fraction": 1.0 - float(d.get("val_fraction", 0.1))}
            train = datasets.TinyShakespeare(split="train", **kw)
            val = datasets.TinyShakespeare(split="val", **kw)
        except FileNotFoundError as e:
            raise DataError(str(e)) from None
        self._ds = train
        self.chars = train.chars
        self.stoi = train.stoi
        self.train, self.val = np.asarray(train.data), np.asarray(val.data)
        self.vocab_size = train.vocab_size
        self.samples_per_step = self.batch_size * self.block_size  # tokens

    def encode(self, s: str) -> list[int]:
        missing = sorted({c for c in s if c not in self.stoi})
        if missing:
            raise ValueError(f"characters not in the vocabulary: {missing!r}")
        return self._ds.encode(s)

    def decode(self, ids) -> str:
        return self._ds.decode(ids)

    def _windows(self, data: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        offs = starts[:, None] + np.arange(self.block_size)[None, :]
        return data[offs], data[offs + 1]

    def batch(self, step: int, rank: int = 0, world: int = 1) -> tuple[np.ndarray, np.ndarray]:
        starts = _rng(self.seed, step).integers(0, len(self.train) - self.block_size,
                                                self.batch_size)
        return self._windows(self.train, starts[rank::world])

    def eval_batches(self, n_batches: int, split: str = "val"):
        """A fixed set of windows (the same at every evaluation, so val curves are comparable)."""
        data = self.val if split == "val" else self.train
        rng = _rng(self.seed, 99991, 0 if split == "val" else 1)
        for _ in range(n_batches):
            yield self._windows(data, rng.integers(0, len(data) - self.block_size,
                                                   self.batch_size))


def build_data(cfg: dict):
    """The data object for a config's ``task``."""
    if cfg["task"] == "lm":
        return TextData(cfg, int(cfg["seed"]))
    return ClassificationData(cfg, int(cfg["seed"]))

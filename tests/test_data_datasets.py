"""Bundled data sets (MNIST, Tiny Shakespeare) and toy generators."""

from __future__ import annotations

import gzip
import os
import shutil

import numpy as np
import pytest

import retrograd as rg
from retrograd.data.datasets import MNIST, FashionMNIST, TinyShakespeare
from retrograd.data.datasets._files import FILES_DIR

# Per-class label counts of the MNIST test set (published with the data set; also in
# retrograd/data/datasets/files/README.md).
T10K_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_bundled_files_and_readme_present():
    names = set(os.listdir(FILES_DIR))
    assert {
        "tinyshakespeare.txt",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "README.md",
    } <= names
    readme = open(os.path.join(FILES_DIR, "README.md")).read()
    assert "CC BY-SA 3.0" in readme and "public domain" in readme


def test_mnist_embedded_split_shapes_and_counts():
    tr, te = MNIST(train=True), MNIST(train=False)
    assert len(tr) == 8000 and len(te) == 2000
    assert tr.data.shape == (8000, 28, 28) and tr.data.dtype == rg.uint8
    assert tr.targets.dtype == rg.int64
    counts = np.bincount(tr.targets.numpy(), minlength=10) + np.bincount(
        te.targets.numpy(), minlength=10
    )
    assert counts.tolist() == T10K_COUNTS
    assert np.bincount(tr.targets.numpy()).min() > 700  # every class well represented in train
    assert te.targets.numpy()[:0].size == 0 and tr.targets.numpy()[:5].tolist() == [7, 2, 1, 0, 4]
    img, label = tr[0]
    assert img.shape == (28, 28) and img.dtype == np.uint8 and label == 7 and img.max() > 200
    from retrograd.data import transforms as T

    ds = MNIST(train=False, transform=T.ToTensor())
    x, y = ds[0]
    assert (
        x.shape == (1, 28, 28)
        and x.dtype == rg.float32
        and 0 <= x.min().item() <= x.max().item() <= 1
    )
    b = next(iter(rg.data.DataLoader(ds, batch_size=16)))
    assert b[0].shape == (16, 1, 28, 28) and b[1].dtype == rg.int64


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_folder_gzip_and_raw(tmp_path, gz):
    for kind in ("images-idx3", "labels-idx1"):
        src = os.path.join(FILES_DIR, f"t10k-{kind}-ubyte.gz")
        for prefix in ("t10k", "train"):
            dst = tmp_path / f"{prefix}-{kind}-ubyte"
            if gz:
                shutil.copy(src, str(dst) + ".gz")
            else:
                with gzip.open(src) as f, open(dst, "wb") as g:
                    g.write(f.read())
    ds = MNIST(root=tmp_path, train=False)
    assert len(ds) == 10000 and np.bincount(ds.targets.numpy()).tolist() == T10K_COUNTS
    tr = MNIST(root=str(tmp_path), train=True)
    np.testing.assert_array_equal(tr.data.numpy()[:8000], MNIST().data.numpy())
    fm = FashionMNIST(root=tmp_path)  # same file names, so Fashion-MNIST folders work too
    assert len(fm) == 10000 and fm.classes[0] == "T-shirt/top"


def test_mnist_missing_folder_and_download(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"train-images-idx3-ubyte.*train-labels-idx1-ubyte"
    ):
        MNIST(root=tmp_path)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        MNIST(root=tmp_path / "nope", train=False)
    with pytest.raises(RuntimeError, match="never fetches"):
        MNIST(root=tmp_path, download=True)
    with pytest.raises(RuntimeError, match="not bundled"):
        FashionMNIST()


def test_idx_reader_rejects_garbage(tmp_path):
    from retrograd.data.datasets.mnist import read_idx

    bad = tmp_path / "x-idx1-ubyte"
    bad.write_bytes(b"\x12\x34\x56\x78abcd")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(str(bad))
    short = tmp_path / "y"
    short.write_bytes(bytes([0, 0, 8, 1]) + (100).to_bytes(4, "big") + b"\x00" * 10)
    with pytest.raises(ValueError, match="truncated"):
        read_idx(str(short))


def test_tiny_shakespeare_vocab_roundtrip_and_splits():
    tr = TinyShakespeare(split="train", block_size=32)
    va = TinyShakespeare(split="val", block_size=32)
    assert tr.vocab_size == 65 == len(tr.stoi) == len(tr.itos)
    assert tr.chars == sorted(set(tr.text)) and tr.itos[0] == "\n" and tr.stoi[" "] == 1
    n = 1115394
    assert len(tr.data) == int(n * 0.9) and len(tr.data) + len(va.data) == n
    s = "First Citizen:\nBefore we proceed"
    assert tr.decode(tr.encode(s)) == s
    assert tr.decode(rg.tensor(tr.encode(s))) == s
    assert tr.decode(tr.data[:14].tolist()) == "First Citizen:"
    x, y = tr[0]
    assert x.dtype == rg.int64 and x.shape == (32,) and tr.decode(x).startswith("First Citizen")
    np.testing.assert_array_equal(x.numpy()[1:], y.numpy()[:-1])
    assert len(tr) == len(tr.data) - 32
    with pytest.raises(KeyError, match="not in the vocabulary"):
        tr.encode("é")
    xb, yb = va.get_batch(8, generator=rg.Generator().manual_seed(0))
    xb2, _ = va.get_batch(8, generator=rg.Generator().manual_seed(0))
    assert xb.shape == (8, 32) and xb.dtype == rg.int64
    np.testing.assert_array_equal(xb.numpy(), xb2.numpy())
    np.testing.assert_array_equal(xb.numpy()[:, 1:], yb.numpy()[:, :-1])
    with pytest.raises(ValueError, match="split"):
        TinyShakespeare(split="test")


def test_tiny_shakespeare_root(tmp_path):
    (tmp_path / "input.txt").write_text("abcabcabcabc" * 10)
    ds = TinyShakespeare(root=tmp_path, block_size=4)
    assert ds.vocab_size == 3 and ds.encode("cab") == [2, 0, 1]
    with pytest.raises(FileNotFoundError):
        TinyShakespeare(root=tmp_path / "empty_dir_missing")


def _moons_reference(n, noise, seed):
    # scikit-learn's construction, written out independently for the check
    rs = np.random.RandomState(seed)
    n_out, n_in = n // 2, n - n // 2
    outer = np.c_[np.cos(np.linspace(0, np.pi, n_out)), np.sin(np.linspace(0, np.pi, n_out))]
    inner = np.c_[
        1 - np.cos(np.linspace(0, np.pi, n_in)), 1 - np.sin(np.linspace(0, np.pi, n_in)) - 0.5
    ]
    X = np.r_[outer, inner]
    y = np.r_[np.zeros(n_out), np.ones(n_in)]
    idx = np.arange(n)
    rs.shuffle(idx)
    X, y = X[idx], y[idx]
    X = X + rs.normal(scale=noise, size=X.shape)
    return X, y


def test_toy_generators():
    X, y = rg.data.datasets.make_moons(101, noise=0.1, random_state=3)
    Xr, yr = _moons_reference(101, 0.1, 3)
    assert X.dtype == rg.float32 and y.dtype == rg.int64 and X.shape == (101, 2)
    np.testing.assert_allclose(X.numpy(), Xr, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(y.numpy(), yr)
    X2, _ = rg.data.datasets.make_moons(101, noise=0.1, random_state=3)
    np.testing.assert_array_equal(X.numpy(), X2.numpy())
    Xc, yc = rg.data.datasets.make_circles(200, factor=0.5, random_state=0)
    r = np.linalg.norm(Xc.numpy(), axis=1)
    np.testing.assert_allclose(r[yc.numpy() == 0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(r[yc.numpy() == 1], 0.5, rtol=1e-6)
    Xs, ys = rg.data.datasets.make_spirals(300, 3, random_state=0)
    assert Xs.dtype == rg.float32 and np.bincount(ys.numpy()).tolist() == [100, 100, 100]
    assert np.abs(Xs.numpy()).max() <= 1.0 + 1e-6
    Xb, yb = rg.data.datasets.make_blobs(
        90, centers=[[0, 0], [10, 10], [-10, 5]], cluster_std=0.5, random_state=1
    )
    for k, c in enumerate([[0, 0], [10, 10], [-10, 5]]):
        np.testing.assert_allclose(Xb.numpy()[yb.numpy() == k].mean(0), c, atol=0.3)
    rg.manual_seed(0)
    a, _ = rg.data.datasets.make_moons(10, noise=0.1)
    rg.manual_seed(0)
    b, _ = rg.data.datasets.make_moons(10, noise=0.1)
    np.testing.assert_array_equal(a.numpy(), b.numpy())  # None -> the rg RNG

"""rg.data: datasets, samplers, DataLoader, collation, transforms (vs torch.utils.data)."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import retrograd as rg
from retrograd.data import transforms as T


def test_utils_data_alias():
    from retrograd.utils.data import DataLoader

    assert DataLoader is rg.data.DataLoader and rg.utils.data is rg.data


def test_tensor_dataset_unequal_lengths_error():
    with pytest.raises(ValueError, match=r"Size mismatch.*\(5, 2\).*\(4,\)"):
        rg.data.TensorDataset(rg.zeros(5, 2), rg.zeros(4))
    with pytest.raises(AssertionError):  # PyTorch raises AssertionError; ours is both
        rg.data.TensorDataset(rg.zeros(5, 2), rg.zeros(4))


def test_tensor_dataset_fast_path_matches_generic():
    x = rg.randn(23, 3)
    y = rg.arange(23)
    ds = rg.data.TensorDataset(x, y)
    fast = list(
        rg.data.DataLoader(ds, batch_size=5, shuffle=True, generator=rg.Generator().manual_seed(3))
    )
    slow = list(
        rg.data.DataLoader(
            ds,
            batch_size=5,
            shuffle=True,
            generator=rg.Generator().manual_seed(3),
            collate_fn=lambda b: rg.data.default_collate(b),
        )
    )
    assert len(fast) == len(slow) == 5
    for (a, b), (c, d) in zip(fast, slow):
        assert isinstance(a, rg.Tensor) and a.dtype == rg.float32 and b.dtype == rg.int64
        np.testing.assert_array_equal(a.numpy(), c.numpy())
        np.testing.assert_array_equal(b.numpy(), d.numpy())
    seen = np.concatenate([b.numpy() for _, b in fast])
    assert sorted(seen.tolist()) == list(range(23))
    np.testing.assert_array_equal(fast[0][0].numpy(), x.numpy()[fast[0][1].numpy()])


def test_dataloader_seed_determinism_and_epochs():
    ds = rg.data.TensorDataset(rg.arange(50))

    def order(**kw):
        return np.concatenate(
            [b[0].numpy() for b in rg.data.DataLoader(ds, batch_size=8, shuffle=True, **kw)]
        )

    g1, g2 = rg.Generator().manual_seed(7), rg.Generator().manual_seed(7)
    a1, b1 = order(generator=g1), order(generator=g2)
    np.testing.assert_array_equal(a1, b1)
    dl = rg.data.DataLoader(ds, batch_size=8, shuffle=True, generator=rg.Generator().manual_seed(7))
    e1 = np.concatenate([b[0].numpy() for b in dl])
    e2 = np.concatenate([b[0].numpy() for b in dl])
    np.testing.assert_array_equal(e1, a1)
    assert not np.array_equal(e1, e2)  # a new permutation each epoch
    rg.manual_seed(11)
    c1 = order()
    rg.manual_seed(11)
    c2 = order()
    np.testing.assert_array_equal(c1, c2)
    assert not np.array_equal(c1, np.arange(50))


def test_dataloader_drop_last_and_len(torch):
    ds = rg.data.TensorDataset(rg.arange(10))
    tds = torch.utils.data.TensorDataset(torch.arange(10))
    for bs in (1, 3, 4, 10, 11):
        for drop in (False, True):
            dl = rg.data.DataLoader(ds, batch_size=bs, drop_last=drop)
            tdl = torch.utils.data.DataLoader(tds, batch_size=bs, drop_last=drop)
            assert len(dl) == len(tdl)
            got = [b[0].tolist() for b in dl]
            assert got == [b[0].tolist() for b in tdl]


class _DictDS(rg.data.Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        return {
            "x": np.full(3, i, np.float32),
            "label": i % 2,
            "w": float(i),
            "name": f"s{i}",
            "pair": (rg.tensor([i, i]), True),
        }


def test_default_collate_dicts_matches_torch(torch):
    from torch.utils.data import default_collate as tcollate

    samples = [_DictDS()[i] for i in range(3)]
    b = rg.data.default_collate(samples)
    tsamples = [{**s, "pair": (torch.tensor(s["pair"][0].numpy()), s["pair"][1])} for s in samples]
    tb = tcollate(tsamples)
    assert set(b) == set(tb)
    for k in ("x", "label", "w"):
        assert str(b[k].dtype).split(".")[-1] == str(tb[k].dtype).split(".")[-1], k
        np.testing.assert_array_equal(b[k].numpy(), tb[k].numpy())
    assert b["name"] == tb["name"]
    assert isinstance(b["pair"], list) and isinstance(tb["pair"], list)
    np.testing.assert_array_equal(b["pair"][0].numpy(), tb["pair"][0].numpy())
    assert b["pair"][1].dtype == rg.bool
    batches = list(rg.data.DataLoader(_DictDS(), batch_size=4))
    assert [len(bb["name"]) for bb in batches] == [4, 2]
    assert batches[0]["x"].shape == (4, 3) and batches[0]["x"].dtype == rg.float32


def test_default_collate_namedtuple_and_errors():
    P = collections.namedtuple("P", "a b")
    out = rg.data.default_collate([P(1, 2.0), P(3, 4.0)])
    assert isinstance(out, P) and out.a.tolist() == [1, 3] and out.a.dtype == rg.int64
    with pytest.raises(RuntimeError, match="equal size"):
        rg.data.default_collate([[1, 2], [1]])
    with pytest.raises(RuntimeError, match="equal size"):
        rg.data.default_collate([rg.zeros(2), rg.zeros(3)])
    with pytest.raises(TypeError, match="default_collate"):
        rg.data.default_collate([object(), object()])


def test_dataloader_option_errors():
    ds = rg.data.TensorDataset(rg.arange(4))
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        rg.data.DataLoader(ds, sampler=rg.data.SequentialSampler(ds), shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        rg.data.DataLoader(ds, batch_size=2, batch_sampler=rg.data.BatchSampler(range(4), 2, False))
    with pytest.raises(ValueError, match="drop_last"):
        rg.data.DataLoader(ds, batch_size=None, drop_last=True)


def test_dataloader_batch_sampler_sampler_none_batch_and_workers():
    ds = rg.data.TensorDataset(rg.arange(6) * 10)
    bs = rg.data.BatchSampler(rg.data.SequentialSampler(ds), 4, drop_last=False)
    assert [b[0].tolist() for b in rg.data.DataLoader(ds, batch_sampler=bs)] == [
        [0, 10, 20, 30],
        [40, 50],
    ]
    dl = rg.data.DataLoader(ds, batch_size=None)
    items = list(dl)
    assert len(dl) == 6 and isinstance(items[2], list) and items[2][0].item() == 20
    sub = rg.data.DataLoader(ds, batch_size=2, sampler=[5, 0, 3])
    assert [b[0].tolist() for b in sub] == [[50, 0], [30]]
    a = [b[0].tolist() for b in rg.data.DataLoader(ds, batch_size=4, num_workers=2)]
    assert a == [[0, 10, 20, 30], [40, 50]]  # num_workers>0 runs in-process, same batches


def test_iterable_dataset_loader():
    class Stream(rg.data.IterableDataset):
        def __iter__(self):
            for i in range(7):
                yield np.float32(i), i

    dl = rg.data.DataLoader(Stream(), batch_size=3, drop_last=True)
    out = list(dl)
    assert len(out) == 2 and out[1][1].tolist() == [3, 4, 5] and out[0][0].dtype == rg.float32
    with pytest.raises(ValueError, match="shuffle"):
        rg.data.DataLoader(Stream(), shuffle=True)


def test_subset_concat_random_split():
    a = rg.data.TensorDataset(rg.arange(3))
    b = rg.data.TensorDataset(rg.arange(3, 10))
    c = a + b
    assert isinstance(c, rg.data.ConcatDataset) and len(c) == 10
    assert [c[i][0].item() for i in range(10)] == list(range(10))
    assert c[-1][0].item() == 9
    with pytest.raises(IndexError):
        c[10]
    full = rg.data.TensorDataset(rg.arange(10))
    p1 = rg.data.random_split(full, [0.5, 0.3, 0.2], generator=rg.Generator().manual_seed(1))
    p2 = rg.data.random_split(full, [5, 3, 2], generator=rg.Generator().manual_seed(1))
    assert [len(s) for s in p1] == [5, 3, 2]
    assert [s.indices for s in p1] == [s.indices for s in p2]
    allidx = sorted(i for s in p1 for i in s.indices)
    assert allidx == list(range(10))
    odd = rg.data.random_split(rg.data.TensorDataset(rg.arange(11)), [0.5, 0.5])
    assert sorted(len(s) for s in odd) == [5, 6]
    with pytest.raises(ValueError, match="Sum of input lengths"):
        rg.data.random_split(full, [3, 3])
    loader = rg.data.DataLoader(p1[0], batch_size=5)
    assert sorted(next(iter(loader))[0].tolist()) == sorted(p1[0].indices)


def test_samplers_match_torch_semantics(torch):
    ds = list(range(10))
    assert list(rg.data.SequentialSampler(ds)) == list(torch.utils.data.SequentialSampler(ds))
    rs = rg.data.RandomSampler(ds, generator=rg.Generator().manual_seed(0))
    assert sorted(rs) == ds and len(rs) == 10
    rs = rg.data.RandomSampler(ds, replacement=True, num_samples=25)
    got = list(rs)
    assert len(got) == 25 == len(rs) and all(0 <= i < 10 for i in got)
    rs = rg.data.RandomSampler(ds, num_samples=15)  # without replacement, > len: two permutations
    got = list(rs)
    assert len(got) == 15 and sorted(got[:10]) == ds
    with pytest.raises(ValueError):
        rg.data.RandomSampler(ds, num_samples=0)
    sr = rg.data.SubsetRandomSampler([2, 4, 6], generator=rg.Generator().manual_seed(0))
    assert sorted(sr) == [2, 4, 6]
    w = rg.data.WeightedRandomSampler(
        [0.0, 0.0, 1.0, 3.0], 2000, generator=rg.Generator().manual_seed(0)
    )
    counts = np.bincount(list(w), minlength=4)
    assert counts[0] == counts[1] == 0 and 0.65 < counts[3] / 2000 < 0.85
    nr = list(rg.data.WeightedRandomSampler([1.0, 1.0, 1.0], 3, replacement=False))
    assert sorted(nr) == [0, 1, 2]
    for bs in (1, 3, 4):
        for drop in (False, True):
            assert list(rg.data.BatchSampler(range(10), bs, drop)) == list(
                torch.utils.data.BatchSampler(range(10), bs, drop)
            )
            assert len(rg.data.BatchSampler(range(10), bs, drop)) == len(
                torch.utils.data.BatchSampler(range(10), bs, drop)
            )


@pytest.mark.parametrize(
    "n,replicas,drop", [(10, 3, False), (10, 3, True), (2, 4, False), (12, 4, False), (13, 4, True)]
)
def test_distributed_sampler_partition_like_torch(torch, n, replicas, drop):
    ds = list(range(n))
    for rank in range(replicas):
        ours = rg.data.DistributedSampler(
            ds, num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop
        )
        theirs = torch.utils.data.DistributedSampler(
            ds, num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop
        )
        assert list(ours) == list(theirs) and len(ours) == len(theirs)
    # shuffled: ranks partition one common permutation; set_epoch changes it
    parts = [
        list(rg.data.DistributedSampler(ds, num_replicas=replicas, rank=r, seed=5))
        for r in range(replicas)
    ]
    assert len({len(p) for p in parts}) == 1
    flat = [i for p in parts for i in p]
    if not drop:
        assert set(flat) == set(ds)
    s = rg.data.DistributedSampler(list(range(100)), num_replicas=2, rank=0)
    e0 = list(s)
    assert list(s) == e0
    s.set_epoch(1)
    assert list(s) != e0


def test_distributed_sampler_defaults_and_errors():
    s = rg.data.DistributedSampler(list(range(5)))
    assert s.num_replicas == 1 and s.rank == 0 and sorted(s) == list(range(5))
    with pytest.raises(ValueError, match="Invalid rank 3"):
        rg.data.DistributedSampler(list(range(5)), num_replicas=2, rank=3)
    dl = rg.data.DataLoader(
        rg.data.TensorDataset(rg.arange(8)),
        batch_size=2,
        sampler=rg.data.DistributedSampler(list(range(8)), num_replicas=2, rank=1, shuffle=False),
    )
    assert [b[0].tolist() for b in dl] == [[1, 3], [5, 7]]


# --- transforms -----------------------------------------------------------------------


def test_to_tensor_and_normalize_match_reference(torch):
    img = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    t = T.ToTensor()(img)
    assert t.shape == (1, 28, 28) and t.dtype == rg.float32
    np.testing.assert_allclose(t.numpy()[0], img / 255.0, rtol=1e-6)
    hwc = np.random.default_rng(1).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    assert T.ToTensor()(hwc).shape == (3, 4, 5)
    batch = rg.tensor(np.random.default_rng(2).integers(0, 256, (6, 1, 8, 8)).astype(np.uint8))
    f = T.Compose([T.ConvertImageDtype(rg.float32), T.Normalize((0.1307,), (0.3081,))])
    out = f(batch)
    assert out.dtype == rg.float32 and out.shape == (6, 1, 8, 8)
    ref = (torch.tensor(batch.numpy()).float() / 255 - 0.1307) / 0.3081
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    rgb = rg.rand(2, 3, 4, 4)
    n = T.Normalize([0.1, 0.2, 0.3], [0.5, 0.6, 0.7])(rgb)
    np.testing.assert_allclose(
        n.numpy(),
        (rgb.numpy() - np.array([0.1, 0.2, 0.3], np.float32)[:, None, None])
        / np.array([0.5, 0.6, 0.7], np.float32)[:, None, None],
        rtol=1e-6,
    )


def test_random_crop_and_shift_batch_vectorised():
    x = rg.arange(4 * 2 * 6 * 6, dtype=rg.float32).reshape(4, 2, 6, 6) + 1
    rg.manual_seed(0)
    y = T.RandomShift(2)(x)
    assert y.shape == x.shape and y.dtype == rg.float32
    xs, ys = x.numpy(), y.numpy()
    shifts = set()
    for n in range(4):
        # find the shift that explains the output (zeros fill the border)
        found = None
        for di in range(-2, 3):
            for dj in range(-2, 3):
                ref = np.zeros_like(xs[n])
                src = xs[n][:, max(0, di) : 6 + min(0, di), max(0, dj) : 6 + min(0, dj)]
                ref[:, max(0, -di) : 6 + min(0, -di), max(0, -dj) : 6 + min(0, -dj)] = src
                if np.array_equal(ref, ys[n]):
                    found = (di, dj)
        assert found is not None, n
        shifts.add(found)
    assert len(shifts) > 1  # each image gets its own shift
    rg.manual_seed(0)
    np.testing.assert_array_equal(T.RandomShift(2)(x).numpy(), ys)  # seeded from the rg RNG
    c = T.RandomCrop(4, padding=1, generator=rg.Generator().manual_seed(1))(x)
    assert c.shape == (4, 2, 4, 4)
    single = T.RandomCrop(3)(x[0])
    assert single.shape == (2, 3, 3)
    with pytest.raises(ValueError, match="larger than the input"):
        T.RandomCrop(10)(x)


def test_random_horizontal_flip():
    x = rg.arange(8 * 4, dtype=rg.float32).reshape(8, 1, 1, 4)
    y = T.RandomHorizontalFlip(p=1.0)(x)
    np.testing.assert_array_equal(y.numpy(), x.numpy()[..., ::-1])
    assert T.RandomHorizontalFlip(p=0.0)(x).tolist() == x.tolist()


def test_subset_of_tensor_dataset_fast_path():
    x = rg.arange(20.0).reshape(10, 2)
    ds = rg.data.TensorDataset(x, rg.arange(10))
    sub = rg.data.Subset(ds, [9, 2, 5, 7])
    got = [b for b in rg.data.DataLoader(sub, batch_size=3)]
    assert [b[1].tolist() for b in got] == [[9, 2, 5], [7]]
    np.testing.assert_array_equal(got[0][0].numpy(), x.numpy()[[9, 2, 5]])
    assert got[0][0].dtype == rg.float32

"""rg.save / rg.load: safetensors round trips, torch interop, corruption, atomicity, safety."""

from __future__ import annotations

import glob
import io
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import retrograd as rg


def _eq(a, b):
    if isinstance(a, rg.Tensor):
        assert isinstance(b, rg.Tensor) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            _eq(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _eq(x, y)
    else:
        assert type(a) is type(b) and (a == b or (a != a and b != b))


def test_nested_round_trip(tmp_path):
    obj = {
        "model": {"fc.weight": rg.randn(3, 4), "fc.bias": rg.zeros(3, dtype=rg.float64)},
        "optim": {
            "state": {0: {"step": rg.tensor(5.0), "exp_avg": rg.ones(3, 4)}, 1: {}},
            "param_groups": [
                {
                    "lr": 0.1,
                    "betas": (0.9, 0.999),
                    "params": [0, 1],
                    "foreach": None,
                    "amsgrad": False,
                }
            ],
        },
        "epoch": 7,
        "loss": float("nan"),
        "name": "run-1",
        "tags": ["a", "b"],
        "none": None,
        "arr": np.arange(6, dtype=np.int32).reshape(2, 3),
        "scalar": np.float32(2.5),
        "ints": rg.arange(5),
        "mask": rg.tensor([True, False]),
        "empty": rg.zeros(0, 3),
        "0d": rg.tensor(3.0),
        "nested": [(1, 2.0), {"__weird": 1, (1, 2): "tuple-key"}],
        "noncontig": rg.tensor(np.arange(12, dtype=np.float32).reshape(3, 4).T),
    }
    p = tmp_path / "ck.safetensors"
    rg.save(obj, p)
    back = rg.load(p)
    _eq(obj, back)
    assert back["optim"]["state"][0]["step"].shape == ()
    assert not back["model"]["fc.weight"].requires_grad
    buf = io.BytesIO()
    rg.save(obj, buf)
    buf.seek(0)
    _eq(obj, rg.load(buf, map_location="cpu"))


def test_parameter_and_rng_state_round_trip(tmp_path):
    p = tmp_path / "x.safetensors"
    w = rg.nn.Parameter(rg.randn(2))
    rg.manual_seed(123)
    rg.rand(3)
    rg.save({"w": w, "rng": rg.get_rng_state()}, p)
    expected = rg.rand(4)
    ck = rg.load(p)
    assert isinstance(ck["w"], rg.nn.Parameter) and ck["w"].requires_grad
    rg.set_rng_state(ck["rng"])
    np.testing.assert_array_equal(rg.rand(4).numpy(), expected.numpy())


def test_unsupported_objects_rejected(tmp_path):
    with pytest.raises(TypeError, match="set"):
        rg.save({"a": {1, 2}}, tmp_path / "a")
    with pytest.raises(TypeError):
        rg.save({"a": np.array(["x"], dtype=object)}, tmp_path / "b")
    assert not os.listdir(tmp_path)


def test_flat_state_dict_read_by_safetensors_torch(torch, tmp_path):
    from safetensors.torch import load_file

    sd = {
        "0.weight": rg.randn(4, 3),
        "0.bias": rg.randn(4),
        "bn.num_batches_tracked": rg.tensor(3),
        "half": rg.randn(2).half(),
    }
    p = tmp_path / "m.safetensors"
    rg.save(sd, p)
    t = load_file(str(p))
    assert list(t) == sorted(sd) or set(t) == set(sd)
    for k, v in sd.items():
        assert str(t[k].dtype).split(".")[-1] == str(v.dtype).split(".")[-1]
        np.testing.assert_array_equal(t[k].numpy(), v.numpy())


def test_torch_save_file_loads_into_rg_module(torch, tmp_path):
    from safetensors.torch import save_file

    tm = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    p = tmp_path / "t.safetensors"
    save_file(tm.state_dict(), str(p))
    sd = rg.load(p)
    assert set(sd) == set(tm.state_dict())
    for k, v in tm.state_dict().items():
        assert sd[k].dtype == rg.float32
        np.testing.assert_array_equal(sd[k].numpy(), v.numpy())

    class M(rg.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = rg.nn.Parameter(rg.zeros(4, 3))
            self.b = rg.nn.Parameter(rg.zeros(4))

    m = M()
    m.load_state_dict({"w": sd["0.weight"], "b": sd["0.bias"]})
    np.testing.assert_array_equal(m.w.detach().numpy(), tm[0].weight.detach().numpy())


def test_T73_truncated_or_corrupted(tmp_path):
    p = tmp_path / "c.safetensors"
    rg.save({"w": rg.randn(100), "meta": {"step": 3}}, p)
    raw = p.read_bytes()
    p.write_bytes(raw[:-1])
    with pytest.raises(RuntimeError, match=r"c\.safetensors.*corrupt or truncated"):
        rg.load(p)
    flipped = bytearray(raw)
    flipped[-50] ^= 0xFF  # inside the tensor data: caught by the checksum
    p.write_bytes(bytes(flipped))
    with pytest.raises(RuntimeError, match="corrupt or truncated.*checksum"):
        rg.load(p)
    hdr = bytearray(raw)
    hdr[20] ^= 0xFF  # inside the JSON header
    p.write_bytes(bytes(hdr))
    with pytest.raises(RuntimeError, match="corrupt or truncated"):
        rg.load(p)
    p.write_bytes(raw[:5])
    with pytest.raises(RuntimeError, match="corrupt or truncated"):
        rg.load(p)
    p.write_bytes(b"")
    with pytest.raises(RuntimeError, match="corrupt or truncated"):
        rg.load(p)
    with pytest.raises(FileNotFoundError):
        rg.load(tmp_path / "missing.safetensors")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > " + os.environ.get("EVIL_MARK", "/tmp/rg_evil_mark"),))


def test_T75_pickle_never_executed(tmp_path, monkeypatch):
    mark = tmp_path / "mark"
    monkeypatch.setenv("EVIL_MARK", str(mark))
    p = tmp_path / "evil.pt"
    p.write_bytes(pickle.dumps(_Evil()))
    for wo in (True, False):
        with pytest.raises(RuntimeError, match="never unpickles"):
            rg.load(p, weights_only=wo)
    assert not mark.exists()
    import zipfile

    z = tmp_path / "evil_zip.pt"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(_Evil()))
    with pytest.raises(RuntimeError, match="never unpickles"):
        rg.load(z)
    assert not mark.exists()


def test_T74_writer_fails_halfway_previous_intact(tmp_path, monkeypatch):
    import safetensors.numpy as stn

    p = tmp_path / "ck.safetensors"
    rg.save({"v": rg.ones(3)}, p)
    real = stn.save_file

    def broken(tensors, filename, metadata=None):
        real(tensors, filename, metadata)
        with open(filename, "r+b") as f:
            f.truncate(os.path.getsize(filename) // 2)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(stn, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        rg.save({"v": rg.zeros(1000)}, p)
    monkeypatch.setattr(stn, "save_file", real)
    assert rg.load(p)["v"].tolist() == [1.0, 1.0, 1.0]
    assert os.listdir(tmp_path) == ["ck.safetensors"]  # temp file removed
    # stale temp files from a killed run do not break later saves
    (tmp_path / ".ck.safetensors.abc123.tmp").write_bytes(b"partial")
    (tmp_path / "ck.safetensors.tmp").write_bytes(b"partial")
    rg.save({"v": rg.full((2,), 5.0)}, p)
    assert rg.load(p)["v"].tolist() == [5.0, 5.0]


@pytest.mark.slow
def test_T74_sigkill_during_large_save_leaves_previous_checkpoint(tmp_path):
    p = tmp_path / "big.safetensors"
    rg.save({"step": 1, "w": rg.ones(10)}, p)
    script = textwrap.dedent(f"""
        import numpy as np, retrograd as rg
        big = {{f"t{{i}}": rg.tensor(np.full((25_000_000,), i, np.float32)) for i in range(2)}}
        print("ready", flush=True)
        rg.save(big, {str(p)!r})
        print("done", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.time() + 30
    pattern = str(tmp_path / ".big.safetensors.*.tmp")
    while not glob.glob(pattern) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert glob.glob(pattern), "the kill should have hit while the temp file was being written"
    ck = rg.load(p)  # the previous checkpoint is intact
    assert ck["step"] == 1 and ck["w"].tolist() == [1.0] * 10
    rg.save({"step": 2}, p)  # the stale temp file does not get in the way
    assert rg.load(p)["step"] == 2


def test_T72_full_checkpoint_round_trip(tmp_path):
    """Model + optimizer + step + RNG state: the next losses equal those of an unbroken run."""

    def make():
        rg.manual_seed(0)
        w = rg.nn.Parameter(rg.randn(5, 3) * 0.5)
        b = rg.nn.Parameter(rg.zeros(3))
        return [w, b], rg.optim.Adam([w, b], lr=0.05)

    def train_step(params, opt):
        w, b = params
        x = rg.randn(8, 5)  # data drawn from the global RNG: needs the RNG state restored
        y = rg.randn(8, 3)
        loss = (((x @ w + b) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    params, opt = make()
    ref = [train_step(params, opt) for _ in range(8)]
    params, opt = make()
    first = [train_step(params, opt) for _ in range(4)]
    p = tmp_path / "full.safetensors"
    rg.save(
        {
            "w": params[0].detach(),
            "b": params[1].detach(),
            "optim": opt.state_dict(),
            "step": 4,
            "rng": rg.get_rng_state(),
        },
        p,
    )
    rg.manual_seed(999)  # disturb everything
    ck = rg.load(p)
    params2 = [rg.nn.Parameter(ck["w"]), rg.nn.Parameter(ck["b"])]
    opt2 = rg.optim.Adam(params2, lr=0.05)
    opt2.load_state_dict(ck["optim"])
    rg.set_rng_state(ck["rng"])
    assert ck["step"] == 4
    rest = [train_step(params2, opt2) for _ in range(4)]
    assert first + rest == ref


def test_T76_checkpoint_into_mismatched_module(tmp_path):
    class M(rg.nn.Module):
        def __init__(self, n):
            super().__init__()
            self.w = rg.nn.Parameter(rg.zeros(n, 3))
            self.b = rg.nn.Parameter(rg.zeros(n))

    p = tmp_path / "m.safetensors"
    sd = M(2).state_dict()
    sd["extra"] = rg.zeros(1)
    rg.save(sd, p)
    m = M(4)
    with pytest.raises(RuntimeError) as ei:
        m.load_state_dict(rg.load(p))
    msg = str(ei.value)
    assert "extra" in msg and "w" in msg and "b" in msg and "(2, 3)" in msg and "(4, 3)" in msg
    ok = M(2)
    res = ok.load_state_dict(rg.load(p), strict=False)
    assert res.unexpected_keys == ["extra"] and res.missing_keys == []


def test_bfloat16_safetensors_load_as_float32(torch, tmp_path):
    from safetensors.torch import save_file

    t = torch.randn(3, 4).to(torch.bfloat16)
    p = tmp_path / "bf.safetensors"
    save_file({"w": t, "b": torch.ones(2)}, str(p))
    sd = rg.load(p)
    assert sd["w"].dtype == rg.float32 and sd["w"].shape == (3, 4)
    np.testing.assert_array_equal(sd["w"].numpy(), t.float().numpy())
    assert sd["b"].tolist() == [1.0, 1.0]

"""The training loop: presets run and write their run dir, resume is bit-identical, signals save a
checkpoint, runs are deterministic, the report is complete, non-finite losses stop cleanly."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from retrograd.train import (
    NonFiniteLossError,
    Trainer,
    apply_set,
    get_preset,
    load_run,
    preset_names,
    read_metrics,
)
from retrograd.train.checkpoint import CheckpointError, read_checkpoint
from retrograd.train.config import ConfigError, parse_value
from retrograd.train.schedule import lr_lambda

ROOT = Path(__file__).resolve().parent.parent

#: Per-preset overrides that keep a smoke run short (fewer validation images / eval batches).
SMOKE = {
    "moons-mlp": [],
    "mnist-mlp": ["data.n_val=200"],
    "mnist-cnn": ["data.n_val=200"],
    "mnist-resnet": ["data.n_val=100", "train.eval_batch_size=50"],
    "shakespeare-rnn": ["train.eval_iters=1", "train.sample_tokens=20"],
    "shakespeare-gpt": ["train.eval_iters=1", "train.sample_tokens=20"],
}


def config(preset: str, *sets: str) -> dict:
    return apply_set(get_preset(preset), list(sets))


def run(cfg: dict, path: Path, **kw) -> dict:
    return Trainer(cfg, path, progress=False, quiet=True, **kw).fit()


def losses(path: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(path) if r["type"] == "train"]


def params(model) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_presets_cover_the_brief():
    assert set(preset_names()) == set(SMOKE)
    gpt = get_preset("shakespeare-gpt")
    assert (gpt["model"]["n_layer"], gpt["model"]["n_head"], gpt["model"]["n_embd"]) == (4, 4, 128)
    assert gpt["data"] == {"name": "shakespeare", "block_size": 64, "batch_size": 12}
    assert gpt["optim"]["lr"] == 1e-3 and gpt["sched"]["warmup"] == 100
    assert gpt["sched"]["min_lr"] == 1e-4 and gpt["train"]["steps"] == 2000


@pytest.mark.parametrize("preset", list(SMOKE))
def test_every_preset_trains_a_few_steps_and_writes_its_run_dir(preset, tmp_path):
    cfg = config(preset, "train.steps=2", "train.epochs=null", "train.eval_every=1",
                 "train.ckpt_every=1", *SMOKE[preset])
    out = run(cfg, tmp_path / "run")
    d = tmp_path / "run"
    assert out["step"] == 2 and not out["interrupted"]
    for name in ("config.json", "metrics.jsonl", "checkpoint.safetensors", "model.safetensors",
                 "final.json", "report.html", "loss.png", "lr.png", "grad_norms.png"):
        assert (d / name).is_file(), name
    assert (d / "accuracy.png").is_file() == (cfg["task"] == "classification")
    assert len(losses(d)) == 2 and all(np.isfinite(losses(d)))
    assert json.loads((d / "config.json").read_text())["preset"] == preset
    assert read_checkpoint(d / "checkpoint.safetensors")["step"] == 2
    if cfg["task"] == "lm":
        assert len(out["sample"]) >= 20
    else:
        assert 0.0 <= out["val_acc"] <= 1.0


def _resume_case(tmp_path: Path, cfg: dict, stop: int):
    full, part = tmp_path / "full", tmp_path / "part"
    run(cfg, full)
    first = run(cfg, part, max_steps=stop)
    assert first["interrupted"] and first["step"] == stop
    assert len(losses(part)) == stop
    # an interrupted run may have logged past its checkpoint: those lines must be dropped
    with open(part / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"type": "train", "step": stop + 1, "loss": 123.0}) + "\n")
    Trainer(cfg, part, resume=True, progress=False, quiet=True).fit()
    return full, part


def test_T72_resume_is_bit_identical_classifier(tmp_path):
    # dropout (RNG), BatchNorm (buffers), shifts (augmentation), onecycle schedule, epochs
    cfg = config("mnist-cnn", "model.channels=[4, 8]", "model.hidden=16",
                 "model.batch_norm=true", "model.dropout=0.3", "data.n_train=256",
                 "data.n_val=64", "data.batch_size=32", "train.epochs=2",
                 "train.eval_every=5", "train.ckpt_every=3")
    full, part = _resume_case(tmp_path, cfg, stop=7)
    assert len(losses(full)) == 16
    assert losses(part) == losses(full)  # exact float equality, every step
    a = load_run(full).model.state_dict()
    b = load_run(part).model.state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=k)


def test_T72_resume_is_bit_identical_gpt_with_dropout_and_warmup(tmp_path):
    cfg = config("shakespeare-gpt", "model.n_layer=1", "model.n_embd=16", "model.n_head=2",
                 "model.dropout=0.1", "data.block_size=16", "data.batch_size=4",
                 "train.steps=10", "sched.warmup=4", "sched.decay_steps=10",
                 "train.eval_every=4", "train.eval_iters=1", "train.sample_tokens=5")
    full, part = _resume_case(tmp_path, cfg, stop=6)
    assert losses(part) == losses(full)
    lr_full = [r["lr"] for r in read_metrics(full) if r["type"] == "train"]
    lr_part = [r["lr"] for r in read_metrics(part) if r["type"] == "train"]
    assert lr_full == lr_part


def test_T83_same_seed_same_losses_and_params_seed_recorded(tmp_path):
    cfg = config("mnist-mlp", "model.hidden=[32]", "data.n_train=256", "data.n_val=64",
                 "train.steps=8", "train.epochs=null", "seed=7")
    run(cfg, tmp_path / "a")
    run(cfg, tmp_path / "b")
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    pa, pb = params(load_run(tmp_path / "a").model), params(load_run(tmp_path / "b").model)
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])
    meta = json.loads((tmp_path / "a" / "config.json").read_text())
    assert meta["seed"] == 7 and meta["meta"]["seed"] == 7
    run(apply_set(cfg, ["seed=8"]), tmp_path / "c")
    assert losses(tmp_path / "c") != losses(tmp_path / "a")


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs: list[str] = []
        self.headings: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])
        self._in_h2 = tag == "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.headings.append(data)
            self._in_h2 = False


@pytest.mark.parametrize("preset", ["moons-mlp", "shakespeare-gpt"])
def test_report_html_parses_and_embeds_every_plot(preset, tmp_path):
    cfg = config(preset, "train.steps=12", "train.eval_every=4", "train.grad_norm_every=2",
                 *SMOKE[preset])
    if preset == "shakespeare-gpt":
        cfg = apply_set(cfg, ["model.n_layer=1", "model.n_embd=16", "data.block_size=16"])
    run(cfg, tmp_path)
    page = (tmp_path / "report.html").read_text()
    parser = _Images()
    parser.feed(page)
    parser.close()
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(parser.srcs) == len(pngs) == (3 if preset == "shakespeare-gpt" else 4)
    for src in parser.srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for name in pngs:
        assert name in page  # each plot is captioned with its file name
    assert {"Final metrics", "Timings", "Plots", "Configuration"} <= set(parser.headings)
    extra = "Sample" if preset == "shakespeare-gpt" else "Confusion matrix (validation)"
    assert extra in parser.headings


def test_T43_non_finite_loss_stops_with_the_step_and_keeps_params(tmp_path):
    tr = Trainer(config("moons-mlp", "train.steps=5"), tmp_path, progress=False, quiet=True)
    tr.data.x_train[:] = np.nan
    before = params(tr.model)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 0"):
        tr.fit()
    after = params(tr.model)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


def test_resume_rejects_a_checkpoint_of_another_model(tmp_path):
    run(config("moons-mlp", "train.steps=2"), tmp_path)
    cfg = config("mnist-cnn", "data.n_val=10")
    with pytest.raises(CheckpointError, match="holds a MLP model.*builds a LeNet"):
        Trainer(cfg, tmp_path, resume=True, progress=False, quiet=True)


def test_truncated_checkpoint_is_reported(tmp_path):
    run(config("moons-mlp", "train.steps=2"), tmp_path)
    path = tmp_path / "checkpoint.safetensors"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_run(tmp_path)


def test_unknown_set_key_names_it_and_the_valid_keys():
    with pytest.raises(ConfigError) as e:
        config("mnist-cnn", "model.n_layer=3")
    msg = str(e.value)
    assert "'model.n_layer'" in msg and "model.channels" in msg and "optim.lr" in msg
    assert parse_value("[1, 2]") == [1, 2] and parse_value("true") is True
    assert parse_value("relu") == "relu" and parse_value("1e-3") == 1e-3
    # switching the model resets its section; the new model's keys become valid
    cfg = config("mnist-cnn", "model.name=MLP", "model.hidden=[8]")
    assert cfg["model"] == {"name": "MLP", "hidden": [8]}


def test_missing_mnist_names_the_files_it_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte") as e:
        Trainer(config("mnist-cnn", f"data.root={json.dumps(str(tmp_path))}"), tmp_path / "r",
                progress=False, quiet=True)
    assert "train-labels-idx1-ubyte" in str(e.value) and str(tmp_path) in str(e.value)


def test_schedules():
    nano = lr_lambda({"name": "warmup_cosine", "warmup": 100, "min_lr": 1e-4,
                      "decay_steps": 2000}, 1e-3, 2000)

    def nanogpt_lr(it):  # nanoGPT's get_lr, written out as a reference
        if it < 100:
            return 1e-3 * (it + 1) / 101
        if it > 2000:
            return 1e-4
        ratio = (it - 100) / 1900
        return 1e-4 + 0.5 * (1.0 + np.cos(np.pi * ratio)) * (1e-3 - 1e-4)

    for it in (0, 50, 99, 100, 500, 1999, 2000, 2500):
        assert 1e-3 * nano(it) == pytest.approx(nanogpt_lr(it), rel=1e-12)
    one = lr_lambda({"name": "onecycle", "pct_start": 0.25}, 1.0, 100)
    vals = [one(s) for s in range(100)]
    assert vals[0] == pytest.approx(1 / 25)
    assert max(vals) == pytest.approx(1.0)
    assert vals[-1] == pytest.approx(1 / 25e4)
    assert lr_lambda({"name": "constant"}, 1.0, 10)(5) == 1.0


def _wait_for_steps(path: Path, n: int, proc, timeout: float = 120.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"trainer exited early: {proc.communicate()}")
        f = path / "metrics.jsonl"
        if f.exists() and f.read_text().count('"train"') >= n:
            return
        time.sleep(0.1)
    raise AssertionError("trainer made no progress")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_a_loadable_checkpoint_and_exits_cleanly(sig, tmp_path):
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "retrograd.cli", "train", "moons-mlp", "--steps", "1000000",
         "--out", str(run_dir), "--no-progress"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_for_steps(run_dir, 5, proc)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + int(sig), err
    assert "Traceback" not in err
    assert "checkpoint saved" in out and "--resume" in out
    ck = read_checkpoint(run_dir / "checkpoint.safetensors")
    assert ck["step"] == len(losses(run_dir)) >= 5
    tr = load_run(run_dir)
    assert tr.step == ck["step"]


def test_progress_bar_and_plain_lines():
    import io

    from retrograd.train.progress import Progress, fmt_duration

    buf = io.StringIO()
    bar = Progress(total=10, start=0, bar=True, log_every=5, unit="tok", stream=buf)
    for s in range(1, 11):
        bar.update(s, loss=1.0 / s, lr=1e-3, samples=100, dt=0.01)
    bar.write("eval line")
    bar.close()
    text = buf.getvalue()
    assert "10/10" in text and "loss=0.1000" in text and "tok/s" in text and "eval line" in text
    buf = io.StringIO()
    plain = Progress(total=10, start=0, bar=False, log_every=5, unit="samples", stream=buf)
    for s in range(1, 11):
        plain.update(s, loss=0.5, lr=2e-3, samples=64, dt=0.1)
    lines = buf.getvalue().splitlines()
    assert [ln.split("|")[0].strip() for ln in lines] == ["step      5/10", "step     10/10"]
    assert "\r" not in buf.getvalue() and "640 samples/s" in lines[0]
    assert fmt_duration(3723) == "1h02m03s" and fmt_duration(75) == "1m15s"

"""The CLI glue in retrograd.diagnostics.cli_hooks (train --monitor, doctor, lr-find, attribute)."""

from __future__ import annotations

import json

import pytest

train = pytest.importorskip("retrograd.train")

from retrograd.diagnostics import cli_hooks  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("run") / "moons"
    cfg = train.get_preset("moons-mlp")
    cfg["train"]["steps"] = 40
    cfg["train"]["epochs"] = None
    cb = cli_hooks.make_monitor(cfg, every=5)
    train.Trainer(cfg, d, progress=False, quiet=True, callbacks=[cb]).fit()
    return d


def test_train_monitor_writes_files(run_dir):
    for ext in ("json", "txt", "html", "png"):
        assert (run_dir / f"monitor.{ext}").is_file()
    h = json.loads((run_dir / "monitor.json").read_text())
    assert [k for k, _ in h["losses"]] == list(range(40))  # the first step is not missed
    assert [r["step"] for r in h["records"]][:3] == [0, 5, 10]
    assert h["records"][0]["layers"]  # step 0 has gradients and activations
    assert any(r["layers"][n]["update_ratio"] for r in h["records"] for n in h["layers"])
    assert "|grad|" in (run_dir / "monitor.txt").read_text()


def test_doctor_reads_history_and_probes(run_dir, capsys):
    assert cli_hooks.doctor(run_dir, []) == 0
    out = capsys.readouterr().out
    assert "monitor recorded during training" in out and "layer" in out
    assert cli_hooks.doctor(run_dir, ["--probe", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "probing 3 training steps" in out and "GradientMonitor" in out


def test_lr_find_cli(tmp_path, capsys):
    png = tmp_path / "lr.png"
    js = tmp_path / "lr.json"
    rc = cli_hooks.lr_find("moons-mlp", ["--num-iter", "40", "--out", str(png), "--json", str(js)])
    assert rc == 0
    assert png.is_file() and json.loads(js.read_text())["suggestion"] > 0
    assert "suggested lr" in capsys.readouterr().out


def test_attribute_cli_classifier(run_dir, tmp_path, capsys):
    out = tmp_path / "a.png"
    assert cli_hooks.attribute(run_dir, index=2, argv=["--out", str(out)]) == 0
    assert out.is_file()
    assert "example 2" in capsys.readouterr().out
    assert cli_hooks.attribute(run_dir, index=10**6) == 2
    assert cli_hooks.attribute(run_dir) == 2

"""The ``retrograd`` command: presets, train/eval/sample/demo, config files, errors, dispatch to
the diagnostics hooks, and plain (control-character free) logs when not on a terminal."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

import retrograd as rg
from retrograd.cli.main import main
from retrograd.train import preset_names, read_metrics

TINY_GPT = ["--set", "model.n_layer=1", "--set", "model.n_embd=16", "--set", "model.n_head=2",
            "--set", "data.block_size=16", "--set", "train.eval_iters=1",
            "--set", "train.sample_tokens=10"]


def test_presets_lists_one_line_each(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == preset_names()


def test_train_eval_and_plain_log_lines(tmp_path, capsys):
    d = tmp_path / "run"
    rc = main(["train", "moons-mlp", "--steps", "40", "--set", "train.log_every=10",
               "--eval-every", "20", "--lr", "0.02", "--batch-size", "32", "--seed", "3",
               "--out", str(d)])
    out = capsys.readouterr().out
    assert rc == 0
    # stdout is not a TTY under pytest: plain lines, no carriage returns or escape codes
    assert "\r" not in out and "\x1b" not in out
    step_lines = [ln for ln in out.splitlines() if ln.startswith("step ")]
    assert len(step_lines) == 4 and all("eta" in ln and "samples/s" in ln for ln in step_lines)
    assert "test accuracy" in out and "report:" in out
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["optim"]["lr"] == 0.02 and cfg["data"]["batch_size"] == 32 and cfg["seed"] == 3
    assert main(["eval", str(d)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "step 40" in out


def test_resume_via_cli_continues_and_matches(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["train", "moons-mlp", "--steps", "30", "--no-progress"]
    assert main(args + ["--out", str(a)]) == 0
    assert main(args + ["--out", str(b), "--max-steps", "12"]) == 0
    assert "resume with: retrograd train --resume" in capsys.readouterr().out
    assert main(["train", "--resume", str(b), "--no-progress"]) == 0

    def losses(p):
        return [r["loss"] for r in read_metrics(p) if r["type"] == "train"]

    assert losses(a) == losses(b) and len(losses(a)) == 30


def test_resume_from_a_run_of_another_model_says_so(tmp_path, capsys):
    d = tmp_path / "run"
    assert main(["train", "moons-mlp", "--steps", "2", "--out", str(d), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["train", "mnist-cnn", "--resume", str(d)]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "MLP" in err and "LeNet" in err
    assert "Traceback" not in err


def test_unknown_preset_lists_the_valid_ones(capsys):
    assert main(["train", "mnist-transformer"]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'mnist-transformer'" in err
    assert all(name in err for name in preset_names())


def test_set_with_an_unknown_key_names_it_and_the_valid_keys(capsys, tmp_path):
    assert main(["train", "mnist-cnn", "--set", "model.depth=3", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'model.depth'" in err and "model.channels" in err and "train.steps" in err


def test_data_folder_without_mnist_names_the_files(tmp_path, capsys):
    rc = main(["train", "mnist-cnn", "--set", f"data.root={json.dumps(str(tmp_path))}",
               "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "train-images-idx3-ubyte" in err and str(tmp_path) in err


def test_train_without_preset_or_config_explains(capsys):
    assert main(["train"]) == 2
    assert "PRESET" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_config_file(fmt, tmp_path, capsys):
    if fmt == "toml":
        text = ('preset = "moons-mlp"\nseed = 5\n[model]\nhidden = [8, 8]\n'
                '[train]\nsteps = 5\nepochs = 0\n')
    else:
        text = json.dumps({"task": "classification", "model": {"name": "MLP", "hidden": [8]},
                           "data": {"name": "moons", "batch_size": 16},
                           "train": {"steps": 5}})
    path = tmp_path / f"cfg.{fmt}"
    path.write_text(text)
    d = tmp_path / "run"
    assert main(["train", "--config", str(path), "--out", str(d), "--no-progress"]) == 0
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["train"]["steps"] == 5
    assert cfg["model"]["hidden"] == ([8, 8] if fmt == "toml" else [8])
    assert len(read_metrics(d)) > 0


def test_sample_prints_prompt_plus_tokens_and_is_seeded(tmp_path, capsys):
    d = tmp_path / "gpt"
    assert main(["train", "shakespeare-gpt", "--steps", "2", "--out", str(d), "--no-progress",
                 *TINY_GPT]) == 0
    capsys.readouterr()
    args = ["sample", str(d), "--prompt", "ROMEO:", "--tokens", "40", "--top-k", "5"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("ROMEO:") and len(first.rstrip("\n")) >= 46 - 1
    assert main(args) == 0
    assert capsys.readouterr().out == first  # same seed, same text
    assert main(["sample", str(d), "--prompt", "ROMEO\u00e9"]) == 2
    assert "not in the vocabulary" in capsys.readouterr().err


def test_sample_on_a_classifier_run_is_an_error(tmp_path, capsys):
    d = tmp_path / "run"
    assert main(["train", "moons-mlp", "--steps", "2", "--out", str(d), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["sample", str(d)]) == 2
    assert "needs a text model" in capsys.readouterr().err


def test_demo_runs_and_reports(tmp_path, capsys, monkeypatch):
    from retrograd.cli import main as cli

    monkeypatch.setitem(cli.DEMO, "epochs", 0.02)
    d = tmp_path / "demo"
    assert main(["demo", "--out", str(d), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "confusion:" in out and str(d / "report.html") in out
    assert (d / "report.html").is_file()


@pytest.fixture
def fake_hooks(monkeypatch):
    calls = []
    mod = types.ModuleType("retrograd.diagnostics.cli_hooks")
    mod.doctor = lambda run_dir, argv: calls.append(("doctor", run_dir, argv)) or 0
    mod.lr_find = lambda preset, argv: calls.append(("lr_find", preset, argv)) or 0
    mod.attribute = lambda run_dir, prompt, index, argv: calls.append(
        ("attribute", run_dir, prompt, index)) or 0
    monkeypatch.setitem(sys.modules, "retrograd.diagnostics.cli_hooks", mod)
    monkeypatch.setattr(rg.diagnostics, "cli_hooks", mod, raising=False)
    return calls


def test_diagnostic_subcommands_dispatch_to_the_hooks(fake_hooks):
    assert main(["doctor", "runs/x"]) == 0
    assert main(["lr-find", "mnist-cnn"]) == 0
    assert main(["attribute", "runs/x", "--index", "3"]) == 0
    assert main(["attribute", "runs/g", "--prompt", "ROMEO:"]) == 0
    assert fake_hooks == [("doctor", "runs/x", []), ("lr_find", "mnist-cnn", []),
                          ("attribute", "runs/x", None, 3), ("attribute", "runs/g", "ROMEO:", None)]


def test_diagnostic_subcommands_without_hooks_say_what_is_missing(monkeypatch, capsys):
    mod = types.ModuleType("retrograd.diagnostics.cli_hooks")  # present but empty
    monkeypatch.setitem(sys.modules, "retrograd.diagnostics.cli_hooks", mod)
    monkeypatch.setattr(rg.diagnostics, "cli_hooks", mod, raising=False)
    assert main(["doctor", "runs/x"]) == 2
    assert "not available" in capsys.readouterr().err


def test_console_script_is_declared():
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert 'retrograd = "retrograd.cli.main:main"' in text

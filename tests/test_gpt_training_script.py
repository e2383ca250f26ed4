"""Smoke tests of ``benchmarks/gpt_training.py`` (shakespeare-gpt in retrograd vs PyTorch) on a
tiny config, so the script that produced ``docs/gpt_vs_pytorch.md`` keeps working."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import gpt_training as gt
from retrograd.train.config import ConfigError

TINY = ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "data.block_size=16",
        "train.eval_every=2", "train.eval_iters=2", "train.sample_tokens=4"]


def test_preset_config_applies_overrides_and_rejects_unknown_keys():
    cfg = gt.preset_config(TINY, steps=3)
    assert (cfg["model"]["n_layer"], cfg["model"]["n_embd"], cfg["train"]["steps"]) == (1, 32, 3)
    assert cfg["preset"] == "shakespeare-gpt"
    with pytest.raises(ConfigError):
        gt.preset_config(["model.n_layerz=1"])


def test_torch_model_has_retrograd_parameter_names_and_forward(torch):
    import retrograd as rg

    cfg = gt.preset_config(TINY, steps=3)
    state, mcfg = gt.retrograd_initial_state(cfg)
    model = gt.build_torch_gpt(mcfg)
    tstate = model.state_dict()
    assert set(tstate) == set(state)
    assert all(tuple(tstate[k].shape) == state[k].shape for k in state)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    assert model.lm_head.weight is model.transformer.wte.weight  # tying survives loading

    rgm = rg.models.GPT(rg.models.GPTConfig(**{k: v for k, v in mcfg.items() if k != "name"}))
    rgm.load_state_dict({k: rg.tensor(v) for k, v in state.items()})
    x = np.random.default_rng(0).integers(0, mcfg["vocab_size"], (2, 16))
    logits_rg, loss_rg = rgm(rg.tensor(x), rg.tensor(x))
    logits_t, loss_t = model(torch.from_numpy(x), torch.from_numpy(x))
    np.testing.assert_allclose(logits_rg.detach().numpy(), logits_t.detach().numpy(),
                               rtol=1e-4, atol=1e-5)
    assert abs(loss_rg.item() - loss_t.item()) < 1e-5


def test_smooth_is_a_trailing_mean():
    np.testing.assert_allclose(gt.smooth([1.0, 3.0, 5.0, 7.0], 2), [1.0, 2.0, 4.0, 6.0])


def test_both_frameworks_three_steps_agree_end_to_end(tmp_path, torch):
    """main(): the real CLI run (subprocess) and the PyTorch loop, JSON and PNG written; with
    the same initial weights and batches the curves agree to float32 round-off."""
    out, png = tmp_path / "res.json", tmp_path / "plot.png"
    argv = ["--steps", "3", "--out", str(out), "--plot", str(png),
            "--rg-run-dir", str(tmp_path / "rg-run")]
    for s in TINY:
        argv += ["--set", s]
    threads = torch.get_num_threads()
    assert gt.main(argv) == 0
    res = json.loads(out.read_text())
    rg_r, th_r = res["retrograd"], res["torch"]
    assert rg_r["finished"] and rg_r["steps"] == th_r["steps"] == 3
    assert [s for s, _ in rg_r["val"]] == [s for s, _ in th_r["val"]] == [2, 3]
    np.testing.assert_allclose([v for _, v in rg_r["train"]], [v for _, v in th_r["train"]],
                               rtol=1e-4)
    assert res["summary"]["final_val_loss"]["abs_diff"] < 1e-3
    assert res["summary"]["within_0.05"] is True
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert torch.get_num_threads() == threads  # train_torch restores the thread count


def test_torch_init_rejects_unknown_choice(torch):
    cfg = gt.preset_config(TINY, steps=1)
    with pytest.raises(ValueError, match="init must be"):
        gt.train_torch(cfg, threads=1, init="numpy")

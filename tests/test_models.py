"""Reference models: shapes, nanoGPT parameter names/count/init, weight tying, generation,
and the GPT forward checked against a PyTorch re-implementation with the same weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

import retrograd as rg
from retrograd.models import GPT, MLP, CharRNN, GPTConfig, LeNet, ResNet
from retrograd.models.resnet import BasicBlock

BABY = dict(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=True)


def tiny_gpt(**kw) -> GPT:
    cfg = dict(block_size=16, vocab_size=11, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg))


def test_gpt_baby_parameter_count():
    model = GPT(GPTConfig(**BABY))
    # tied wte/lm_head counted once, wpe included
    assert sum(p.numel() for p in model.parameters()) == 809_856
    assert model.get_num_params() == 809_856 - 64 * 128


def test_gpt_parameter_names_match_nanogpt():
    names = list(tiny_gpt().state_dict())
    block = [
        "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
        "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
        "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
    ]
    expected = ["transformer.wte.weight", "transformer.wpe.weight"]
    for i in range(2):
        expected += [f"transformer.h.{i}.{b}" for b in block]
    expected += ["transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight"]
    assert names == expected


def test_gpt_no_bias_config_has_no_biases():
    names = list(tiny_gpt(bias=False).state_dict())
    assert not [n for n in names if n.endswith(".bias")]


def test_gpt_forward_shapes_and_loss_at_init_is_log_vocab():
    rg.manual_seed(0)
    model = GPT(GPTConfig(**BABY))
    idx = rg.randint(0, 65, (4, 64))
    targets = rg.randint(0, 65, (4, 64))
    logits, loss = model(idx, targets)
    assert logits.shape == (4, 64, 65)
    assert logits.dtype == rg.float32 and loss.dtype == rg.float32
    assert abs(loss.item() - math.log(65)) < 0.1
    # without targets only the last position is computed
    logits, loss = model(idx)
    assert logits.shape == (4, 1, 65) and loss is None


def test_gpt_rejects_sequence_longer_than_block():
    with pytest.raises(ValueError, match="block_size"):
        tiny_gpt()(rg.zeros(1, 17, dtype=rg.long))


def test_gpt_init_follows_nanogpt():
    rg.manual_seed(0)
    model = GPT(GPTConfig(**BABY))
    sd = model.state_dict()
    resid = np.concatenate([sd[f"transformer.h.{i}.{m}.c_proj.weight"].numpy().ravel()
                            for i in range(4) for m in ("attn", "mlp")])
    assert resid.std() == pytest.approx(0.02 / math.sqrt(8), rel=0.05)
    fc = sd["transformer.h.0.mlp.c_fc.weight"].numpy()
    assert fc.std() == pytest.approx(0.02, rel=0.05)
    assert np.all(sd["transformer.h.0.mlp.c_fc.bias"].numpy() == 0)
    assert sd["transformer.wpe.weight"].numpy().std() == pytest.approx(0.02, rel=0.05)


def test_gpt_weight_tying_shares_one_parameter_and_its_gradient():
    model = tiny_gpt()
    assert model.transformer.wte.weight is model.lm_head.weight
    names = [n for n, _ in model.named_parameters()]
    assert "lm_head.weight" not in names or "transformer.wte.weight" not in names
    _, loss = model(rg.randint(0, 11, (2, 8)), rg.randint(0, 11, (2, 8)))
    loss.backward()
    g = model.lm_head.weight.grad
    assert g is not None and g.shape == (11, 16)
    with rg.no_grad():
        model.lm_head.weight.mul_(0.0)
    assert float(model.transformer.wte.weight.abs().sum()) == 0.0


def test_gpt_generate_length_and_top_k_one_is_greedy():
    rg.manual_seed(1)
    model = tiny_gpt()
    out = model.generate(rg.zeros(2, 3, dtype=rg.long), 20)  # longer than block_size: cropped
    assert out.shape == (2, 23) and out.dtype == rg.int64
    a = model.generate(rg.zeros(1, 1, dtype=rg.long), 6, top_k=1)
    b = model.generate(rg.zeros(1, 1, dtype=rg.long), 6, temperature=0.0)
    assert a.tolist() == b.tolist()
    assert model.training  # generate restores the mode


def test_gpt_explicit_attention_path_matches_sdpa(monkeypatch):
    rg.manual_seed(3)
    fused = tiny_gpt()
    assert fused.transformer.h[0].attn.flash
    idx = rg.randint(0, 11, (2, 9))
    a, _ = fused(idx, idx)
    from retrograd.models import gpt as gpt_mod

    monkeypatch.delattr(gpt_mod.F, "scaled_dot_product_attention")
    rg.manual_seed(3)
    explicit = tiny_gpt()
    assert not explicit.transformer.h[0].attn.flash
    assert list(explicit.state_dict()) == list(fused.state_dict())  # mask buffer not saved
    b, _ = explicit(idx, idx)
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)


def _torch_gpt(torch, cfg: GPTConfig, sd: dict):
    """A small nanoGPT written with torch ops, reading our state dict (test oracle)."""
    nn = torch.nn
    F = torch.nn.functional
    W = {k: torch.from_numpy(v.numpy().copy()) for k, v in sd.items()}

    def ln(x, p):
        return F.layer_norm(x, (cfg.n_embd,), W[p + ".weight"], W[p + ".bias"], 1e-5)

    def lin(x, p, bias=True):
        return F.linear(x, W[p + ".weight"], W[p + ".bias"] if bias else None)

    def forward(idx, targets):
        B, T = idx.shape
        x = W["transformer.wte.weight"][idx] + W["transformer.wpe.weight"][:T]
        hs = cfg.n_embd // cfg.n_head
        for i in range(cfg.n_layer):
            p = f"transformer.h.{i}."
            q, k, v = lin(ln(x, p + "ln_1"), p + "attn.c_attn").split(cfg.n_embd, dim=2)
            q, k, v = (t.view(B, T, cfg.n_head, hs).transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
            att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), -math.inf)
            y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, cfg.n_embd)
            x = x + lin(y, p + "attn.c_proj")
            h = F.gelu(lin(ln(x, p + "ln_2"), p + "mlp.c_fc"))
            x = x + lin(h, p + "mlp.c_proj")
        logits = F.linear(ln(x, "transformer.ln_f"), W["lm_head.weight"])
        return logits, F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))

    del nn
    return forward


def test_gpt_matches_torch_reference(torch):
    rg.manual_seed(5)
    cfg = GPTConfig(block_size=16, vocab_size=13, n_layer=2, n_head=2, n_embd=16)
    model = GPT(cfg)
    # non-trivial LayerNorm/bias values so every parameter matters
    with rg.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "ln_" in name:
                p.add_(rg.randn(*p.shape) * 0.1)
    idx = np.random.default_rng(0).integers(0, 13, (3, 10))
    tgt = np.random.default_rng(1).integers(0, 13, (3, 10))
    logits, loss = model(rg.tensor(idx), rg.tensor(tgt))
    ref = _torch_gpt(torch, cfg, model.state_dict())
    t_logits, t_loss = ref(torch.from_numpy(idx), torch.from_numpy(tgt))
    np.testing.assert_allclose(logits.detach().numpy(), t_logits.numpy(), rtol=1e-4, atol=1e-5)
    assert loss.item() == pytest.approx(t_loss.item(), rel=1e-5)


def test_gpt_configure_optimizers_decays_matrices_only():
    model = tiny_gpt()
    opt = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-3)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_mlp_shapes_flattens_images_and_dropout():
    m = MLP(784, [32, 16], 10, activation="gelu", dropout=0.5)
    assert m(rg.randn(4, 1, 28, 28)).shape == (4, 10)
    assert sum(isinstance(x, rg.nn.Dropout) for x in m.modules()) == 2
    with pytest.raises(ValueError, match="unknown activation"):
        MLP(2, [4], 2, activation="swishy")


@pytest.mark.parametrize("batch_norm", [False, True])
def test_lenet_shapes(batch_norm):
    net = LeNet(batch_norm=batch_norm, dropout=0.1)
    out = net(rg.randn(3, 1, 28, 28))
    assert out.shape == (3, 10) and out.dtype == rg.float32
    assert any(isinstance(m, rg.nn.BatchNorm2d) for m in net.modules()) == batch_norm
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_resnet_shapes_shortcuts_and_backward():
    net = ResNet(widths=(8, 16, 32), blocks=(1, 2, 1))
    out = net(rg.randn(2, 1, 28, 28))
    assert out.shape == (2, 10)
    blocks = [m for m in net.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 4
    # the first block of stages 2 and 3 changes shape: 1x1 projection; the others: identity
    proj = [not isinstance(b.shortcut, rg.nn.Identity) for b in blocks]
    assert proj == [False, True, False, True]
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.eval()
    assert net(rg.randn(1, 1, 28, 28)).shape == (1, 10)
    assert BasicBlock(4, 8, stride=2)(rg.randn(1, 4, 14, 14)).shape == (1, 8, 7, 7)
    with pytest.raises(ValueError, match="blocks"):
        ResNet(widths=(8, 16), blocks=(1, 1, 1))


def test_charrnn_shapes_loss_and_generate():
    rg.manual_seed(0)
    m = CharRNN(vocab_size=12, embed_dim=8, hidden_size=16, num_layers=2)
    idx, tgt = rg.randint(0, 12, (3, 7)), rg.randint(0, 12, (3, 7))
    logits, loss = m(idx, tgt)
    assert logits.shape == (3, 7, 12)
    assert abs(loss.item() - math.log(12)) < 0.3
    loss.backward()
    assert all(p.grad is not None for p in m.parameters())
    out = m.generate(rg.zeros(2, 4, dtype=rg.long), 9, temperature=0.8, top_k=5)
    assert out.shape == (2, 13)

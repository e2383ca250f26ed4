"""Module and container API against PyTorch: parameter order, state dicts, strict loading
errors, hooks, reprs, modes, zero_grad, apply, dtype conversion."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import retrograd as rg


def build(nn):
    """The same nested architecture in either library."""

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(8)
            self.fc = nn.Linear(8, 8)
            self.drop = nn.Dropout(0.1)

        def forward(self, x):
            return x + self.drop(self.fc(self.norm(x)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 8, padding_idx=0)
            self.blocks = nn.ModuleList([Block(), Block()])
            self.heads = nn.ModuleDict(
                {
                    "cls": nn.Linear(8, 3),
                    "reg": nn.Sequential(nn.Linear(8, 4), nn.GELU(), nn.Linear(4, 1)),
                }
            )
            self.bn = nn.BatchNorm1d(8)
            self.seq = nn.Sequential(OrderedDict([("flat", nn.Flatten()), ("act", nn.Tanh())]))
            self.scale = (
                nn.Parameter(
                    nn.init.ones_(
                        nn.Parameter(rg.empty(1) if nn is rg.nn else __import__("torch").empty(1))
                    )
                    .detach()
                    .clone()
                )
                if False
                else None
            )

        def forward(self, ids):
            h = self.emb(ids).mean(1)
            for b in self.blocks:
                h = b(h)
            h = self.bn(h)
            return self.heads["cls"](h), self.heads["reg"](h)

    return Net()


def test_parameter_order_state_dict_keys_and_repr(torch):
    r, t = build(rg.nn), build(torch.nn)
    assert [n for n, _ in r.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert list(r.state_dict()) == list(t.state_dict())
    assert [n for n, _ in r.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert [n for n, _ in r.named_modules()] == [n for n, _ in t.named_modules()]
    assert repr(r) == repr(t)
    for (n, a), (_, b) in zip(r.named_parameters(), t.named_parameters()):
        assert tuple(a.shape) == tuple(b.shape), n


def test_full_model_matches_torch(torch):
    r, t = build(rg.nn), build(torch.nn)
    t.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in r.state_dict().items()})
    r.eval()
    t.eval()
    ids = np.array([[1, 2, 0], [4, 4, 9]], np.int64)
    a, b = r(rg.tensor(ids)), t(torch.from_numpy(ids))
    (a[0].sum() + a[1].sum()).backward()
    (b[0].sum() + b[1].sum()).backward()
    np.testing.assert_allclose(a[0].detach().numpy(), b[0].detach().numpy(), rtol=1e-4, atol=1e-5)
    tp = dict(t.named_parameters())
    for n, p in r.named_parameters():
        np.testing.assert_allclose(
            p.grad.numpy(), tp[n].grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=n
        )
    # and the other direction: torch weights into retrograd
    r2 = build(rg.nn)
    r2.load_state_dict({k: rg.tensor(v.detach().numpy().copy()) for k, v in t.state_dict().items()})
    r2.eval()
    np.testing.assert_allclose(
        r2(rg.tensor(ids))[1].detach().numpy(), b[1].detach().numpy(), rtol=1e-4, atol=1e-5
    )


def test_T76_load_state_dict_lists_every_problem():
    net = rg.nn.Sequential(rg.nn.Linear(3, 4), rg.nn.Linear(4, 2))
    sd = net.state_dict()
    bad = OrderedDict(sd)
    del bad["1.bias"]
    bad["0.weight"] = rg.zeros(5, 3)
    bad["extra.weight"] = rg.zeros(1)
    with pytest.raises(RuntimeError) as e:
        net.load_state_dict(bad)
    msg = str(e.value)
    assert '"1.bias"' in msg and '"extra.weight"' in msg
    assert "0.weight" in msg and "(5, 3)" in msg and "(4, 3)" in msg
    del bad["0.weight"]
    res = net.load_state_dict(bad, strict=False)
    assert res.missing_keys == ["0.weight", "1.bias"] and res.unexpected_keys == ["extra.weight"]


def test_hooks_train_eval_zero_grad_apply_to():
    net = rg.nn.Sequential(rg.nn.Linear(3, 4), rg.nn.ReLU(), rg.nn.Dropout(0.5), rg.nn.Linear(4, 1))
    seen = []
    h = net[0].register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    pre = net[0].register_forward_pre_hook(lambda m, i: (i[0] * 0,))
    out = net(rg.ones(2, 3))
    assert seen == [(2, 4)]
    h.remove()
    pre.remove()
    net(rg.ones(2, 3))
    assert seen == [(2, 4)]
    grads = []
    net[3].register_full_backward_hook(lambda m, gi, go: grads.append(go[0].shape))
    net(rg.ones(2, 3)).sum().backward()
    assert grads == [(2, 1)]
    assert all(m.training for m in net.modules())
    net.eval()
    assert not any(m.training for m in net.modules())
    assert np.array_equal(net(rg.ones(2, 3)).detach().numpy(), net(rg.ones(2, 3)).detach().numpy())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    names = []
    net.apply(lambda m: names.append(type(m).__name__))
    assert names == ["Linear", "ReLU", "Dropout", "Linear", "Sequential"]
    net.to(rg.float64)
    assert all(p.dtype == rg.float64 for p in net.parameters())
    assert net(rg.ones(2, 3, dtype=rg.float64)).dtype == rg.float64
    bn = rg.nn.BatchNorm1d(3).double()
    assert bn.running_mean.dtype == rg.float64 and bn.num_batches_tracked.dtype == rg.int64
    del out


def test_sequential_api(torch):
    a, b, c = rg.nn.Linear(2, 3), rg.nn.ReLU(), rg.nn.Linear(3, 1)
    s = rg.nn.Sequential(a, b, c)
    assert len(s) == 3 and s[0] is a and s[-1] is c
    assert isinstance(s[1:], rg.nn.Sequential) and len(s[1:]) == 2 and s[1:][0] is b
    s.append(rg.nn.Sigmoid())
    s.insert(1, rg.nn.Identity())
    s.extend([rg.nn.Identity()])
    assert [type(m).__name__ for m in s] == [
        "Linear",
        "Identity",
        "ReLU",
        "Linear",
        "Sigmoid",
        "Identity",
    ]
    assert list(dict(s.named_children())) == [str(i) for i in range(6)]
    del s[1]
    assert [type(m).__name__ for m in s][:2] == ["Linear", "ReLU"]
    with pytest.raises(IndexError):
        s[10]
    od = rg.nn.Sequential(OrderedDict([("fc", rg.nn.Linear(2, 2)), ("act", rg.nn.ReLU())]))
    assert od.fc is od[0] and list(od.state_dict()) == ["fc.weight", "fc.bias"]
    t = torch.nn.Sequential(OrderedDict([("fc", torch.nn.Linear(2, 2)), ("act", torch.nn.ReLU())]))
    assert repr(od) == repr(t)


def test_module_list_dict_parameter_containers(torch):
    ml = rg.nn.ModuleList([rg.nn.Linear(2, 2) for _ in range(3)])
    ml.append(rg.nn.ReLU())
    ml.insert(0, rg.nn.Tanh())
    assert len(ml) == 5 and type(ml[0]).__name__ == "Tanh" and len(list(ml.parameters())) == 6
    assert len(ml[1:3]) == 2
    md = rg.nn.ModuleDict({"a": rg.nn.Linear(2, 2)})
    md["b"] = rg.nn.ReLU()
    assert list(md.keys()) == ["a", "b"] and "a" in md and len(md) == 2
    assert md.pop("b").__class__.__name__ == "ReLU"
    pl = rg.nn.ParameterList([rg.nn.Parameter(rg.ones(2)), rg.zeros(3)])
    assert len(pl) == 2 and isinstance(pl[1], rg.nn.Parameter)
    assert [n for n, _ in pl.named_parameters()] == ["0", "1"]
    tpl = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(2)), torch.zeros(3)])
    assert repr(pl).replace("retrograd.", "torch.") == repr(tpl)
    tpd = torch.nn.ParameterDict({"w": torch.ones(2)})
    assert repr(rg.nn.ParameterDict({"w": rg.ones(2)})).replace("retrograd.", "torch.") == repr(tpd)
    pd = rg.nn.ParameterDict({"w": rg.ones(2)})
    pd["v"] = rg.nn.Parameter(rg.zeros(1))
    assert list(pd.keys()) == ["w", "v"] and isinstance(pd["w"], rg.nn.Parameter)
    assert [n for n, _ in pd.named_parameters()] == ["w", "v"]

    class M(rg.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = ml
            self.params = pl

    assert len(list(M().parameters())) == 8

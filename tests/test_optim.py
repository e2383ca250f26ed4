"""Optimizers against PyTorch: 20 steps from the same weights with the same gradients."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg

SHAPES = [(3, 4), (4,), (2, 3, 2)]


def _init(seed=0):
    r = np.random.default_rng(seed)
    return [r.standard_normal(s).astype(np.float32) for s in SHAPES]


def _grad(arr: np.ndarray, k: int, step: int) -> np.ndarray:
    """A deterministic, state-dependent gradient (a quadratic bowl plus a wobble)."""
    r = np.random.default_rng(1000 * step + k)
    noise = r.standard_normal(arr.shape).astype(np.float32)
    return (arr * np.float32(0.7) + np.sin(arr) + np.float32(0.3) * noise).astype(np.float32)


def _groups(params, group_opts):
    if group_opts is None:
        return params
    # first group: params[0]; second group: the rest (each with its own options)
    return [dict(params=[params[0]], **group_opts[0]), dict(params=params[1:], **group_opts[1])]


def run_rg(cls, kwargs, steps=20, group_opts=None, skip=(), closure=False):
    params = [rg.nn.Parameter(rg.tensor(a)) for a in _init()]
    opt = cls(_groups(params, group_opts), **kwargs)
    traj = []
    for t in range(steps):
        for k, p in enumerate(params):
            p.grad = None if k in skip else rg.tensor(_grad(p.detach().numpy(), k, t))
        opt.step()
        traj.append([p.detach().numpy().copy() for p in params])
    return traj, opt, params


def run_torch(torch, cls, kwargs, steps=20, group_opts=None, skip=()):
    params = [torch.nn.Parameter(torch.tensor(a)) for a in _init()]
    opt = cls(_groups(params, group_opts), **kwargs)
    traj = []
    for t in range(steps):
        for k, p in enumerate(params):
            p.grad = None if k in skip else torch.tensor(_grad(p.detach().numpy(), k, t))
        opt.step()
        traj.append([p.detach().numpy().copy() for p in params])
    return traj, opt, params


def assert_traj_close(a, b, rtol=1e-5, atol=1e-6):
    for t, (sa, sb) in enumerate(zip(a, b)):
        for k, (x, y) in enumerate(zip(sa, sb)):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"step {t} param {k}")


CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True)),
    ("Adam", dict(lr=1.0)),  # high LR: still finite and matching
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.8, weight_decay=0.05)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, maximize=True)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("Adagrad", dict(lr=0.1)),
    (
        "Adagrad",
        dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.3, eps=1e-6),
    ),
    ("Adagrad", dict(lr=0.1, maximize=True)),
    ("Adamax", dict(lr=0.02)),
    ("Adamax", dict(lr=0.02, betas=(0.8, 0.99), weight_decay=0.1, maximize=True)),
    ("NAdam", dict(lr=0.02)),
    ("NAdam", dict(lr=0.02, weight_decay=0.1, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict(lr=0.02)),  # rho_t crosses 5 at step 6: both branches
    ("RAdam", dict(lr=0.02, weight_decay=0.1)),
    ("RAdam", dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
]
ALL = sorted({n for n, _ in CASES})


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_matches_torch_20_steps(torch, name, kwargs):
    a, opt, params = run_rg(getattr(rg.optim, name), kwargs)
    b, *_ = run_torch(torch, getattr(torch.optim, name), kwargs)
    assert_traj_close(a, b)
    assert all(np.isfinite(x).all() for x in a[-1])


@pytest.mark.parametrize("name", ALL)
def test_param_groups_match_torch(torch, name):
    base = dict(CASES[[n for n, _ in CASES].index(name)][1])
    groups = [dict(lr=0.02, weight_decay=0.0), dict(weight_decay=0.1)]
    a, opt, _ = run_rg(getattr(rg.optim, name), base, group_opts=groups)
    b, topt, _ = run_torch(torch, getattr(torch.optim, name), base, group_opts=groups)
    assert_traj_close(a, b)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in topt.param_groups]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.1]


@pytest.mark.parametrize("name", ALL)
def test_param_group_defaults_like_torch(torch, name):
    p = rg.nn.Parameter(rg.zeros(2))
    tp = torch.nn.Parameter(torch.zeros(2))
    g = getattr(rg.optim, name)([p], lr=0.1).param_groups[0]
    tg = getattr(torch.optim, name)([tp], lr=0.1).param_groups[0]
    assert set(g) == set(tg)
    for k in tg:
        if k != "params":
            assert g[k] == tg[k], k


def test_T51_sgd_values():
    p = rg.nn.Parameter(rg.tensor([1.0]))
    opt = rg.optim.SGD([p], lr=0.1)
    p.grad = rg.tensor([0.5])
    opt.step()
    assert p.item() == pytest.approx(0.95, abs=1e-7)
    p = rg.nn.Parameter(rg.tensor([1.0]))
    opt = rg.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = rg.tensor([0.5])
    opt.step()
    assert p.item() == pytest.approx(0.95, abs=1e-7)
    assert opt.state[p]["momentum_buffer"].item() == pytest.approx(0.5)
    p.grad = rg.tensor([0.5])
    opt.step()
    assert opt.state[p]["momentum_buffer"].item() == pytest.approx(0.95, abs=1e-7)
    assert p.item() == pytest.approx(0.855, abs=1e-6)


def test_T52_adam_first_step_bias_correction():
    p = rg.nn.Parameter(rg.tensor([1.0, -2.0]))
    opt = rg.optim.Adam([p], lr=1e-3)
    p.grad = rg.tensor([0.5, -3.0])
    opt.step()
    delta = np.array([1.0, -2.0], np.float32) - p.detach().numpy()
    np.testing.assert_allclose(delta, [1e-3 * 0.5 / (0.5 + 1e-8), -1e-3], rtol=1e-4)
    assert abs(delta[0]) < 1.1e-3  # without bias correction it would be ~3.16e-3


def _numpy_adam(p, grads, lr, b1, b2, eps):
    p = p.astype(np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mh = m / (1 - b1**t)
        vh = v / (1 - b2**t)
        p = p - lr * mh / (np.sqrt(vh) + eps)
    return p


@pytest.mark.parametrize("lr", [1e-3, 0.5])
def test_T53_adam_vs_numpy_reference(lr):
    a = np.array([3.0, -1.0, 0.5], np.float32)
    p = rg.nn.Parameter(rg.tensor(a))
    opt = rg.optim.Adam([p], lr=lr)
    grads = []
    for _ in range(10):
        g = (2.0 * p.detach().numpy() - np.float32(1.0)).astype(np.float32)  # quadratic
        grads.append(g.astype(np.float64))
        p.grad = rg.tensor(g)
        opt.step()
    # replay the same gradient sequence in float64
    ref = _numpy_adam(a, grads, lr, 0.9, 0.999, 1e-8)
    assert np.isfinite(p.detach().numpy()).all()
    np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-6, atol=1e-7)


def test_T54_adamw_wd0_bit_identical_to_adam():
    a, *_ = run_rg(rg.optim.Adam, dict(lr=0.01))
    b, *_ = run_rg(rg.optim.AdamW, dict(lr=0.01, weight_decay=0.0))
    for sa, sb in zip(a, b):
        for x, y in zip(sa, sb):
            assert np.array_equal(x, y)
    c, *_ = run_rg(rg.optim.AdamW, dict(lr=0.01, weight_decay=0.1))
    d, *_ = run_rg(rg.optim.Adam, dict(lr=0.01, weight_decay=0.1))
    assert not np.allclose(c[-1][0], d[-1][0], rtol=1e-4)


def test_T54_adamw_decay_is_separate_from_moments():
    p = rg.nn.Parameter(rg.tensor([2.0]))
    opt = rg.optim.AdamW([p], lr=0.1, weight_decay=0.5)
    p.grad = rg.tensor([0.0])
    opt.step()
    assert p.item() == pytest.approx(2.0 * (1 - 0.05), rel=1e-6)
    assert opt.state[p]["exp_avg"].item() == 0.0


def test_T58_zero_grads_no_nan():
    for cls in (
        rg.optim.Adam,
        rg.optim.AdamW,
        rg.optim.SGD,
        rg.optim.RMSprop,
        rg.optim.Adagrad,
        rg.optim.NAdam,
        rg.optim.RAdam,
        rg.optim.Adamax,
    ):
        p = rg.nn.Parameter(rg.tensor([1.0, 2.0]))
        opt = cls([p], lr=0.1)
        for _ in range(3):
            p.grad = rg.zeros(2)
            opt.step()
        expect = (
            [1.0, 2.0] if cls is not rg.optim.AdamW else [(1 - 0.001) ** 3, 2 * (1 - 0.001) ** 3]
        )
        np.testing.assert_allclose(p.detach().numpy(), expect, rtol=1e-6)


def test_T58_nan_grad_propagates_like_torch(torch):
    # Documented behaviour (as PyTorch): no check, a NaN gradient makes the weight NaN.
    p = rg.nn.Parameter(rg.tensor([1.0, 2.0]))
    tp = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt, topt = rg.optim.Adam([p]), torch.optim.Adam([tp])
    p.grad = rg.tensor([float("nan"), 1.0])
    tp.grad = torch.tensor([float("nan"), 1.0])
    opt.step()
    topt.step()
    np.testing.assert_array_equal(np.isnan(p.detach().numpy()), np.isnan(tp.detach().numpy()))


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
        ("Adam", dict(lr=0.1, weight_decay=0.1)),
        ("AdamW", dict(lr=0.1)),
        ("RMSprop", dict(lr=0.1, weight_decay=0.1, momentum=0.9)),
        ("Adagrad", dict(lr=0.1, weight_decay=0.1)),
        ("Adamax", dict(lr=0.1, weight_decay=0.1)),
        ("NAdam", dict(lr=0.1, weight_decay=0.1)),
        ("RAdam", dict(lr=0.1, weight_decay=0.1)),
    ],
)
def test_T55_none_grad_params_untouched(name, kwargs):
    traj, opt, params = run_rg(getattr(rg.optim, name), kwargs, steps=5, skip=(1,))
    np.testing.assert_array_equal(params[1].detach().numpy(), _init()[1])
    if name == "Adagrad":  # PyTorch's Adagrad creates its state at construction
        assert (
            opt.state[params[1]]["step"].item() == 0
            and opt.state[params[1]]["sum"].sum().item() == 0
        )
    else:
        assert params[1] not in opt.state
    frozen = rg.nn.Parameter(rg.ones(3), requires_grad=False)
    opt2 = getattr(rg.optim, name)([frozen], **kwargs)
    opt2.step()
    assert frozen.tolist() == [1.0, 1.0, 1.0]


def test_T56_same_param_two_groups_valueerror():
    p = rg.nn.Parameter(rg.ones(2))
    q = rg.nn.Parameter(rg.ones(2))
    with pytest.raises(ValueError, match="more than one parameter group"):
        rg.optim.SGD([{"params": [p]}, {"params": [p, q]}], lr=0.1)
    opt = rg.optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [p]})
    opt.add_param_group({"params": [q], "lr": 0.5, "weight_decay": 0.0})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0


def test_T56_no_decay_group_applied():
    w = rg.nn.Parameter(rg.ones(2))
    b = rg.nn.Parameter(rg.ones(2))
    opt = rg.optim.SGD(
        [{"params": [w], "weight_decay": 0.5}, {"params": [b], "weight_decay": 0.0}], lr=0.1
    )
    w.grad = rg.zeros(2)
    b.grad = rg.zeros(2)
    opt.step()
    assert w.tolist() == pytest.approx([0.95, 0.95])
    assert b.tolist() == [1.0, 1.0]


def test_optimizer_argument_errors():
    p = rg.nn.Parameter(rg.ones(2))
    with pytest.raises(ValueError, match="empty parameter list"):
        rg.optim.SGD([], lr=0.1)
    with pytest.raises(TypeError):
        rg.optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        rg.optim.Adam([p], lr=-1.0)
    with pytest.raises(ValueError, match="non-leaf"):
        rg.optim.SGD([p * 2], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        rg.optim.SGD([p], lr=0.1, nesterov=True)


@pytest.mark.parametrize("name", ALL)
def test_T47_everything_stays_float32(name):
    traj, opt, params = run_rg(
        getattr(rg.optim, name), dict(lr=np.float64(0.01), weight_decay=np.float64(0.1)), steps=3
    )
    for p in params:
        assert p.dtype == rg.float32 and p.grad.dtype == rg.float32
        assert p._data.dtype == np.float32
    for st in opt.state.values():
        for k, v in st.items():
            if k != "step":
                assert v._data.dtype == np.float32, (name, k)


def test_T10_zero_grad_semantics():
    p = rg.nn.Parameter(rg.ones(2))
    opt = rg.optim.SGD([p], lr=0.1)
    (p * 2).sum().backward()
    opt.zero_grad()
    assert p.grad is None  # default set_to_none=True, as PyTorch >= 2.0
    (p * 2).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert p.grad.tolist() == [0.0, 0.0]
    p.grad += rg.ones(2)  # accumulating after zero_grad(set_to_none=False) works
    assert p.grad.tolist() == [1.0, 1.0]
    opt.step()
    assert p.tolist() == pytest.approx([0.9, 0.9])
    opt.zero_grad()
    opt.step()  # every grad None: nothing happens
    assert p.tolist() == pytest.approx([0.9, 0.9])


def test_step_bumps_version_and_closure():
    p = rg.nn.Parameter(rg.tensor([1.0]))
    opt = rg.optim.SGD([p], lr=0.1)
    y = p * p  # saves p for backward
    v0 = p._vc().value

    def closure():
        opt.zero_grad()
        loss = (p * 3.0).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(3.0)
    assert p._vc().value > v0
    with pytest.raises(RuntimeError):
        y.sum().backward()  # p was modified in place after being saved


def test_step_hooks():
    p = rg.nn.Parameter(rg.tensor([1.0]))
    opt = rg.optim.SGD([p], lr=0.1)
    calls = []
    h1 = opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
    opt.step()
    h1.remove()
    opt.step()
    assert calls == ["pre", "post", "post"]


def _train(cls, kwargs, params, opt, start, stop):
    for t in range(start, stop):
        for k, p in enumerate(params):
            p.grad = rg.tensor(_grad(p.detach().numpy(), k, t))
        opt.step()


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("SGD", dict(lr=0.05, momentum=0.9)),
        ("Adam", dict(lr=0.01, amsgrad=True)),
        ("AdamW", dict(lr=0.01)),
        ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
        ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
        ("Adamax", dict(lr=0.01)),
        ("NAdam", dict(lr=0.01)),
        ("RAdam", dict(lr=0.01)),
    ],
)
def test_T57_state_dict_resume_equals_uninterrupted(name, kwargs, tmp_path):
    cls = getattr(rg.optim, name)
    ref, _, _ = run_rg(cls, kwargs, steps=10)
    params = [rg.nn.Parameter(rg.tensor(a)) for a in _init()]
    opt = cls(params, **kwargs)
    _train(cls, kwargs, params, opt, 0, 5)
    path = tmp_path / "ckpt.safetensors"
    rg.save({"params": [p.detach() for p in params], "optim": opt.state_dict()}, path)
    ck = rg.load(path)
    params2 = [rg.nn.Parameter(t) for t in ck["params"]]
    opt2 = cls(params2, lr=123.0)  # options come back from the state dict
    opt2.load_state_dict(ck["optim"])
    assert opt2.param_groups[0]["lr"] == kwargs["lr"]
    _train(cls, kwargs, params2, opt2, 5, 10)
    for x, y in zip(ref[-1], params2):
        np.testing.assert_array_equal(x, y.detach().numpy())


def test_T57_load_state_dict_group_mismatch():
    a, b = rg.nn.Parameter(rg.ones(2)), rg.nn.Parameter(rg.ones(2))
    opt = rg.optim.Adam([a, b])
    sd = opt.state_dict()
    opt2 = rg.optim.Adam([{"params": [a]}, {"params": [b]}])
    with pytest.raises(ValueError, match=r"different number of parameter groups.*2.*1"):
        opt2.load_state_dict(sd)
    opt3 = rg.optim.Adam([a])
    with pytest.raises(ValueError, match=r"doesn't match the size.*\[1\].*\[2\]"):
        opt3.load_state_dict(sd)


def test_state_dict_layout_and_torch_interop(torch):
    """A state dict from torch (tensors converted) loads into rg and continues identically."""
    kwargs = dict(lr=0.01, betas=(0.8, 0.95))
    tparams = [torch.nn.Parameter(torch.tensor(a)) for a in _init()]
    topt = torch.optim.Adam(tparams, **kwargs)
    params = [rg.nn.Parameter(rg.tensor(a)) for a in _init()]
    opt = rg.optim.Adam(params, **kwargs)
    for t in range(3):
        for k, (p, tp) in enumerate(zip(params, tparams)):
            g = _grad(p.detach().numpy(), k, t)
            p.grad, tp.grad = rg.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    tsd = topt.state_dict()
    sd = opt.state_dict()
    assert sd["param_groups"][0]["params"] == tsd["param_groups"][0]["params"]
    assert sorted(sd["state"]) == sorted(tsd["state"])
    for i in tsd["state"]:
        assert set(sd["state"][i]) == set(tsd["state"][i])
        for k, v in tsd["state"][i].items():
            np.testing.assert_allclose(sd["state"][i][k].numpy(), v.numpy(), rtol=1e-5, atol=1e-7)
    converted = {
        "state": {
            i: {k: rg.tensor(v.numpy()) for k, v in s.items()} for i, s in tsd["state"].items()
        },
        "param_groups": tsd["param_groups"],
    }
    opt2 = rg.optim.Adam(params)
    opt2.load_state_dict(converted)
    assert opt2.param_groups[0]["betas"] == (0.8, 0.95)


def test_subclass_step_calling_super_runs_hooks_once():
    class MySGD(rg.optim.SGD):
        def step(self, closure=None):
            return super().step(closure)

    p = rg.nn.Parameter(rg.tensor([1.0]))
    opt = MySGD([p], lr=0.1)
    calls = []
    opt.register_step_post_hook(lambda o, a, k: calls.append(1))
    p.grad = rg.tensor([1.0])
    opt.step()
    assert calls == [1] and p.item() == pytest.approx(0.9)

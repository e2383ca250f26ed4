"""LR schedulers: 20+ steps give the same learning rates (and momenta) as PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg


def _opts(lib, opt_name="SGD"):
    mk = (
        (lambda: rg.nn.Parameter(rg.zeros(2)))
        if lib is rg
        else (lambda: __import__("torch").nn.Parameter(__import__("torch").zeros(2)))
    )
    groups = [{"params": [mk()], "lr": 0.1}, {"params": [mk()], "lr": 0.02}]
    if opt_name == "SGD":
        return lib.optim.SGD(groups, lr=0.1, momentum=0.9)
    return lib.optim.Adam(groups, lr=0.1)


def _build(lib, name, kw, opt_name="SGD"):
    opt = _opts(lib, opt_name)
    L = lib.optim.lr_scheduler
    if name == "SequentialLR":
        s = L.SequentialLR(
            opt,
            [
                L.LinearLR(opt, start_factor=0.25, total_iters=4),
                L.CosineAnnealingLR(opt, T_max=8, eta_min=0.001),
                L.ExponentialLR(opt, gamma=0.9),
            ],
            milestones=[4, 12],
        )
    elif name == "ChainedScheduler":
        s = L.ChainedScheduler(
            [
                L.ConstantLR(opt, factor=0.5, total_iters=3),
                L.ExponentialLR(opt, gamma=0.9),
                L.MultiStepLR(opt, milestones=[5, 9], gamma=0.3),
            ]
        )
    elif name in ("LambdaLR", "MultiplicativeLR"):
        s = getattr(L, name)(opt, lr_lambda=[lambda e: 0.95**e, lambda e: 1.0 / (e + 1)])
    else:
        s = getattr(L, name)(opt, **kw)
    return opt, s


CASES = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 11], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.87)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.001)),  # 20 steps: goes past T_max twice
    ("CosineAnnealingWarmRestarts", dict(T_0=3, T_mult=2, eta_min=1e-4)),
    ("CosineAnnealingWarmRestarts", dict(T_0=4)),
    ("LinearLR", dict(start_factor=0.1, end_factor=0.9, total_iters=7)),
    ("ConstantLR", dict(factor=0.25, total_iters=6)),
    ("PolynomialLR", dict(total_iters=12, power=2.0)),
    ("OneCycleLR", dict(max_lr=[1.0, 0.5], total_steps=25)),
    (
        "OneCycleLR",
        dict(
            max_lr=0.8,
            epochs=5,
            steps_per_epoch=5,
            anneal_strategy="linear",
            three_phase=True,
            pct_start=0.25,
        ),
    ),
    ("LambdaLR", {}),
    ("MultiplicativeLR", {}),
    ("SequentialLR", {}),
    ("ChainedScheduler", {}),
]


def _run(lib, name, kw, steps=20, opt_name="SGD"):
    opt, s = _build(lib, name, kw, opt_name)
    lrs, moms = [], []
    for _ in range(steps):
        lrs.append(list(s.get_last_lr()))
        moms.append([g.get("momentum", g.get("betas", (None,))[0]) for g in opt.param_groups])
        opt.step()
        s.step()
    lrs.append(list(s.get_last_lr()))
    return np.array(lrs, dtype=np.float64), moms, opt


@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_scheduler_matches_torch(torch, name, kw):
    a, ma, opt = _run(rg, name, kw)
    b, mb, topt = _run(torch, name, kw)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(np.array(ma, float), np.array(mb, float), rtol=1e-6)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx(
        [g["lr"] for g in topt.param_groups], rel=1e-6
    )
    assert [g.get("initial_lr") for g in opt.param_groups] == pytest.approx(
        [g.get("initial_lr") for g in topt.param_groups]
    )


def test_one_cycle_cycles_adam_beta1(torch):
    a, ma, _ = _run(rg, "OneCycleLR", dict(max_lr=0.5, total_steps=20), opt_name="Adam")
    b, mb, _ = _run(torch, "OneCycleLR", dict(max_lr=0.5, total_steps=20), opt_name="Adam")
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(np.array(ma, float), np.array(mb, float), rtol=1e-6)
    with pytest.raises(ValueError, match="Tried to step"):
        opt, s = _build(rg, "OneCycleLR", dict(max_lr=0.5, total_steps=3))
        for _ in range(4):
            opt.step()
            s.step()


@pytest.mark.parametrize(
    "kw",
    [
        dict(patience=2),
        dict(mode="max", factor=0.5, patience=1, cooldown=2),
        dict(threshold_mode="abs", threshold=0.05, min_lr=[0.05, 0.0], patience=0),
    ],
)
def test_reduce_lr_on_plateau_matches_torch(torch, kw):
    metrics = [
        1.0,
        0.9,
        0.95,
        0.93,
        0.94,
        0.96,
        0.8,
        0.81,
        0.82,
        0.83,
        0.84,
        0.85,
        0.7,
        0.7,
        0.7,
        0.7,
        0.71,
        0.72,
        0.73,
        0.74,
    ]
    if kw.get("mode") == "max":
        metrics = [-m for m in metrics]
    out = []
    for lib in (rg, torch):
        opt = _opts(lib)
        s = lib.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
        lrs = []
        for m in metrics:
            opt.step()
            s.step(m)
            lrs.append(list(s.get_last_lr()))
        out.append(np.array(lrs))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6)
    assert out[0][-1][0] < 0.1  # it did reduce


@pytest.mark.parametrize(
    "name,kw",
    [CASES[3], CASES[9], CASES[13], CASES[14], CASES[4]],
    ids=["cos", "onecycle", "seq", "chained", "warm"],
)
def test_scheduler_state_dict_resume(name, kw, tmp_path):
    ref, _, _ = _run(rg, name, kw, steps=14)
    opt, s = _build(rg, name, kw)
    for _ in range(6):
        opt.step()
        s.step()
    path = tmp_path / "s.safetensors"
    rg.save({"opt": opt.state_dict(), "sched": s.state_dict()}, path)
    ck = rg.load(path)
    opt2, s2 = _build(rg, name, kw)
    opt2.load_state_dict(ck["opt"])
    s2.load_state_dict(ck["sched"])
    got = [list(s2.get_last_lr())]
    for _ in range(8):
        opt2.step()
        s2.step()
        got.append(list(s2.get_last_lr()))
    np.testing.assert_allclose(np.array(got), ref[6:], rtol=1e-12)


def test_initial_lr_and_errors():
    opt = _opts(rg)
    s = rg.optim.lr_scheduler.StepLR(opt, 2)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.02] and s.last_epoch == 0
    with pytest.raises(KeyError, match="initial_lr"):
        rg.optim.lr_scheduler.StepLR(_opts(rg), 2, last_epoch=3)
    with pytest.raises(TypeError, match="not an Optimizer"):
        rg.optim.lr_scheduler.StepLR(object(), 2)
    with pytest.raises(ValueError, match="Factor should be"):
        rg.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(ValueError, match="number of milestone"):
        rg.optim.lr_scheduler.SequentialLR(opt, [s], milestones=[3])
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas"):
        rg.optim.lr_scheduler.LambdaLR(opt, [lambda e: 1.0])


def test_warns_when_scheduler_steps_before_optimizer():
    opt = _opts(rg)
    s = rg.optim.lr_scheduler.ExponentialLR(opt, 0.5)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        s.step()

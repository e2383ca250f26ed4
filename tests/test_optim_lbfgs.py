"""LBFGS against PyTorch (fixed step and strong-Wolfe line search)."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg

C = np.array([1.0, -2.0, 0.7, 3.0, -1.5], np.float32)
W = np.arange(1, 6)


def _fg(x):
    """A smooth non-quadratic objective and its gradient (NumPy, so both libraries see the
    same numbers)."""
    x = x.astype(np.float64)
    f = np.sum((x - C) ** 2 * W) + 0.1 * np.sum(x**4) + np.sum(np.sin(3 * x))
    g = 2 * (x - C) * W + 0.4 * x**3 + 3 * np.cos(3 * x)
    return np.float32(f), g.astype(np.float32)


def _run(lib, steps=20, **kw):
    x0 = np.zeros(5, np.float32)
    if lib is rg:
        p = rg.nn.Parameter(rg.tensor(x0))
        opt = rg.optim.LBFGS([p], **kw)
    else:
        p = lib.nn.Parameter(lib.tensor(x0))
        opt = lib.optim.LBFGS([p], **kw)

    def closure():
        f, g = _fg(p.detach().numpy())
        p.grad = lib.tensor(g)
        return lib.tensor(f)

    out = []
    for _ in range(steps):
        opt.step(closure)
        out.append(p.detach().numpy().copy())
    return np.array(out), opt, p


@pytest.mark.parametrize(
    "kw",
    [
        dict(lr=0.1, max_iter=3),
        dict(max_iter=4, line_search_fn="strong_wolfe"),
        dict(lr=0.5, max_iter=2, history_size=5),
        dict(lr=0.2, max_iter=2, history_size=2),
        dict(line_search_fn="strong_wolfe", max_eval=7),
    ],
)
def test_lbfgs_matches_torch(torch, kw):
    a, opt, p = _run(rg, **kw)
    b, topt, tp = _run(torch, **kw)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    st, tst = opt.state[p], topt.state[tp]
    assert st["func_evals"] == tst["func_evals"] and st["n_iter"] == tst["n_iter"]
    assert st["d"].dtype == rg.float32 and p.dtype == rg.float32


def test_lbfgs_converges_and_errors():
    a, opt, p = _run(rg, steps=3, line_search_fn="strong_wolfe")
    _, g = _fg(p.detach().numpy())
    assert np.abs(g).max() < 1e-3
    with pytest.raises(RuntimeError, match="closure"):
        opt.step(None)
    q = rg.nn.Parameter(rg.zeros(2))
    with pytest.raises(ValueError, match="parameter groups"):
        rg.optim.LBFGS([{"params": [p]}, {"params": [q]}])
    with pytest.raises(ValueError, match="parameter groups"):
        opt.add_param_group({"params": [q]})


def test_lbfgs_state_dict_resume(tmp_path):
    ref, _, _ = _run(rg, steps=6, lr=0.2, max_iter=2)
    a, opt, p = _run(rg, steps=3, lr=0.2, max_iter=2)
    path = tmp_path / "lbfgs.safetensors"
    rg.save({"p": p.detach(), "opt": opt.state_dict()}, path)
    ck = rg.load(path)
    p2 = rg.nn.Parameter(ck["p"])
    opt2 = rg.optim.LBFGS([p2], lr=0.2, max_iter=2)
    opt2.load_state_dict(ck["opt"])

    def closure():
        f, g = _fg(p2.detach().numpy())
        p2.grad = rg.tensor(g)
        return rg.tensor(f)

    for _ in range(3):
        opt2.step(closure)
    np.testing.assert_array_equal(p2.detach().numpy(), ref[-1])


def test_lbfgs_with_autograd_closure():
    x = rg.nn.Parameter(rg.tensor([-1.2, 1.0]))
    opt = rg.optim.LBFGS([x], lr=1, max_iter=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2  # Rosenbrock
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    np.testing.assert_allclose(x.detach().numpy(), [1.0, 1.0], atol=1e-3)

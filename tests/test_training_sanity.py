"""End-to-end wiring checks of layers + loss + optimizer."""

import retrograd as rg


def test_T82_overfit_one_batch():
    """A small MLP memorises 4 samples: loss < 1e-3 within 200 Adam steps."""
    rg.manual_seed(0)
    x = rg.randn(4, 8)
    y = rg.tensor([0, 1, 2, 1])
    model = rg.nn.Sequential(rg.nn.Linear(8, 32), rg.nn.Tanh(), rg.nn.Linear(32, 3))
    opt = rg.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        loss = rg.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3
    assert all(p.dtype == rg.float32 and p.grad.dtype == rg.float32 for p in model.parameters())


def test_readme_example_runs():
    """The ten-line example of the README trains (its loss falls)."""
    x = rg.randn(64, 2)
    y = (x[:, 0] * x[:, 1] > 0).long()
    model = rg.nn.Sequential(rg.nn.Linear(2, 16), rg.nn.ReLU(), rg.nn.Linear(16, 2))
    opt = rg.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(200):
        loss = rg.nn.functional.cross_entropy(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first

"""Smoke test: the engine trains a tiny model."""

import retrograd as rg


def test_quadratic_descends():
    w = rg.tensor([2.0], requires_grad=True)
    for _ in range(50):
        loss = ((w - 0.5) ** 2).sum()
        w.grad = None
        loss.backward()
        with rg.no_grad():
            w -= 0.1 * w.grad
    assert abs(w.item() - 0.5) < 1e-3
    assert w.is_leaf and w.dtype == rg.float32

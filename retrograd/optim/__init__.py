"""``rg.optim``: optimizers and learning-rate schedulers."""

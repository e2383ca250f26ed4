"""``rg.data`` (``torch.utils.data``): datasets, samplers, DataLoader."""

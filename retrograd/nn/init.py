"""Weight initialisation (``torch.nn.init``)."""

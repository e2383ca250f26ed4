"""``rg.nn.utils``: gradient clipping, parameter vectors."""

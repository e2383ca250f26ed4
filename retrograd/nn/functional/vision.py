"""vision functions."""

__all__: list[str] = []

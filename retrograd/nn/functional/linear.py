"""linear functions."""

__all__: list[str] = []

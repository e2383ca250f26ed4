"""attention functions."""

__all__: list[str] = []

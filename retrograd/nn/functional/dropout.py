"""dropout functions."""

__all__: list[str] = []

"""sparse functions."""

__all__: list[str] = []

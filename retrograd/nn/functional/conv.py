"""conv functions."""

__all__: list[str] = []

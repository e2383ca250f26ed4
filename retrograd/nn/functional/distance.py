"""distance functions."""

__all__: list[str] = []

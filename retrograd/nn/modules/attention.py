"""attention modules."""

__all__: list[str] = []

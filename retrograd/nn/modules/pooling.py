"""pooling modules."""

__all__: list[str] = []

"""Graph pictures."""

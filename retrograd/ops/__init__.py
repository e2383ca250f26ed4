"""Primitive ops: a NumPy forward plus a vjp written with retrograd ops, one family per file."""

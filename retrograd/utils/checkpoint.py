"""Gradient checkpointing."""

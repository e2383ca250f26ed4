"""The retrograd command."""

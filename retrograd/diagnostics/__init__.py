"""Seeing backprop: gradient monitor, verdicts, LR finder, explain, graph drawing."""

"""Bundled data sets and toy generators."""

"""Internals of ``rg.compile`` (the tracer and plan live in ``retrograd/compile.py``;
``codegen`` turns a plan into one generated Python function)."""

"""Every docstring example under ``retrograd/`` runs and prints what it claims.

One test per module: the examples are found with ``doctest.DocTestFinder`` and run with
``ELLIPSIS | NORMALIZE_WHITESPACE``; a failure shows doctest's own report (example, expected,
got). Modules whose import has side effects (``__main__``) are left out.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil

import numpy as np
import pytest

import retrograd

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    names = ["retrograd"]
    for info in pkgutil.walk_packages(retrograd.__path__, "retrograd."):
        if info.name.rsplit(".", 1)[-1] == "__main__":  # running it would start the CLI
            continue
        names.append(info.name)
    return sorted(names)


MODULES = _module_names()


def test_modules_found():
    # the walk must see the whole package, or the parametrisation below silently shrinks
    assert len(MODULES) > 50
    for name in ("retrograd.tensor", "retrograd.nn.init", "retrograd.optim", "retrograd.func"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    state = np.get_printoptions()
    try:
        retrograd.manual_seed(0)
        for test in tests:
            runner.run(test, out=report.write)
    finally:
        np.set_printoptions(**state)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}:\n" + (
        report.getvalue()
    )


def test_package_has_examples():
    # the public API documents itself with examples: a large drop means docstrings were lost
    total = 0
    for name in MODULES:
        module = importlib.import_module(name)
        total += sum(len(t.examples) for t in doctest.DocTestFinder().find(module, name))
    assert total >= 400

"""Every case of the shared PITFALLS catalogue (T01..T83) has a test named after it."""

import pathlib
import re

TESTS = pathlib.Path(__file__).parent


def _covered():
    found = set()
    for path in TESTS.rglob("test_*.py"):
        for m in re.finditer(r"def (test_\w*?T(\d\d)\w*)\(", path.read_text()):
            found.add(int(m.group(2)))
    return found


def test_every_pitfall_has_a_test():
    missing = sorted(set(range(1, 84)) - _covered())
    assert not missing, "PITFALLS cases without a test: " + ", ".join(f"T{n:02d}" for n in missing)

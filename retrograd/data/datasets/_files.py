"""Where the bundled data files live."""

from __future__ import annotations

import os

FILES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "files")


def bundled(name: str) -> str:
    return os.path.join(FILES_DIR, name)

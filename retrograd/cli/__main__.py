"""``python -m retrograd.cli``."""

import sys

from .main import main

sys.exit(main())

"""``rg.nn``: modules, parameters, functional ops, init, losses and utilities."""

# The import order is deliberate (star imports: a later family's name wins; submodules
# import in dependency order), so the import sorter leaves this file alone.
# ruff: isort: skip_file

from . import functional, init, utils  # noqa: F401
from .modules import *  # noqa: F403
from .parameter import Buffer, Parameter  # noqa: F401

from . import parallel  # noqa: E402,F401
from .parallel import SyncBatchNorm  # noqa: E402,F401

"""``rg.nn``: modules, parameters, functional ops, init, losses and utilities."""

from . import functional, init, utils  # noqa: F401
from .modules import *  # noqa: F403
from .parameter import Buffer, Parameter

from . import parallel  # noqa: E402,F401
from .parallel import SyncBatchNorm  # noqa: E402,F401

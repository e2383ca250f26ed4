"""``rg.data`` (also ``rg.utils.data``; PyTorch's ``torch.utils.data``): datasets, samplers,
``DataLoader``, collation, transforms and bundled data sets."""

import sys as _sys  # noqa: E402

from . import (
    datasets,  # noqa: E402,F401
    transforms,  # noqa: F401
)
from .collate import *  # noqa: F403
from .dataloader import *  # noqa: F403
from .dataset import *  # noqa: F403
from .distributed import *  # noqa: F403
from .sampler import *  # noqa: F403

# ``from retrograd.utils.data import DataLoader`` works like ``torch.utils.data``.
_sys.modules.setdefault("retrograd.utils.data", _sys.modules[__name__])

"""Layer families, one file each."""

# The import order is deliberate (star imports: a later family's name wins; submodules
# import in dependency order), so the import sorter leaves this file alone.
# ruff: isort: skip_file

from .module import Module  # noqa: F401
from .container import *  # noqa: F403
from .linear import *  # noqa: F403
from .activation import *  # noqa: F403
from .normalization import *  # noqa: F403
from .dropout import *  # noqa: F403
from .sparse import *  # noqa: F403
from .loss import *  # noqa: F403
from .conv import *  # noqa: F403
from .pooling import *  # noqa: F403
from .attention import *  # noqa: F403
from .rnn import *  # noqa: F403

"""``rg.nn.functional``: the stateless form of every layer, loss and activation."""

# The import order is deliberate (star imports: a later family's name wins; submodules
# import in dependency order), so the import sorter leaves this file alone.
# ruff: isort: skip_file

from ...ops.elementwise import (  # noqa: F401
    celu,
    elu,
    gelu,
    hardsigmoid,
    hardswish,
    hardtanh,
    leaky_relu,
    logsigmoid,
    mish,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    softplus,
    softsign,
    tanh,
    tanhshrink,
)
from ...ops.indexing import one_hot  # noqa: F401
from ...ops.movement import pad  # noqa: F401
from ...ops.reduce import log_softmax, softmax, softmin  # noqa: F401
from .activation import *  # noqa: F403
from .linear import *  # noqa: F403
from .normalization import *  # noqa: F403
from .dropout import *  # noqa: F403
from .sparse import *  # noqa: F403
from .loss import *  # noqa: F403
from .conv import *  # noqa: F403
from .pooling import *  # noqa: F403
from .attention import *  # noqa: F403
from .vision import *  # noqa: F403
from .distance import *  # noqa: F403

"""retrograd: backpropagation on NumPy arrays with PyTorch's API, and tools to see it work.

>>> import retrograd as rg
>>> w = rg.tensor([2.0], requires_grad=True)
>>> loss = ((w * 3.0 - 1.0) ** 2).sum()
>>> loss.backward()
>>> w.grad
tensor([30.])
"""

from __future__ import annotations

from . import _methods  # noqa: F401  (binds Tensor methods)
from . import autograd
from ._dtype import (
    bool_ as bool,  # noqa: A004
    double,
    dtype,
    float,  # noqa: A004
    float16,
    float32,
    float64,
    get_default_dtype,
    half,
    int,  # noqa: A004
    int8,
    int16,
    int32,
    int64,
    long,
    set_default_dtype,
    short,
    uint8,
)
from .autograd import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .creation import (
    arange,
    as_tensor,
    bernoulli,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    logspace,
    multinomial,
    normal,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
    scalar_tensor,
    tensor,
    zeros,
    zeros_like,
)
from .ops.elementwise import *  # noqa: F403
from .ops.elementwise import abs, pow, round  # noqa: A004
from .ops.indexing import *  # noqa: F403
from .ops.linalg import *  # noqa: F403
from .ops.movement import *  # noqa: F403
from .ops.reduce import *  # noqa: F403
from .ops.reduce import all, any, max, min, sum  # noqa: A004
from .random import (
    Generator,
    default_generator,
    get_rng_state,
    initial_seed,
    manual_seed,
    seed,
    set_rng_state,
)
from .size import Size
from .tensor import Tensor, device

from . import linalg  # noqa: E402
from . import func  # noqa: E402
from . import nn  # noqa: E402
from . import optim  # noqa: E402
from . import data  # noqa: E402
from . import utils  # noqa: E402
from . import diagnostics  # noqa: E402
from . import viz  # noqa: E402
from . import models  # noqa: E402
from . import distributed  # noqa: E402
from .io import *  # noqa: E402,F403
from .diagnostics import *  # noqa: E402,F403

__version__ = "0.1.0"


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def numel(t: Tensor) -> int:
    return t.numel()


def is_floating_point(t: Tensor) -> bool:
    return t.is_floating_point()


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Accepted for compatibility: every retrograd op is deterministic on the CPU."""


def set_num_threads(n: int) -> None:
    """Limit BLAS threads (via threadpoolctl when installed)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass


def get_num_threads() -> int:
    import os

    return os.cpu_count() or 1


from .compile import compile  # noqa: E402,A004,F401

"""``rg.optim``: optimizers and learning-rate schedulers (``torch.optim``)."""

from . import lr_scheduler  # noqa: F401
from .adagrad import *  # noqa: F403
from .adam import *  # noqa: F403
from .adamax import *  # noqa: F403
from .lbfgs import *  # noqa: F403
from .nadam import *  # noqa: F403
from .optimizer import Optimizer  # noqa: F401
from .radam import *  # noqa: F403
from .rmsprop import *  # noqa: F403
from .sgd import *  # noqa: F403

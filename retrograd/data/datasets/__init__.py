"""Bundled data sets (MNIST test set, Tiny Shakespeare) and toy generators."""

from .mnist import *  # noqa: F403
from .shakespeare import *  # noqa: F403
from .toy import *  # noqa: F403

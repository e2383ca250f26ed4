"""``rg.utils``: checkpointing and data (``rg.utils.data`` is ``rg.data``)."""

from .. import data  # noqa: F401

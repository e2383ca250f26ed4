"""Distributed data parallel over MPI, with ``torch.distributed``'s names and semantics.

Launch with ``mpiexec -n N python train.py``; without a launcher the world has size 1 and
every collective is an identity. mpi4py is imported lazily (never at ``import retrograd``).

>>> import retrograd as rg
>>> import retrograd.distributed as dist
>>> dist.init_process_group("mpi")
>>> t = rg.tensor([1.0, 2.0])
>>> dist.all_reduce(t, op=dist.ReduceOp.AVG)
>>> dist.get_rank(), dist.get_world_size(), t
(0, 1, tensor([1., 2.]))
>>> dist.destroy_process_group()
"""

from .collectives import *  # noqa: F403
from .errors import *  # noqa: F403
from .gradients import all_reduce_gradients
from .process_group import *  # noqa: F403
from .reduce_op import ReduceOp
from .work import Work

__all__ = ["ReduceOp", "Work", "all_reduce_gradients"]  # extended below
from . import collectives as _c  # noqa: E402
from . import errors as _e  # noqa: E402
from . import process_group as _p  # noqa: E402

__all__ += _c.__all__ + _e.__all__ + _p.__all__

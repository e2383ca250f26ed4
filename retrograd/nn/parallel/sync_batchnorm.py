"""``SyncBatchNorm``: batch normalisation whose statistics span every rank's part of the batch."""

from __future__ import annotations

import numpy as np

from ...autograd import Function, no_grad
from ...tensor import Tensor
from ..modules.module import Module
from ..modules.normalization import _BatchNorm

__all__ = ["SyncBatchNorm"]


class _AllReduceSum(Function):
    """``y = sum over ranks of x`` on every rank; its gradient is the sum over ranks of the
    upstream gradients (each rank's loss depends on every rank's ``x``)."""

    @staticmethod
    def forward(ctx, x):
        from ... import distributed as dist

        y = Tensor._make(np.array(x._data, order="C", copy=True))
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, g):
        from ... import distributed as dist

        g = Tensor._make(np.array(g._data, order="C", copy=True))
        dist.all_reduce(g)
        return g


class SyncBatchNorm(_BatchNorm):
    """``torch.nn.SyncBatchNorm``: in training, mean and variance are computed over the whole
    global batch (two all-reduces forward, two backward), so N ranks with B/N samples each
    normalise exactly like one process with B samples. In eval mode, or in a world of size 1,
    it is a plain batch norm. Inputs are ``(N, C, *)``.

    >>> import retrograd as rg
    >>> bn = rg.nn.parallel.SyncBatchNorm(3)
    >>> bn(rg.randn(4, 3, 5)).shape
    retrograd.Size([4, 3, 5])
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group=None,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ):
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias
        )
        self.process_group = process_group

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        from ... import distributed as dist

        self._check_input_dim(input)
        world = dist.get_world_size() if dist.is_initialized() else 1
        if not self.training or world == 1:
            return super().forward(input)
        eaf = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked._data += 1
            self.num_batches_tracked._bump()
            if self.momentum is None:
                eaf = 1.0 / float(self.num_batches_tracked._data)
        c = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, c] + [1] * (input.dim() - 2)
        count = Tensor._make(np.array([input.numel() // c], input._data.dtype))
        # two passes (mean, then squared deviations): stable where E[x^2] - E[x]^2 is not
        stats = _AllReduceSum.apply(input.sum(dims))
        total = _ranks_sum(count)  # ranks may hold different batch sizes
        mean = stats / total
        xc = input - mean.reshape(shape)
        var = _AllReduceSum.apply((xc * xc).sum(dims)) / total
        y = xc * (var + self.eps).rsqrt().reshape(shape)
        if self.weight is not None:
            y = y * self.weight.reshape(shape)
        if self.bias is not None:
            y = y + self.bias.reshape(shape)
        if self.track_running_stats:
            with no_grad():
                m, v = mean._data, var._data * (total / max(total - 1.0, 1.0))
                dt = self.running_mean._data.dtype
                self.running_mean._data[...] = (
                    (1 - eaf) * self.running_mean._data + eaf * m
                ).astype(dt)
                self.running_var._data[...] = ((1 - eaf) * self.running_var._data + eaf * v).astype(
                    dt
                )
                self.running_mean._bump()
                self.running_var._bump()
        return y

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group=None) -> Module:
        """Replace every ``BatchNorm*d`` in ``module`` by a ``SyncBatchNorm`` sharing its
        parameters and buffers (returns the converted module).

        >>> import retrograd as rg
        >>> net = rg.nn.Sequential(rg.nn.Conv2d(1, 4, 3), rg.nn.BatchNorm2d(4))
        >>> type(rg.nn.parallel.SyncBatchNorm.convert_sync_batchnorm(net)[1]).__name__
        'SyncBatchNorm'
        """
        out = module
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            out = cls(
                module.num_features,
                module.eps,
                module.momentum,
                module.affine,
                module.track_running_stats,
                process_group,
            )
            if module.affine:
                out.weight = module.weight
                out.bias = module.bias
            out.running_mean = module.running_mean
            out.running_var = module.running_var
            out.num_batches_tracked = module.num_batches_tracked
            out.training = module.training
        for name, child in module.named_children():
            setattr(out, name, cls.convert_sync_batchnorm(child, process_group))
        return out


def _ranks_sum(t: Tensor) -> float:
    """Sum of a one-element tensor over ranks."""
    from ... import distributed as dist

    t = Tensor._make(np.array(t._data, copy=True))
    dist.all_reduce(t)
    return float(t._data.reshape(-1)[0])

"""Convolution layers: Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d, and the im2col
pair Unfold / Fold."""

from __future__ import annotations

import math

from ... import creation
from ...ops.movement import pad as _pad
from ...tensor import Tensor
from .. import init
from ..functional import conv as Fc
from ..functional import vision as Fv
from ..parameter import Parameter
from .module import Module

__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "Unfold", "Fold"]


def _ntuple(v, n):
    if isinstance(v, int):
        return (v,) * n
    v = tuple(v)
    return v * n if len(v) == 1 else v


class _ConvNd(Module):
    """Shared state and PyTorch's default initialisation for all convolutions."""

    _nsp = 2
    transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        output_padding=0,
    ):
        super().__init__()
        n = self._nsp
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        valid_modes = {"zeros", "reflect", "replicate", "circular"}
        if padding_mode not in valid_modes:
            raise ValueError(
                f"padding_mode must be one of {sorted(valid_modes)}, but got "
                f"padding_mode='{padding_mode}'"
            )
        self.kernel_size = _ntuple(kernel_size, n)
        self.stride = _ntuple(stride, n)
        self.dilation = _ntuple(dilation, n)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(
                    f"Invalid padding string '{padding}', should be one of ('valid', 'same')"
                )
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = _ntuple(padding, n)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.output_padding = _ntuple(output_padding, n)
        self.groups = groups
        self.padding_mode = padding_mode
        # F.pad widths, last dim first (as PyTorch's _reversed_padding_repeated_twice)
        rev = []
        for d, k, i in zip(reversed(self.dilation), reversed(self.kernel_size), reversed(range(n))):
            if self.padding == "valid":
                rev += [0, 0]
            elif self.padding == "same":
                total = d * (k - 1)
                rev += [total // 2, total - total // 2]
            else:
                rev += [self.padding[i], self.padding[i]]
        self._reversed_padding_repeated_twice = rev
        if self.transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(creation.empty(*shape, dtype=dtype))
        if bias:
            self.bias = Parameter(creation.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Kaiming-uniform with a=sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weight
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = "{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}"
        if self.padding != (0,) * len(self.kernel_size):
            s += ", padding={padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += ", dilation={dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            s += ", output_padding={output_padding}"
        if self.groups != 1:
            s += ", groups={groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += ", padding_mode={padding_mode}"
        return s.format(**self.__dict__)


class _Conv(_ConvNd):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
    ):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )

    def _conv_forward(self, input: Tensor, weight: Tensor, bias) -> Tensor:
        fn = Fc.conv2d if self._nsp == 2 else Fc.conv1d
        if self.padding_mode != "zeros":
            mode = self.padding_mode
            x = _pad(input, self._reversed_padding_repeated_twice, mode=mode)
            return fn(x, weight, bias, self.stride, 0, self.dilation, self.groups)
        return fn(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, input: Tensor) -> Tensor:
        return self._conv_forward(input, self.weight, self.bias)


class Conv2d(_Conv):
    """2-D convolution over ``(N, C_in, H, W)`` (fused im2col + GEMM).

    >>> import retrograd as rg
    >>> conv = rg.nn.Conv2d(1, 4, 3, padding=1)
    >>> conv(rg.ones(2, 1, 8, 8)).shape
    retrograd.Size([2, 4, 8, 8])
    """

    _nsp = 2


class Conv1d(_Conv):
    """1-D convolution over ``(N, C_in, L)``.

    >>> import retrograd as rg
    >>> rg.nn.Conv1d(2, 3, 3)(rg.ones(1, 2, 5)).shape
    retrograd.Size([1, 3, 3])
    """

    _nsp = 1


class _ConvTransposeNd(_ConvNd):
    transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        groups: int = 1,
        bias: bool = True,
        dilation=1,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
    ):
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__} does not support string padding")
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            device,
            dtype,
            output_padding,
        )

    def _output_padding(self, input: Tensor, output_size) -> tuple:
        """The output_padding that yields ``output_size`` (PyTorch's rule)."""
        if output_size is None:
            return self.output_padding
        n = self._nsp
        output_size = list(output_size)
        if len(output_size) == input.dim():
            output_size = output_size[2:]
        elif len(output_size) == n + 2 and input.dim() == n + 1:
            output_size = output_size[2:]
        if len(output_size) != n:
            raise ValueError(
                f"ConvTranspose{n}D: for {input.dim()}D input, output_size must have {n} or "
                f"{n + 2} elements (got {len(output_size) + 2 if len(output_size) else 0})"
            )
        res = []
        spatial = input.shape[-n:]
        for d in range(n):
            lo = (
                (spatial[d] - 1) * self.stride[d]
                - 2 * self.padding[d]
                + self.dilation[d] * (self.kernel_size[d] - 1)
                + 1
            )
            hi = lo + self.stride[d] - 1
            if not lo <= output_size[d] <= hi:
                raise ValueError(
                    f"requested an output size of {output_size}, but valid sizes range from "
                    f"{lo} to {hi} (for an input of {list(spatial)})"
                )
            res.append(output_size[d] - lo)
        return tuple(res)

    def forward(self, input: Tensor, output_size=None) -> Tensor:
        op = self._output_padding(input, output_size)
        fn = Fc.conv_transpose2d if self._nsp == 2 else Fc.conv_transpose1d
        return fn(
            input, self.weight, self.bias, self.stride, self.padding, op, self.groups, self.dilation
        )


class ConvTranspose2d(_ConvTransposeNd):
    """Transposed 2-D convolution (``weight`` is ``(C_in, C_out/groups, kh, kw)``).

    >>> import retrograd as rg
    >>> rg.nn.ConvTranspose2d(2, 3, 2, stride=2)(rg.ones(1, 2, 4, 4)).shape
    retrograd.Size([1, 3, 8, 8])
    """

    _nsp = 2


class ConvTranspose1d(_ConvTransposeNd):
    """Transposed 1-D convolution.

    >>> import retrograd as rg
    >>> rg.nn.ConvTranspose1d(2, 3, 2, stride=2)(rg.ones(1, 2, 4)).shape
    retrograd.Size([1, 3, 8])
    """

    _nsp = 1


class Unfold(Module):
    """Extract sliding local blocks (im2col): ``(N, C, H, W)`` -> ``(N, C*kh*kw, L)``.

    >>> import retrograd as rg
    >>> rg.nn.Unfold(kernel_size=2)(rg.ones(1, 3, 4, 4)).shape
    retrograd.Size([1, 12, 9])
    """

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        self.padding, self.stride = padding, stride

    def forward(self, input: Tensor) -> Tensor:
        return Fv.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, dilation={self.dilation}, "
            f"padding={self.padding}, stride={self.stride}"
        )


class Fold(Module):
    """Combine sliding blocks into an image (col2im), summing overlaps.

    >>> import retrograd as rg
    >>> rg.nn.Fold(output_size=(4, 4), kernel_size=2)(rg.ones(1, 12, 9)).shape
    retrograd.Size([1, 3, 4, 4])
    """

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, input: Tensor) -> Tensor:
        return Fv.fold(
            input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, kernel_size={self.kernel_size}, "
            f"dilation={self.dilation}, padding={self.padding}, stride={self.stride}"
        )

"""Pooling and resampling layers: max, average and adaptive pooling in 1-D and 2-D;
Upsample and PixelShuffle / PixelUnshuffle."""

from __future__ import annotations

from ...tensor import Tensor
from ..functional import pooling as Fp
from ..functional import vision as Fv
from .module import Module

__all__ = [
    "MaxPool1d",
    "MaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "Upsample",
    "UpsamplingNearest2d",
    "UpsamplingBilinear2d",
    "PixelShuffle",
    "PixelUnshuffle",
]


def _single(v):
    return (v,) if isinstance(v, int) else tuple(v)


class _MaxPoolNd(Module):
    _fn = ""  # the nn.functional.pooling function this layer calls

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )

    def forward(self, input: Tensor):
        return getattr(Fp, self._fn)(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            ceil_mode=self.ceil_mode,
            return_indices=self.return_indices,
        )


class MaxPool2d(_MaxPoolNd):
    """2-D max pooling (``stride`` defaults to ``kernel_size``).

    >>> import retrograd as rg
    >>> rg.nn.MaxPool2d(2)(rg.ones(1, 3, 8, 8)).shape
    retrograd.Size([1, 3, 4, 4])
    """

    _fn = "max_pool2d"


class MaxPool1d(_MaxPoolNd):
    """1-D max pooling.

    >>> import retrograd as rg
    >>> rg.nn.MaxPool1d(2)(rg.ones(1, 3, 8)).shape
    retrograd.Size([1, 3, 4])
    """

    _fn = "max_pool1d"


class _AvgPoolNd(Module):
    _fn = ""  # the nn.functional.pooling function this layer calls
    _extra: tuple = ()  # attributes passed after count_include_pad

    def __init__(self, kernel_size, stride, padding, ceil_mode: bool, count_include_pad: bool):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, input: Tensor) -> Tensor:
        return getattr(Fp, self._fn)(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            *(getattr(self, name) for name in self._extra),
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(_AvgPoolNd):
    """2-D average pooling.

    >>> import retrograd as rg
    >>> rg.nn.AvgPool2d(2)(rg.ones(1, 3, 8, 8)).shape
    retrograd.Size([1, 3, 4, 4])
    """

    _fn = "avg_pool2d"
    _extra = ("divisor_override",)

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override=None,
    ):
        stride = stride if stride is not None else kernel_size
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        self.divisor_override = divisor_override


class AvgPool1d(_AvgPoolNd):
    """1-D average pooling.

    >>> import retrograd as rg
    >>> rg.nn.AvgPool1d(2)(rg.ones(1, 3, 8)).shape
    retrograd.Size([1, 3, 4])
    """

    _fn = "avg_pool1d"

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ):
        # stored as 1-tuples, as PyTorch's AvgPool1d does
        super().__init__(
            _single(kernel_size),
            _single(stride if stride is not None else kernel_size),
            _single(padding),
            ceil_mode,
            count_include_pad,
        )


class _AdaptiveNd(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(_AdaptiveNd):
    """Average pooling to a fixed output size (``None`` keeps that input size).

    >>> import retrograd as rg
    >>> rg.nn.AdaptiveAvgPool2d((1, 1))(rg.ones(2, 3, 7, 5)).shape
    retrograd.Size([2, 3, 1, 1])
    """

    def forward(self, input: Tensor) -> Tensor:
        return Fp.adaptive_avg_pool2d(input, self.output_size)


class AdaptiveAvgPool1d(_AdaptiveNd):
    """1-D adaptive average pooling.

    >>> import retrograd as rg
    >>> rg.nn.AdaptiveAvgPool1d(2)(rg.ones(2, 3, 7)).shape
    retrograd.Size([2, 3, 2])
    """

    def forward(self, input: Tensor) -> Tensor:
        return Fp.adaptive_avg_pool1d(input, self.output_size)


class _AdaptiveMax(_AdaptiveNd):
    def __init__(self, output_size, return_indices: bool = False):
        super().__init__(output_size)
        self.return_indices = return_indices


class AdaptiveMaxPool2d(_AdaptiveMax):
    """Max pooling to a fixed output size.

    >>> import retrograd as rg
    >>> rg.nn.AdaptiveMaxPool2d(2)(rg.ones(2, 3, 7, 5)).shape
    retrograd.Size([2, 3, 2, 2])
    """

    def forward(self, input: Tensor):
        return Fp.adaptive_max_pool2d(input, self.output_size, self.return_indices)


class AdaptiveMaxPool1d(_AdaptiveMax):
    """1-D adaptive max pooling.

    >>> import retrograd as rg
    >>> rg.nn.AdaptiveMaxPool1d(2)(rg.ones(2, 3, 7)).shape
    retrograd.Size([2, 3, 2])
    """

    def forward(self, input: Tensor):
        return Fp.adaptive_max_pool1d(input, self.output_size, self.return_indices)


class Upsample(Module):
    """Resize by ``size`` or ``scale_factor`` (``F.interpolate``).

    >>> import retrograd as rg
    >>> rg.nn.Upsample(scale_factor=2, mode="bilinear")(rg.ones(1, 1, 2, 3)).shape
    retrograd.Size([1, 1, 4, 6])
    """

    def __init__(
        self,
        size=None,
        scale_factor=None,
        mode: str = "nearest",
        align_corners=None,
        recompute_scale_factor=None,
    ):
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        self.scale_factor = (
            float(scale_factor)
            if isinstance(scale_factor, int | float)
            else (tuple(float(f) for f in scale_factor) if scale_factor is not None else None)
        )
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input: Tensor) -> Tensor:
        return Fv.interpolate(
            input,
            self.size,
            self.scale_factor,
            self.mode,
            self.align_corners,
            recompute_scale_factor=self.recompute_scale_factor,
        )

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            info = f"scale_factor={self.scale_factor!r}"
        else:
            info = f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """``Upsample(mode='nearest')`` for 4-D inputs."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """``Upsample(mode='bilinear', align_corners=True)`` for 4-D inputs."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class PixelShuffle(Module):
    """``(*, C*r^2, H, W)`` -> ``(*, C, H*r, W*r)``.

    >>> import retrograd as rg
    >>> rg.nn.PixelShuffle(2)(rg.ones(1, 8, 2, 2)).shape
    retrograd.Size([1, 2, 4, 4])
    """

    def __init__(self, upscale_factor: int):
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, input: Tensor) -> Tensor:
        return Fv.pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """``(*, C, H*r, W*r)`` -> ``(*, C*r^2, H, W)``.

    >>> import retrograd as rg
    >>> rg.nn.PixelUnshuffle(2)(rg.ones(1, 2, 4, 4)).shape
    retrograd.Size([1, 8, 2, 2])
    """

    def __init__(self, downscale_factor: int):
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, input: Tensor) -> Tensor:
        return Fv.pixel_unshuffle(input, self.downscale_factor)

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"

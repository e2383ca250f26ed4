"""Resampling and patch ops: ``interpolate``/``upsample``, ``unfold``/``fold``,
``pixel_shuffle``/``pixel_unshuffle``.

``interpolate`` is separable: each spatial dim is resampled by one small constant matrix
(built with PyTorch's source-index rules), applied with a differentiable matmul, so every
mode has exact gradients of any order. Nearest modes gather rows instead.
"""

from __future__ import annotations

import math

import numpy as np

from ...ops.conv import Geo, fold_raw, unfold_raw
from ...ops.indexing import getitem
from ...tensor import Tensor

__all__ = [
    "interpolate",
    "upsample",
    "upsample_nearest",
    "upsample_bilinear",
    "unfold",
    "fold",
    "pixel_shuffle",
    "pixel_unshuffle",
]

_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")
_LINEAR_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


def _scale(in_size, out_size, align_corners, scale_factor):
    """PyTorch's ``area_pixel_compute_scale`` (float32 arithmetic, as its CPU kernels)."""
    if align_corners:
        return np.float32((in_size - 1) / (out_size - 1)) if out_size > 1 else np.float32(0)
    if scale_factor is not None and scale_factor > 0:
        return np.float32(1.0 / scale_factor)
    return np.float32(in_size / out_size)


def _nearest_index(in_size, out_size, scale, exact):
    dst = np.arange(out_size, dtype=np.float32)
    if exact:
        src = np.floor((dst + np.float32(0.5)) * scale)
    else:
        src = np.floor(dst * scale)
    return np.minimum(src.astype(np.int64), in_size - 1)


def _linear_matrix(in_size, out_size, scale, align_corners, dt):
    dst = np.arange(out_size, dtype=np.float32)
    if align_corners:
        src = dst * scale
    else:
        src = np.maximum(scale * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    i0 = src.astype(np.int64)
    i0 = np.minimum(i0, in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam1 = (src - i0).astype(np.float64)
    m = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    np.add.at(m, (rows, i0), 1.0 - lam1)
    np.add.at(m, (rows, i1), lam1)
    return m.astype(dt)


def _cubic_matrix(in_size, out_size, scale, align_corners, dt):
    A = -0.75
    dst = np.arange(out_size, dtype=np.float32)
    src = dst * scale if align_corners else scale * (dst + np.float32(0.5)) - np.float32(0.5)
    i = np.floor(src).astype(np.int64)
    t = (src - i).astype(np.float64)

    def near(x):  # |x| <= 1
        return ((A + 2) * x - (A + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A

    ws = (far(t + 1), near(t), near(1 - t), far(2 - t))
    m = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    for k, w in enumerate(ws):
        np.add.at(m, (rows, np.clip(i - 1 + k, 0, in_size - 1)), w)
    return m.astype(dt)


def _apply_along(x: Tensor, dim: int, m: np.ndarray) -> Tensor:
    """Resample dim ``dim`` of ``x`` by the ``(out, in)`` matrix ``m``."""
    mt = Tensor._make(np.ascontiguousarray(m.T))
    if dim == x.dim() - 1:
        return x @ mt
    return (x.transpose(dim, -1) @ mt).transpose(dim, -1)


def interpolate(
    input: Tensor,
    size=None,
    scale_factor=None,
    mode: str = "nearest",
    align_corners=None,
    recompute_scale_factor=None,
    antialias: bool = False,
) -> Tensor:
    """Resize the spatial dims of ``(N, C, *spatial)`` to ``size`` or by ``scale_factor``.

    Modes: 'nearest', 'nearest-exact', 'linear' (3-D), 'bilinear'/'bicubic' (4-D),
    'trilinear' (5-D), 'area'; ``align_corners`` for the interpolating modes.

    >>> import retrograd as rg
    >>> x = rg.tensor([[[1.0, 2.0]]])
    >>> rg.nn.functional.interpolate(x, scale_factor=2, mode="linear").tolist()
    [[[1.0, 1.25, 1.75, 2.0]]]
    """
    if mode not in _MODES:
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.dim()}D) for "
            f"the modes: nearest | linear | bilinear | bicubic | trilinear | area | nearest-exact "
            f"(got {mode})"
        )
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    nsp = input.dim() - 2
    if nsp < 1 or nsp > 3:
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.dim()}D) for the "
            f"modes: nearest | linear | bilinear | bicubic | trilinear | area | nearest-exact "
            f"(got {mode})"
        )
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError(
                "align_corners option can only be set with the interpolating modes: "
                "linear | bilinear | bicubic | trilinear"
            )
    else:
        if _LINEAR_DIMS[mode] != nsp:
            need = _LINEAR_DIMS[mode] + 2
            raise NotImplementedError(
                f"Got {input.dim()}D input, but {mode} mode needs {need}D input"
            )
        align_corners = bool(align_corners)
    spatial = list(input.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        sizes = [size] * nsp if isinstance(size, int) else list(size)
        if len(sizes) != nsp:
            raise ValueError(
                "Input and output must have the same number of spatial dimensions, but got input "
                f"with spatial dimensions of {spatial} and output size of {sizes}. Please provide "
                "input tensor in (N, C, d1, d2, ...,dK) format and output size in (o1, o2, ...,oK) "
                "format."
            )
        sizes = [int(s) for s in sizes]
        scales = [None] * nsp
    elif scale_factor is not None:
        if isinstance(scale_factor, int | float):
            scales = [scale_factor] * nsp
        else:
            scales = list(scale_factor)
        if len(scales) != nsp:
            raise ValueError(
                "Input and scale_factor must have the same number of spatial dimensions, but got "
                f"input with spatial dimensions of {spatial} and scale_factor of shape "
                f"{scales}. Please provide input tensor in (N, C, d1, d2, ...,dK) format and "
                "scale_factor in (s1, s2, ...,sK) format."
            )
        sizes = [int(math.floor(float(i) * float(s))) for i, s in zip(spatial, scales)]
        if recompute_scale_factor:
            scales = [None] * nsp
    else:
        raise ValueError("either size or scale_factor should be defined")
    if any(s <= 0 for s in sizes):
        raise RuntimeError(
            f"Input and output sizes should be greater than 0, but got input {spatial} and output "
            f"{sizes}"
        )
    if mode == "area":
        from .pooling import adaptive_avg_pool1d, adaptive_avg_pool2d

        if nsp == 1:
            return adaptive_avg_pool1d(input, sizes)
        if nsp == 2:
            return adaptive_avg_pool2d(input, sizes)
        raise NotImplementedError("interpolate: 'area' mode supports 3D and 4D inputs")
    dt = input._data.dtype
    x = input
    for i in range(nsp):
        dim = 2 + i
        n_in, n_out = spatial[i], sizes[i]
        nearest = mode in ("nearest", "nearest-exact")
        sc = _scale(n_in, n_out, False if nearest else align_corners, scales[i])
        if nearest:
            if n_in == n_out:
                continue
            idx = _nearest_index(n_in, n_out, sc, mode == "nearest-exact")
            x = getitem(x, (slice(None),) * dim + (idx,))
        elif mode == "bicubic":
            x = _apply_along(x, dim, _cubic_matrix(n_in, n_out, sc, align_corners, dt))
        else:
            x = _apply_along(x, dim, _linear_matrix(n_in, n_out, sc, align_corners, dt))
    return x


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Deprecated alias of :func:`interpolate`."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(..., mode='nearest')``."""
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(..., mode='bilinear', align_corners=True)``."""
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def _pair(v, name):
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(i) for i in v)
    if len(v) == 1:
        return v * 2
    if len(v) != 2:
        raise RuntimeError(f"{name} must be an int or a tuple of 2 ints, got {v}")
    return v


def _fold_args(kernel_size, dilation, padding, stride, op):
    k, d = _pair(kernel_size, "kernel_size"), _pair(dilation, "dilation")
    p, s = _pair(padding, "padding"), _pair(stride, "stride")
    if min(k) <= 0:
        raise RuntimeError(f"{op}: kernel size should be greater than zero, but got {k}")
    if min(d) <= 0:
        raise RuntimeError(f"{op}: dilation should be greater than zero, but got {d}")
    if min(s) <= 0:
        raise RuntimeError(f"{op}: stride should be greater than zero, but got {s}")
    if min(p) < 0:
        raise RuntimeError(f"{op}: padding should be non-negative, but got {p}")
    return k, d, p, s


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Extract sliding blocks: ``(N, C, H, W)`` -> ``(N, C*kh*kw, L)`` (im2col).

    >>> import retrograd as rg
    >>> rg.nn.functional.unfold(rg.ones(1, 2, 4, 4), 2).shape
    retrograd.Size([1, 8, 9])
    """
    if input.dim() not in (3, 4):
        raise RuntimeError(
            f"Input Error: Only 3D or 4D input Tensors are supported (got {input.dim()}D)"
        )
    k, d, p, s = _fold_args(kernel_size, dilation, padding, stride, "unfold")
    batched = input.dim() == 4
    x = input if batched else input.unsqueeze(0)
    h, w = x.shape[2:]
    geo = Geo(k[0], k[1], s[0], s[1], d[0], d[1], p[0], p[0], p[1], p[1], 1, h, w)
    oh, ow = geo.out_hw
    if oh <= 0 or ow <= 0:
        raise RuntimeError(
            f"Given input with spatial size ({h}, {w}), kernel_size={k}, dilation={d}, "
            f"padding={p}, calculated shape of the array of sliding blocks as ({oh}, {ow}), but "
            "its components must be at least one."
        )
    out = unfold_raw(x, geo)
    return out if batched else out.squeeze(0)


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """Combine sliding blocks into an image, summing overlaps (col2im; inverse layout of
    :func:`unfold`): ``(N, C*kh*kw, L)`` -> ``(N, C, H, W)``.

    >>> import retrograd as rg
    >>> cols = rg.nn.functional.unfold(rg.ones(1, 1, 3, 3), 2)
    >>> rg.nn.functional.fold(cols, 3, 2).tolist()
    [[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]]
    """
    if input.dim() not in (2, 3):
        raise RuntimeError(
            f"Input Error: Only unbatched (2D) or batched (3D) input Tensors are supported "
            f"(got {input.dim()}D)"
        )
    k, d, p, s = _fold_args(kernel_size, dilation, padding, stride, "fold")
    osz = _pair(output_size, "output_size")
    batched = input.dim() == 3
    x = input if batched else input.unsqueeze(0)
    ck, L = x.shape[1:]
    kk = k[0] * k[1]
    if ck % kk:
        raise RuntimeError(
            "Expected size of input's dimension 1 to be divisible by the product of kernel_size, "
            f"but got input.size(1)={ck} and kernel_size={k}"
        )
    geo = Geo(k[0], k[1], s[0], s[1], d[0], d[1], p[0], p[0], p[1], p[1], 1, osz[0], osz[1])
    oh, ow = geo.out_hw
    if oh <= 0 or ow <= 0 or oh * ow != L:
        raise RuntimeError(
            f"Given output_size={osz}, kernel_size={k}, dilation={d}, padding={p}, stride={s}, "
            "expected size of input's dimension 2 to match the calculated number of sliding "
            f"blocks {oh} * {ow} = {oh * ow}, but got input.size(2)={L}."
        )
    out = fold_raw(x, geo, ck // kk)
    return out if batched else out.squeeze(0)


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """``(*, C*r^2, H, W)`` -> ``(*, C, H*r, W*r)``.

    >>> import retrograd as rg
    >>> rg.nn.functional.pixel_shuffle(rg.ones(1, 8, 2, 3), 2).shape
    retrograd.Size([1, 2, 4, 6])
    """
    r = int(upscale_factor)
    if input.dim() < 3:
        raise RuntimeError(
            f"pixel_shuffle expects input to have at least 3 dimensions, but got input with "
            f"{input.dim()} dimension(s)"
        )
    *lead, c, h, w = input.shape
    if r <= 0 or c % (r * r):
        raise RuntimeError(
            f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square "
            f"of upscale_factor, but input.size(-3)={c} is not divisible by {r * r}"
        )
    oc = c // (r * r)
    nl = len(lead)
    x = input.reshape(*lead, oc, r, r, h, w)
    perm = list(range(nl)) + [nl, nl + 3, nl + 1, nl + 4, nl + 2]
    return x.permute(*perm).reshape(*lead, oc, h * r, w * r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """``(*, C, H*r, W*r)`` -> ``(*, C*r^2, H, W)`` (inverse of :func:`pixel_shuffle`).

    >>> import retrograd as rg
    >>> rg.nn.functional.pixel_unshuffle(rg.ones(1, 2, 4, 6), 2).shape
    retrograd.Size([1, 8, 2, 3])
    """
    r = int(downscale_factor)
    if input.dim() < 3:
        raise RuntimeError(
            f"pixel_unshuffle expects input to have at least 3 dimensions, but got input with "
            f"{input.dim()} dimension(s)"
        )
    *lead, c, h, w = input.shape
    if r <= 0 or h % r or w % r:
        raise RuntimeError(
            f"pixel_unshuffle expects height and width to be divisible by downscale_factor, but "
            f"got input of size {list(input.shape)} and downscale_factor={r}"
        )
    nl = len(lead)
    x = input.reshape(*lead, c, h // r, r, w // r, r)
    perm = list(range(nl)) + [nl, nl + 2, nl + 4, nl + 1, nl + 3]
    return x.permute(*perm).reshape(*lead, c * r * r, h // r, w // r)

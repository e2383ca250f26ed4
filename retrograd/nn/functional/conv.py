"""Convolutions: ``conv1d``, ``conv2d``, ``conv_transpose1d``, ``conv_transpose2d``.

All reduce to the fused 2-D primitives of ``retrograd.ops.conv`` (1-D ones see a height-1
image), so they share one im2col + GEMM path and its gradients of any order.
"""

from __future__ import annotations

from ...ops.conv import Geo, conv2d_raw, conv_input_grad_raw
from ...ops.movement import squeeze, unsqueeze
from ...tensor import Tensor

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"]


def _pair(v, n: int, name: str, op: str) -> tuple:
    if isinstance(v, int):
        return (int(v),) * n
    v = tuple(int(i) for i in v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise RuntimeError(
            f"{op}: expected {name} to be a single integer value or a list of {n} values"
        )
    return v


def _check_dims(input: Tensor, weight: Tensor, nsp: int, op: str) -> bool:
    """Whether input is batched; raises PyTorch's errors for bad ranks."""
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{op}() expected Tensor arguments for input and weight")
    nd = input._data.ndim
    if nd not in (nsp + 1, nsp + 2):
        raise RuntimeError(
            f"Expected {nsp + 1}D (unbatched) or {nsp + 2}D (batched) input to {op}, but got "
            f"input of size: {list(input._data.shape)}"
        )
    if weight._data.ndim != nsp + 2:
        raise RuntimeError(
            f"{op}: expected weight to be {nsp + 2}-dimensional, but got weight of size "
            f"{list(weight._data.shape)}"
        )
    if input._data.dtype != weight._data.dtype:
        raise RuntimeError(
            f"{op}: Input type ({input.dtype.name}) and weight type ({weight.dtype.name}) "
            "should be the same"
        )
    if input._data.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating point input, got {input.dtype.name}")
    return nd == nsp + 2


def _check_bias(bias, n_out: int, weight: Tensor, op: str):
    if bias is None:
        return
    if bias._data.shape != (n_out,):
        raise RuntimeError(
            f"Given weight of size {list(weight._data.shape)}, expected bias to be 1-dimensional "
            f"with {n_out} elements, but got bias of size {list(bias._data.shape)} instead"
        )
    if bias._data.dtype != weight._data.dtype:
        raise RuntimeError(
            f"{op}: Input type ({weight.dtype.name}) and bias type ({bias.dtype.name}) should be "
            "the same"
        )


def _check_positive(stride, dilation, op):
    if any(s <= 0 for s in stride):
        raise RuntimeError(f"{op}: non-positive stride is not supported")
    if any(d <= 0 for d in dilation):
        raise RuntimeError(f"{op}: dilation should be greater than zero")


def _conv_geo(input, weight, stride, padding, dilation, groups, nsp, op) -> Geo:
    """Check the arguments of a batched 2-D conv and build its geometry."""
    n, c, h, w = input._data.shape
    o, cg, kh, kw = weight._data.shape
    if groups <= 0:
        raise RuntimeError(f"{op}: non-positive groups is not supported")
    if o % groups:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
            f"but got weight of size {_user_shape(weight, nsp)} instead"
        )
    wshape, ishape = _user_shape(weight, nsp), _user_shape(input, nsp)
    if cg * groups != c:
        raise RuntimeError(
            f"Given groups={groups}, weight of size {wshape}, expected input{ishape} to have "
            f"{cg * groups} channels, but got {c} channels instead"
        )
    _check_positive(stride, dilation, op)
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise RuntimeError(
                    f"{op}: padding='same' is not supported for strided convolutions"
                )
            pads = []
            for k, d in ((kh, dilation[0]), (kw, dilation[1])):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]  # the extra pixel goes right/bottom
            pads = tuple(pads)
        else:
            raise ValueError(
                f"Invalid padding string '{padding}', should be one of ('valid', 'same')"
            )
    else:
        if any(p < 0 for p in padding):
            raise RuntimeError(f"{op}: negative padding is not supported")
        pads = (padding[0], padding[0], padding[1], padding[1])
    geo = Geo(kh, kw, stride[0], stride[1], dilation[0], dilation[1], *pads, groups, h, w)
    eff_h = h + pads[0] + pads[1]
    eff_w = w + pads[2] + pads[3]
    ekh, ekw = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    if eff_h < ekh or eff_w < ekw:
        if nsp == 1:
            raise RuntimeError(
                f"Calculated padded input size per channel: ({eff_w}). Kernel size: ({ekw}). "
                "Kernel size can't be greater than actual input size"
            )
        raise RuntimeError(
            f"Calculated padded input size per channel: ({eff_h} x {eff_w}). Kernel size: "
            f"({ekh} x {ekw}). Kernel size can't be greater than actual input size"
        )
    return geo


def _user_shape(t, nsp):
    s = list(t._data.shape)
    return s if nsp == 2 else s[:2] + s[3:]


def _to2d(input, weight, nsp):
    """1-D convs run as 2-D ones over a height-1 image."""
    if nsp == 1:
        return unsqueeze(input, 2), unsqueeze(weight, 2)
    return input, weight


def _conv(input, weight, bias, stride, padding, dilation, groups, nsp, op):
    batched = _check_dims(input, weight, nsp, op)
    if not batched:
        input = unsqueeze(input, 0)
    stride = _pair(stride, nsp, "stride", op)
    dilation = _pair(dilation, nsp, "dilation", op)
    if not isinstance(padding, str):
        padding = _pair(padding, nsp, "padding", op)
    _check_bias(bias, weight._data.shape[0], weight, op)
    x, w = _to2d(input, weight, nsp)
    if nsp == 1:
        stride, dilation = (1,) + stride, (1,) + dilation
        if not isinstance(padding, str):
            padding = (0,) + padding
    geo = _conv_geo(x, w, stride, padding, dilation, groups, nsp, op)
    out = conv2d_raw(x, w, bias, geo)
    if nsp == 1:
        out = squeeze(out, 2)
    return out if batched else squeeze(out, 0)


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation of ``input (N, C, H, W)`` with ``weight (O, C/groups, kh, kw)``.

    ``padding`` is an int, a pair, ``'valid'`` or ``'same'``.

    >>> import retrograd as rg
    >>> x, w = rg.ones(1, 1, 4, 4), rg.ones(2, 1, 3, 3)
    >>> rg.nn.functional.conv2d(x, w, padding=1).shape
    retrograd.Size([1, 2, 4, 4])
    """
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


def conv1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
) -> Tensor:
    """1-D cross-correlation of ``input (N, C, L)`` with ``weight (O, C/groups, k)``.

    >>> import retrograd as rg
    >>> rg.nn.functional.conv1d(rg.ones(1, 2, 5), rg.ones(3, 2, 3)).shape
    retrograd.Size([1, 3, 3])
    """
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def _conv_t(input, weight, bias, stride, padding, output_padding, groups, dilation, nsp, op):
    batched = _check_dims(input, weight, nsp, op)
    if not batched:
        input = unsqueeze(input, 0)
    stride = _pair(stride, nsp, "stride", op)
    padding = _pair(padding, nsp, "padding", op)
    output_padding = _pair(output_padding, nsp, "output_padding", op)
    dilation = _pair(dilation, nsp, "dilation", op)
    _check_positive(stride, dilation, op)
    if any(p < 0 for p in padding):
        raise RuntimeError(f"{op}: negative padding is not supported")
    for op_, s, d in zip(output_padding, stride, dilation):
        if op_ >= s and op_ >= d:
            raise RuntimeError(
                f"{op}: output padding must be smaller than either stride or dilation, but got "
                f"output_padding={output_padding}, stride={stride}, dilation={dilation}"
            )
    cin = weight._data.shape[0]
    c = input._data.shape[1]
    if groups <= 0:
        raise RuntimeError(f"{op}: non-positive groups is not supported")
    if cin != c or cin % groups:
        raise RuntimeError(
            f"Given transposed=1, weight of size {_user_shape(weight, nsp)}, expected "
            f"input{_user_shape(input, nsp)} to have {cin} channels, but got {c} channels instead"
        )
    _check_bias(bias, weight._data.shape[1] * groups, weight, op)
    x, w = _to2d(input, weight, nsp)
    if nsp == 1:
        stride, padding = (1,) + stride, (0,) + padding
        output_padding, dilation = (0,) + output_padding, (1,) + dilation
    k = w._data.shape[2:]
    size = [
        (i - 1) * s - 2 * p + d * (kk - 1) + op_ + 1
        for i, s, p, d, kk, op_ in zip(
            x._data.shape[2:], stride, padding, dilation, k, output_padding
        )
    ]
    if any(v <= 0 for v in size):
        ins = " x ".join(map(str, input._data.shape[2:]))
        outs = " x ".join(map(str, size[2 - nsp :]))
        raise RuntimeError(
            f"{op}: Given input size per channel: ({ins}). Calculated output size per channel: "
            f"({outs}). Output size is too small"
        )
    # bottom/right pads p - output_padding make the conv of a size-`size` input give back
    # exactly the input's spatial size (floor division would round up when op >= stride)
    geo = Geo(
        k[0],
        k[1],
        stride[0],
        stride[1],
        dilation[0],
        dilation[1],
        padding[0],
        padding[0] - output_padding[0],
        padding[1],
        padding[1] - output_padding[1],
        groups,
        size[0],
        size[1],
    )
    out = conv_input_grad_raw(x, w, geo)
    if bias is not None:
        out = out + bias.reshape(-1, 1, 1)
    if nsp == 1:
        out = squeeze(out, 2)
    return out if batched else squeeze(out, 0)


def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    output_padding=0,
    groups: int = 1,
    dilation=1,
) -> Tensor:
    """Transposed 2-D convolution (the gradient of ``conv2d`` w.r.t. its input);
    ``weight`` is ``(C_in, C_out/groups, kh, kw)``.

    >>> import retrograd as rg
    >>> rg.nn.functional.conv_transpose2d(rg.ones(1, 2, 3, 3), rg.ones(2, 1, 2, 2), stride=2).shape
    retrograd.Size([1, 1, 6, 6])
    """
    return _conv_t(
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        2,
        "conv_transpose2d",
    )


def conv_transpose1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    output_padding=0,
    groups: int = 1,
    dilation=1,
) -> Tensor:
    """Transposed 1-D convolution; ``weight`` is ``(C_in, C_out/groups, k)``.

    >>> import retrograd as rg
    >>> rg.nn.functional.conv_transpose1d(rg.ones(1, 2, 3), rg.ones(2, 1, 2), stride=2).shape
    retrograd.Size([1, 1, 6])
    """
    return _conv_t(
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        1,
        "conv_transpose1d",
    )

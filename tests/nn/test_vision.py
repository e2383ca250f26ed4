"""interpolate / Upsample, unfold / fold (Unfold, Fold), pixel_shuffle vs PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import retrograd as rg
import retrograd.nn.functional as F
from retrograd.autograd import gradcheck, gradgradcheck

RTOL, ATOL = 1e-4, 1e-5


def _run(torch, f_rg, f_t, shape, atol=ATOL):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    xr, xt = rg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yr, yt = f_rg(xr), f_t(xt)
    assert tuple(yr.shape) == tuple(yt.shape) and yr.dtype == rg.float32
    np.testing.assert_allclose(yr.detach().numpy(), yt.detach().numpy(), rtol=RTOL, atol=atol)
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yr.backward(rg.tensor(g))
    yt.backward(torch.tensor(g))
    assert xr.grad.dtype == rg.float32
    np.testing.assert_allclose(xr.grad.numpy(), xt.grad.numpy(), rtol=RTOL, atol=atol)


SIZES = [dict(size=(7, 5)), dict(scale_factor=2), dict(scale_factor=1.7),
         dict(scale_factor=(0.5, 1.3)), dict(size=(3, 11)), dict(size=6)]


@pytest.mark.parametrize("sz", SIZES)
@pytest.mark.parametrize("mode,ac", [("nearest", None), ("nearest-exact", None), ("area", None),
                                     ("bilinear", False), ("bilinear", True), ("bicubic", False),
                                     ("bicubic", True)])
def test_interpolate_2d_matches_torch(torch, sz, mode, ac):
    tf = torch.nn.functional
    kw = dict(sz, mode=mode)
    if ac is not None:
        kw["align_corners"] = ac
    _run(torch, lambda x: F.interpolate(x, **kw), lambda x: tf.interpolate(x, **kw),
         (2, 3, 6, 4))


@pytest.mark.parametrize("kw", [dict(scale_factor=2.5, mode="linear"),
                                dict(scale_factor=2.5, mode="linear", recompute_scale_factor=True),
                                dict(size=4, mode="linear", align_corners=True),
                                dict(scale_factor=3)])
def test_interpolate_1d_matches_torch(torch, kw):
    tf = torch.nn.functional
    _run(torch, lambda x: F.interpolate(x, **kw), lambda x: tf.interpolate(x, **kw),
         (2, 3, 6))


@pytest.mark.parametrize("kw", [dict(size=(5, 3, 7), mode="trilinear"), dict(scale_factor=2)])
def test_interpolate_3d_matches_torch(torch, kw):
    tf = torch.nn.functional
    _run(torch, lambda x: F.interpolate(x, **kw), lambda x: tf.interpolate(x, **kw),
         (1, 2, 3, 4, 5))


@pytest.mark.parametrize("args,kw", [((), dict(scale_factor=2)),
                                     ((), dict(size=(5, 9), mode="bilinear", align_corners=True)),
                                     ((), dict(scale_factor=1.5, mode="bicubic"))])
def test_upsample_module(torch, args, kw):
    m, tm = rg.nn.Upsample(*args, **kw), torch.nn.Upsample(*args, **kw)
    _run(torch, m, tm, (2, 3, 4, 6))
    assert repr(m) == repr(tm)
    _run(torch, rg.nn.UpsamplingBilinear2d(scale_factor=2),
         torch.nn.UpsamplingBilinear2d(scale_factor=2),
         (1, 2, 3, 3))
    _run(torch, rg.nn.UpsamplingNearest2d(size=5), torch.nn.UpsamplingNearest2d(size=5),
         (1, 2, 3, 3))


def test_gradcheck_interpolate():
    rng = np.random.default_rng(0)
    x = rg.tensor(rng.standard_normal((1, 2, 3, 4)), requires_grad=True)
    for kw in (dict(scale_factor=2, mode="bilinear"),
               dict(size=(5, 3), mode="bicubic", align_corners=True),
               dict(size=(5, 7), mode="nearest")):
        assert gradcheck(lambda x, kw=kw: F.interpolate(x, **kw), (x,))
    assert gradgradcheck(lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear"), (x,))


def test_interpolate_errors():
    x = rg.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="only one of size or scale_factor"):
        F.interpolate(x, size=2, scale_factor=2)
    with pytest.raises(ValueError, match="either size or scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="align_corners option can only be set"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(NotImplementedError, match="Got 4D input, but linear mode needs 3D input"):
        F.interpolate(x, scale_factor=2, mode="linear")
    with pytest.raises(ValueError, match="same number of spatial dimensions"):
        F.interpolate(x, size=(2, 2, 2))


UNFOLD = [dict(kernel_size=2), dict(kernel_size=(2, 3), dilation=(2, 1), padding=1, stride=(1, 2)),
          dict(kernel_size=3, stride=2, padding=1)]


@pytest.mark.parametrize("kw", UNFOLD)
def test_unfold_fold_match_torch(torch, kw):
    tf = torch.nn.functional
    _run(torch, lambda x: F.unfold(x, **kw), lambda x: tf.unfold(x, **kw), (2, 3, 7, 6))
    _run(torch, lambda x: F.unfold(x, **kw), lambda x: tf.unfold(x, **kw), (3, 7, 6))  # unbatched
    L = tuple(tf.unfold(torch.zeros(2, 3, 7, 6), **kw).shape)
    _run(torch, lambda x: F.fold(x, (7, 6), **kw), lambda x: tf.fold(x, (7, 6), **kw), L)
    _run(torch, rg.nn.Fold((7, 6), **kw), torch.nn.Fold((7, 6), **kw), L)
    _run(torch, rg.nn.Unfold(**kw), torch.nn.Unfold(**kw), (2, 3, 7, 6))
    assert repr(rg.nn.Unfold(**kw)) == repr(torch.nn.Unfold(**kw))


def test_gradcheck_unfold_fold():
    rng = np.random.default_rng(0)
    x = rg.tensor(rng.standard_normal((1, 2, 4, 5)), requires_grad=True)
    f = lambda x: F.unfold(x, (2, 3), padding=1, stride=(2, 1))  # noqa: E731
    assert gradcheck(f, (x,))
    assert gradgradcheck(f, (x,))
    cols = rg.tensor(rng.standard_normal(tuple(f(x).shape)), requires_grad=True)
    g = lambda c: F.fold(c, (4, 5), (2, 3), padding=1, stride=(2, 1))  # noqa: E731
    assert gradcheck(g, (cols,))
    assert gradgradcheck(g, (cols,))


def test_fold_errors():
    with pytest.raises(RuntimeError, match="divisible by the product of kernel_size"):
        F.fold(rg.zeros(1, 5, 9), (4, 4), 2)
    with pytest.raises(RuntimeError, match="calculated number of sliding blocks 3 \\* 3 = 9"):
        F.fold(rg.zeros(1, 4, 8), (4, 4), 2)
    with pytest.raises(RuntimeError, match="Only 3D or 4D"):
        F.unfold(rg.zeros(4, 4), 2)


def test_pixel_shuffle(torch):
    _run(torch, rg.nn.PixelShuffle(2), torch.nn.PixelShuffle(2), (2, 8, 3, 4))
    _run(torch, rg.nn.PixelUnshuffle(2), torch.nn.PixelUnshuffle(2), (2, 2, 4, 6))
    _run(torch, lambda x: F.pixel_shuffle(x, 3), lambda x: torch.nn.functional.pixel_shuffle(x, 3),
         (9, 2, 2))
    with pytest.raises(RuntimeError, match="divisible by the square of upscale_factor"):
        F.pixel_shuffle(rg.zeros(1, 6, 2, 2), 2)

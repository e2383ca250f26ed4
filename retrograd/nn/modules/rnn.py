"""Recurrent layers: RNN, LSTM, GRU (multi-layer, bidirectional) and their cells.

Each layer projects the inputs of all time steps with ONE GEMM; the time loop then does one
small GEMM per step (``h @ W_hh^T``) plus elementwise gate math, all with differentiable
ops, so higher-order gradients work. Parameter names, shapes, gate order (LSTM i, f, g, o;
GRU r, z, n with ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``) and initialisation
U(-1/sqrt(hidden), 1/sqrt(hidden)) follow PyTorch, so state dicts exchange.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ... import creation
from ...autograd.function import Function
from ...autograd.grad_mode import STATE
from ...autograd.node import Node, apply
from ...ops.elementwise import relu, sigmoid, tanh
from ...ops.movement import cat, stack
from ...ops.nn_ops import linear
from ...tensor import Tensor
from .. import init
from ..functional.dropout import dropout as _dropout
from ..parameter import Parameter
from .module import Module

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]


class _Steps(Function):
    """Split a ``(T, ...)`` tensor into its T steps with one node.

    NOTE: ``unbind`` records T slice nodes whose vjps each allocate a full-size zero
    gradient (O(T^2) work); this vjp is one ``stack``."""

    @staticmethod
    def forward(ctx, x):
        return tuple(Tensor._make(x._data[i]) for i in range(x._data.shape[0]))

    @staticmethod
    def backward(ctx, *grads):
        return stack(list(grads), 0)


def _steps(x: Tensor):
    out = _Steps.apply(x)
    return out if isinstance(out, tuple) else (out,)


_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _sig(a: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(a))  # overflow-free in both tails
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)


class _LSTMCell(Node):
    """Gate math of one LSTM step: the input and hidden parts of the pre-activations
    ``x, gh (N, 4H)`` (gate order i, f, g, o) and ``c (N, H)`` -> ``[h | c']`` as one
    ``(N, 2H)`` array.

    NOTE: fused because the time loop runs it T times per layer: one node instead of
    twelve. The vjp has a NumPy path for plain backward and the same formulas in Tensor ops
    (on recomputed activations) under ``create_graph``, so higher-order gradients work."""

    __slots__ = ("acts",)
    save_inputs = (0, 1, 2)

    def forward(self, x, gh, c):
        a = x + gh
        hs = c.shape[1]
        i, f, o = _sig(a[:, :hs]), _sig(a[:, hs : 2 * hs]), _sig(a[:, 3 * hs :])
        g = np.tanh(a[:, 2 * hs : 3 * hs])
        c2 = f * c + i * g
        tc = np.tanh(c2)
        self.acts = (i, f, g, o, tc)
        return np.concatenate([o * tc, c2], axis=1)

    def backward(self, grad):
        x, gh, c = self.saved_tensors()
        hs = c._data.shape[1]
        if not STATE.enabled:
            i, f, g, o, tc = self.acts
            gd = grad._data
            gh, gc = gd[:, :hs], gd[:, hs:]
            dc = gc + gh * o * (1 - tc * tc)
            da = np.concatenate(
                [
                    dc * g * i * (1 - i),
                    dc * c._data * f * (1 - f),
                    dc * i * (1 - g * g),
                    gh * tc * o * (1 - o),
                ],
                axis=1,
            )
            da_t = Tensor._make(da)
            return da_t, da_t, Tensor._make(dc * f)
        ai, af, ag, ao = (x + gh).chunk(4, 1)
        i, f, g, o = sigmoid(ai), sigmoid(af), tanh(ag), sigmoid(ao)
        tc = tanh(f * c + i * g)
        gh, gc = grad[:, :hs], grad[:, hs:]
        dc = gc + gh * o * (1 - tc * tc)
        da = cat(
            [
                dc * g * i * (1 - i),
                dc * c * f * (1 - f),
                dc * i * (1 - g * g),
                gh * tc * o * (1 - o),
            ],
            1,
        )
        return da, da, dc * f

    @classmethod
    def op_name(cls):
        return "LSTMCell"


class _GRUCell(Node):
    """Gate math of one GRU step: input part ``x (N, 3H)``, hidden part ``gh (N, 3H)``
    (``W_hh h + b_hh``) and ``h (N, H)`` -> ``h'``; fused like :class:`_LSTMCell`."""

    __slots__ = ("acts",)
    save_inputs = (0, 1, 2)

    def forward(self, x, gh, h):
        hs = h.shape[1]
        r = _sig(x[:, :hs] + gh[:, :hs])
        z = _sig(x[:, hs : 2 * hs] + gh[:, hs : 2 * hs])
        n = np.tanh(x[:, 2 * hs :] + r * gh[:, 2 * hs :])
        self.acts = (r, z, n)
        return n + z * (h - n)

    def backward(self, grad):
        x, gh, h = self.saved_tensors()
        hs = h._data.shape[1]
        if not STATE.enabled:
            r, z, n = self.acts
            g = grad._data
            dan = g * (1 - z) * (1 - n * n)
            dar = dan * gh._data[:, 2 * hs :] * r * (1 - r)
            daz = g * (h._data - n) * z * (1 - z)
            gx = np.concatenate([dar, daz, dan], axis=1)
            ggh = np.concatenate([dar, daz, dan * r], axis=1)
            return Tensor._make(gx), Tensor._make(ggh), Tensor._make(g * z)
        xr, xz, xn = x.chunk(3, 1)
        hr, hz, hn = gh.chunk(3, 1)
        r, z = sigmoid(xr + hr), sigmoid(xz + hz)
        n = tanh(xn + r * hn)
        dan = grad * (1 - z) * (1 - n * n)
        dar = dan * hn * r * (1 - r)
        daz = grad * (h - n) * z * (1 - z)
        return cat([dar, daz, dan], 1), cat([dar, daz, dan * r], 1), grad * z

    @classmethod
    def op_name(cls):
        return "GRUCell"


def _lstm_step(x_t, h, c, w_hh, b_hh, w_hr):
    hc = apply(_LSTMCell, (x_t, linear(h, w_hh, b_hh), c))
    hs = c.shape[1]
    h, c = hc[:, :hs], hc[:, hs:]
    if w_hr is not None:
        h = linear(h, w_hr)
    return h, c


def _gru_step(x_t, h, w_hh, b_hh):
    return apply(_GRUCell, (x_t, linear(h, w_hh, b_hh), h))


def _rnn_step(x_t, h, w_hh, b_hh, act):
    return act(x_t + linear(h, w_hh, b_hh))


class RNNBase(Module):
    """Shared parameters, checks and the layer/direction loop of RNN, LSTM and GRU."""

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        num_directions = 2 if bidirectional else 1
        bad = isinstance(dropout, bool) or not isinstance(dropout, int | float)
        if bad or not 0 <= dropout <= 1:
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of an "
                "element being zeroed"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                UserWarning,
                stacklevel=2,
            )
        if not isinstance(hidden_size, int) or isinstance(hidden_size, bool):
            raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError(
                "proj_size should be a positive integer or zero to disable projections"
            )
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size if proj_size > 0 else hidden_size
        self._flat_weights_names = []
        for layer in range(num_layers):
            for direction in range(num_directions):
                layer_in = input_size if layer == 0 else real_hidden * num_directions
                sfx = "_reverse" if direction == 1 else ""
                params = [
                    (f"weight_ih_l{layer}{sfx}", (gate_size, layer_in)),
                    (f"weight_hh_l{layer}{sfx}", (gate_size, real_hidden)),
                ]
                if bias:
                    params += [
                        (f"bias_ih_l{layer}{sfx}", (gate_size,)),
                        (f"bias_hh_l{layer}{sfx}", (gate_size,)),
                    ]
                if proj_size > 0:
                    params.append((f"weight_hr_l{layer}{sfx}", (proj_size, hidden_size)))
                for name, shape in params:
                    setattr(self, name, Parameter(creation.empty(*shape, dtype=dtype)))
                    self._flat_weights_names.append(name)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """No-op (PyTorch compacts cuDNN weights here; NumPy needs nothing)."""

    @property
    def _flat_weights(self):
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self):
        n = len(self._flat_weights_names) // (self.num_layers * (2 if self.bidirectional else 1))
        w = self._flat_weights
        return [w[i : i + n] for i in range(0, len(w), n)]

    def extra_repr(self) -> str:
        s = "{input_size}, {hidden_size}"
        if self.proj_size != 0:
            s += ", proj_size={proj_size}"
        if self.num_layers != 1:
            s += ", num_layers={num_layers}"
        if self.bias is not True:
            s += ", bias={bias}"
        if self.batch_first is not False:
            s += ", batch_first={batch_first}"
        if self.dropout != 0:
            s += ", dropout={dropout}"
        if self.bidirectional is not False:
            s += ", bidirectional={bidirectional}"
        return s.format(**self.__dict__)

    # --- forward ------------------------------------------------------------------------
    def _check_hidden(self, hx: Tensor, expected: tuple, what: str = "hidden"):
        if tuple(hx.shape) != expected:
            raise RuntimeError(f"Expected {what} size {expected}, got {list(hx.shape)}")

    def _prepare(self, input: Tensor, hx):
        """Normalise to sequence-first batched input; returns (x, hx tuple-or-tensor, batched)."""
        name = self._get_name()
        if not isinstance(input, Tensor):
            raise TypeError(
                f"{name}: expected input to be a Tensor (PackedSequence is not supported), got "
                f"{type(input).__name__}"
            )
        if input.dim() not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}D instead")
        batched = input.dim() == 3
        hs = (hx,) if isinstance(hx, Tensor) else tuple(hx) if hx is not None else None
        if hs is not None:
            for h in hs:
                if batched and h.dim() != 3:
                    raise RuntimeError(
                        f"For batched 3-D input, hx and cx should also be 3-D but got "
                        f"({', '.join(f'{t.dim()}-D' for t in hs)}) tensors"
                    )
                if not batched and h.dim() != 2:
                    raise RuntimeError(
                        f"For unbatched 2-D input, hx and cx should also be 2-D but got "
                        f"({', '.join(f'{t.dim()}-D' for t in hs)}) tensors"
                    )
        if not batched:
            input = input.unsqueeze(1)
            if hs is not None:
                hs = tuple(h.unsqueeze(1) for h in hs)
        elif self.batch_first:
            input = input.transpose(0, 1)
        if input.shape[-1] != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                f"got {input.shape[-1]}"
            )
        if input._data.dtype.kind != "f":
            raise RuntimeError(f"{name}: expected a floating point input, got {input.dtype.name}")
        return input, hs, batched

    def _run(self, x: Tensor, h0s: list, c0s: list | None):
        """All layers and directions; returns (output, [h_n...], [c_n...])."""
        dirs = 2 if self.bidirectional else 1
        per = len(self._flat_weights_names) // (self.num_layers * dirs)
        weights = self._flat_weights
        hn, cn = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                w = weights[k * per : (k + 1) * per]
                w_ih, w_hh = w[0], w[1]
                b_ih, b_hh = (w[2], w[3]) if self.bias else (None, None)
                w_hr = w[-1] if self.proj_size > 0 else None
                out, h, c = self._direction(
                    x,
                    h0s[k],
                    None if c0s is None else c0s[k],
                    w_ih,
                    w_hh,
                    b_ih,
                    b_hh,
                    w_hr,
                    reverse=d == 1,
                )
                outs.append(out)
                hn.append(h)
                cn.append(c)
            x = outs[0] if dirs == 1 else cat(outs, 2)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = _dropout(x, self.dropout, True)
        return x, hn, cn

    def _direction(self, x, h, c, w_ih, w_hh, b_ih, b_hh, w_hr, reverse):
        T = x.shape[0]
        gru = self.mode == "GRU"
        # one GEMM for the input projection of every step; b_hh joins it except for GRU,
        # whose n gate needs it inside r * (W_hn h + b_hn)
        xp = linear(x, w_ih, b_ih)
        if b_hh is not None and not gru:
            xp = xp + b_hh
            b_hh = None
        steps = _steps(xp)
        order = range(T - 1, -1, -1) if reverse else range(T)
        outs = [None] * T
        act = relu if self.mode == "RNN_RELU" else tanh
        for t in order:
            if self.mode == "LSTM":
                h, c = _lstm_step(steps[t], h, c, w_hh, b_hh, w_hr)
            elif gru:
                h = _gru_step(steps[t], h, w_hh, b_hh)
            else:
                h = _rnn_step(steps[t], h, w_hh, b_hh, act)
            outs[t] = h
        return stack(outs, 0), h, c

    def _zeros(self, n, size, dt):
        dirs = 2 if self.bidirectional else 1
        return Tensor._make(np.zeros((self.num_layers * dirs, n, size), dt))

    def forward(self, input: Tensor, hx=None):
        x, hs, batched = self._prepare(input, hx)
        n = x.shape[1]
        dt = x._data.dtype
        dirs = 2 if self.bidirectional else 1
        out_size = self.proj_size if self.proj_size > 0 else self.hidden_size
        lstm = self.mode == "LSTM"
        if hs is None:
            h0 = self._zeros(n, out_size, dt)
            c0 = self._zeros(n, self.hidden_size, dt) if lstm else None
        else:
            if lstm and len(hs) != 2:
                raise RuntimeError("LSTM: expected hx to be a tuple (h_0, c_0)")
            h0 = hs[0]
            self._check_hidden(h0, (self.num_layers * dirs, n, out_size))
            c0 = None
            if lstm:
                c0 = hs[1]
                self._check_hidden(c0, (self.num_layers * dirs, n, self.hidden_size), "cell")
        h0s = list(h0.unbind(0))
        c0s = list(c0.unbind(0)) if lstm else None
        out, hn, cn = self._run(x, h0s, c0s)
        h_n = stack(hn, 0)
        c_n = stack(cn, 0) if lstm else None
        if not batched:
            out = out.squeeze(1)
            h_n = h_n.squeeze(1)
            c_n = c_n.squeeze(1) if lstm else None
        elif self.batch_first:
            out = out.transpose(0, 1)
        return (out, (h_n, c_n)) if lstm else (out, h_n)


class RNN(RNNBase):
    """Elman RNN: ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` (or relu).

    >>> import retrograd as rg
    >>> rnn = rg.nn.RNN(4, 8, num_layers=2, batch_first=True)
    >>> out, h = rnn(rg.randn(3, 5, 4))
    >>> out.shape, h.shape
    (retrograd.Size([3, 5, 8]), retrograd.Size([2, 3, 8]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
    ):
        if nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        self.nonlinearity = nonlinearity
        super().__init__(
            mode,
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            device,
            dtype,
        )
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory; ``forward(input, (h_0, c_0))`` returns
    ``output, (h_n, c_n)``.

    >>> import retrograd as rg
    >>> lstm = rg.nn.LSTM(4, 8)
    >>> out, (h, c) = lstm(rg.randn(5, 3, 4))
    >>> out.shape, h.shape, c.shape
    (retrograd.Size([5, 3, 8]), retrograd.Size([1, 3, 8]), retrograd.Size([1, 3, 8]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
    ):
        super().__init__(
            "LSTM",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device,
            dtype,
        )


class GRU(RNNBase):
    """Gated recurrent unit (PyTorch's gate order r, z, n).

    >>> import retrograd as rg
    >>> gru = rg.nn.GRU(4, 8, bidirectional=True)
    >>> out, h = gru(rg.randn(5, 3, 4))
    >>> out.shape, h.shape
    (retrograd.Size([5, 3, 16]), retrograd.Size([2, 3, 8]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
    ):
        super().__init__(
            "GRU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            device,
            dtype,
        )


class RNNCellBase(Module):
    """Parameters ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` of one cell."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool,
        num_chunks: int,
        device=None,
        dtype=None,
    ):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        g = num_chunks * hidden_size
        self.weight_ih = Parameter(creation.empty(g, input_size, dtype=dtype))
        self.weight_hh = Parameter(creation.empty(g, hidden_size, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(creation.empty(num_chunks * hidden_size, dtype=dtype))
            self.bias_hh = Parameter(creation.empty(num_chunks * hidden_size, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def extra_repr(self) -> str:
        s = "{input_size}, {hidden_size}"
        if self.bias is not True:
            s += ", bias={bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += ", nonlinearity={nonlinearity}"
        return s.format(**self.__dict__)

    def _check(self, input: Tensor, hx, name: str):
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(
                f"input has inconsistent input_size: got {input.shape[-1]} expected "
                f"{self.input_size}"
            )
        hs = (hx,) if isinstance(hx, Tensor) else tuple(hx) if hx is not None else ()
        for h in hs:
            if h.dim() != input.dim():
                raise RuntimeError(
                    f"{name}: Expected hidden to be {input.dim()}D, got {h.dim()}D instead"
                )
            if h.shape[-1] != self.hidden_size:
                raise RuntimeError(
                    f"hidden has inconsistent hidden_size: got {h.shape[-1]}, expected "
                    f"{self.hidden_size}"
                )
        batched = input.dim() == 2
        if not batched:
            input = input.unsqueeze(0)
            hs = tuple(h.unsqueeze(0) for h in hs)
        return input, hs, batched

    def _zeros(self, input):
        return Tensor._make(np.zeros((input.shape[0], self.hidden_size), input._data.dtype))


class RNNCell(RNNCellBase):
    """One Elman step: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``.

    >>> import retrograd as rg
    >>> rg.nn.RNNCell(4, 8)(rg.randn(3, 4)).shape
    retrograd.Size([3, 8])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device=None,
        dtype=None,
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx=None) -> Tensor:
        x, hs, batched = self._check(input, hx, "RNNCell")
        h = hs[0] if hs else self._zeros(x)
        act = tanh if self.nonlinearity == "tanh" else relu
        h = act(linear(x, self.weight_ih, self.bias_ih) + linear(h, self.weight_hh, self.bias_hh))
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step; returns ``(h', c')``.

    >>> import retrograd as rg
    >>> h, c = rg.nn.LSTMCell(4, 8)(rg.randn(3, 4))
    >>> h.shape, c.shape
    (retrograd.Size([3, 8]), retrograd.Size([3, 8]))
    """

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None
    ):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input: Tensor, hx=None):
        x, hs, batched = self._check(input, hx, "LSTMCell")
        if hs and len(hs) != 2:
            raise RuntimeError("LSTMCell: Expected hx to be a tuple (h_0, c_0)")
        h, c = hs if hs else (self._zeros(x), self._zeros(x))
        h, c = _lstm_step(
            linear(x, self.weight_ih, self.bias_ih), h, c, self.weight_hh, self.bias_hh, None
        )
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step.

    >>> import retrograd as rg
    >>> rg.nn.GRUCell(4, 8)(rg.randn(3, 4)).shape
    retrograd.Size([3, 8])
    """

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None
    ):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input: Tensor, hx=None) -> Tensor:
        x, hs, batched = self._check(input, hx, "GRUCell")
        h = hs[0] if hs else self._zeros(x)
        h = _gru_step(linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)
        return h if batched else h.squeeze(0)

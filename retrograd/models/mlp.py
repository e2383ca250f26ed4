"""``MLP``: a stack of Linear layers with an activation (and optional dropout) between them."""

from __future__ import annotations

from .. import nn
from ..tensor import Tensor

_ACTIVATIONS = {
    "relu": lambda: nn.ReLU(),
    "gelu": lambda: nn.GELU(),
    "tanh": lambda: nn.Tanh(),
    "sigmoid": lambda: nn.Sigmoid(),
}


def make_activation(name: str) -> nn.Module:
    """An activation module from its lower-case name (``relu``, ``gelu``, ``tanh``, ``sigmoid``)."""
    try:
        return _ACTIVATIONS[name.lower()]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)}"
        ) from None


class MLP(nn.Module):
    """A multi-layer perceptron: ``Linear -> act [-> Dropout]`` per hidden layer, then a Linear.

    Inputs with more than two dimensions (images) are flattened after the batch dimension.

    Args:
        in_features: size of each input sample (e.g. 784 for 28x28 images).
        hidden: widths of the hidden layers, e.g. ``[256, 128]``.
        out_features: number of outputs (classes).
        activation: ``"relu"``, ``"gelu"``, ``"tanh"`` or ``"sigmoid"``.
        dropout: dropout probability after each hidden activation (0 disables it).

    >>> import retrograd as rg
    >>> m = rg.models.MLP(2, [16, 16], 2)
    >>> m(rg.randn(5, 2)).shape
    retrograd.Size([5, 2])
    """

    def __init__(
        self,
        in_features: int,
        hidden: list[int],
        out_features: int,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers.append(nn.Linear(width, h))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() > 2:
            x = x.reshape(x.shape[0], -1)
        return self.net(x)

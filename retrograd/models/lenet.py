"""``LeNet``: a small convolutional classifier for 1x28x28 images (conv-relu-pool x2 + MLP)."""

from __future__ import annotations

from .. import nn
from ..tensor import Tensor


class LeNet(nn.Module):
    """A LeNet-style CNN: ``[conv5x5 -> (BatchNorm) -> ReLU -> maxpool2]`` twice, then two Linears.

    The 5x5 convolutions are padded (``padding=2``) so 28x28 inputs become 14x14 and then 7x7
    feature maps before the classifier.

    Args:
        in_channels: input channels (1 for MNIST).
        num_classes: number of output classes.
        channels: output channels of the two conv stages.
        hidden: width of the hidden fully connected layer.
        batch_norm: put a ``BatchNorm2d`` after each convolution (the conv then has no bias).
        dropout: dropout probability before each fully connected layer.
        image_size: height (= width) of the input images; must be divisible by 4.

    >>> import retrograd as rg
    >>> net = rg.models.LeNet()
    >>> net(rg.randn(2, 1, 28, 28)).shape
    retrograd.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        channels: tuple[int, int] = (16, 32),
        hidden: int = 128,
        batch_norm: bool = False,
        dropout: float = 0.0,
        image_size: int = 28,
    ) -> None:
        super().__init__()
        c1, c2 = channels

        def stage(cin: int, cout: int) -> nn.Sequential:
            parts: list[nn.Module] = [nn.Conv2d(cin, cout, 5, padding=2, bias=not batch_norm)]
            if batch_norm:
                parts.append(nn.BatchNorm2d(cout))
            parts += [nn.ReLU(), nn.MaxPool2d(2)]
            return nn.Sequential(*parts)

        self.features = nn.Sequential(stage(in_channels, c1), stage(c1, c2))
        side = image_size // 4
        head: list[nn.Module] = [nn.Flatten()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head += [nn.Linear(c2 * side * side, hidden), nn.ReLU()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(hidden, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))

"""``ResNet``: a small residual network with BatchNorm for 28x28 images (He et al., 2016)."""

from __future__ import annotations

from .. import nn
from ..nn import functional as F
from ..tensor import Tensor


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + sc(x))``.

    The shortcut is the identity when the shape is unchanged, else a strided 1x1 conv + BN
    ("projection shortcut", option B of the ResNet paper).

    >>> import retrograd as rg
    >>> blk = rg.models.resnet.BasicBlock(8, 16, stride=2)
    >>> blk(rg.randn(2, 8, 14, 14)).shape
    retrograd.Size([2, 16, 7, 7])
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A compact ResNet: stem conv, stages of ``BasicBlock`` s, global average pool, Linear.

    Each stage after the first halves the spatial size (stride 2) and uses the next width.

    Args:
        in_channels: input channels (1 for MNIST).
        num_classes: number of output classes.
        widths: channels of each stage, e.g. ``(16, 32, 64)``.
        blocks: number of ``BasicBlock`` s per stage (an int for all stages, or one per stage).
        stem_stride: stride of the 3x3 stem conv.
        first_stride: stride of the first stage. 2 halves the resolution right after the
            full-resolution stem, making the net ~4x cheaper on 28x28 inputs.

    >>> import retrograd as rg
    >>> net = rg.models.ResNet(widths=(8, 16), blocks=1)
    >>> net(rg.randn(2, 1, 28, 28)).shape
    retrograd.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: tuple[int, ...] = (16, 32, 64),
        blocks: int | tuple[int, ...] = 1,
        stem_stride: int = 1,
        first_stride: int = 1,
    ) -> None:
        super().__init__()
        widths = tuple(widths)
        per_stage = (blocks,) * len(widths) if isinstance(blocks, int) else tuple(blocks)
        if len(per_stage) != len(widths):
            raise ValueError(
                f"ResNet: blocks has {len(per_stage)} entries but widths has {len(widths)}"
            )
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        stages: list[nn.Module] = []
        in_planes = widths[0]
        for i, (w, n) in enumerate(zip(widths, per_stage)):
            layer = []
            for j in range(n):
                stride = (2 if i > 0 else first_stride) if j == 0 else 1
                layer.append(BasicBlock(in_planes, w, stride))
                in_planes = w
            stages.append(nn.Sequential(*layer))
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layers(self.stem(x))
        x = x.mean(dim=(2, 3))  # global average pool
        return self.fc(x)

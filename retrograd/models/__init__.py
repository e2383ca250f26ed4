"""Reference models: MLP, LeNet, ResNet, CharRNN, GPT (readable teaching code)."""

from . import resnet  # noqa: F401
from .charrnn import CharRNN
from .gpt import GPT, GPTConfig
from .lenet import LeNet
from .mlp import MLP
from .resnet import BasicBlock, ResNet

__all__ = ["MLP", "LeNet", "ResNet", "BasicBlock", "CharRNN", "GPT", "GPTConfig"]

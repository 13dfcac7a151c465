from .resnet import TapeResNet
from .transformer import TapeTransformer

__all__ = ["TapeResNet", "TapeTransformer"]

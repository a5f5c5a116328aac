"""cnn_denoise: Lab 2B's convolutional neural networks for speech denoising."""

from .filters import MIMOFilter
from .model import CNN, MIMOCNN

__all__ = ["CNN", "MIMOCNN", "MIMOFilter"]

"""The lab's convolutional neural network, built from MIMO filters (Lab 2B, Tasks 1 and 3).

    X_0 = X,   X_l = tanh(sum_k S^k X_{l-1} H_{lk}),   Phi(X) = X_L

The lab's text puts tanh on every layer (the default); the course's code left the last
layer linear, which `last_activation="linear"` reproduces. docs/lab.md tells the story.
"""

import torch
import torch.nn as nn

from cnn_denoise.config import choices
from cnn_denoise.lab.filters import MIMOFilter, chains, toeplitz_chain


class MIMOCNN(nn.Module):
    """Task 3: X_l = tanh(sum_k S^k X_{l-1} H_{lk}); X (batch, F_0, n) -> (batch, F_L, n), float32.

    taps: [K_1..K_L], taps of each layer's MIMO filter
    features: [F_0..F_L], features in, between the layers, and out
    last_activation: tanh (the lab's text) or linear (the course's code) after the last layer
    backend: the MIMO filters' backend (auto picks by size)
    input_scale: s, the network sees s x and returns Phi(s x) / s, so tanh sees signals of order 1
    """

    def __init__(
        self, taps, features, last_activation: str = choices.TANH, backend: str = choices.AUTO, input_scale: float = 1.0
    ):
        super().__init__()
        taps, features = list(taps), list(features)
        if why := choices.shape_problem(taps, features):
            raise ValueError(f"MIMOCNN: {why}")
        choices.choose(last_activation, choices.ACTIVATIONS, "MIMOCNN last_activation")
        if not input_scale > 0:
            raise ValueError(f"MIMOCNN: input_scale must be > 0, got {input_scale!r}")
        self.taps, self.features, self.last_activation = taps, features, last_activation
        # Phi(x) = CNN(s x) / s: with s ~ 1/peak, tanh sees signals of order 1 instead of 1e-3
        self.input_scale = float(input_scale)
        self.layers = nn.ModuleList(
            MIMOFilter(k, f_in, f_out, backend=backend)
            for k, f_in, f_out in zip(taps, features[:-1], features[1:], strict=True)
        )

    @property
    def receptive_field(self) -> int:
        """How many input samples (the current one and the past) reach one output sample."""
        return choices.receptive_field(self.taps)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        tanh_after = [i < last or self.last_activation == choices.TANH for i in range(last + 1)]
        if self.input_scale != 1.0:
            X = X * self.input_scale
        backends = [layer.backend_for(X.device) for layer in self.layers]
        if X.dim() == 3 and X.shape[1] == self.features[0] and chains(backends, self.taps):
            X = toeplitz_chain(X, [layer.H for layer in self.layers], [torch.tanh if t else None for t in tanh_after])
        else:
            for layer, t in zip(self.layers, tanh_after, strict=True):
                X = layer(X)
                if t:
                    X = torch.tanh(X)
        return X / self.input_scale if self.input_scale != 1.0 else X


class CNN(MIMOCNN):
    """Task 1: a single-feature CNN (every layer 1 -> 1); input (batch, N) or (N,)."""

    def __init__(self, taps, last_activation: str = choices.TANH, backend: str = choices.AUTO):
        taps = list(taps)
        super().__init__(taps, [1] * (len(taps) + 1), last_activation=last_activation, backend=backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (1, 2):
            raise ValueError(f"CNN: expected input (batch, N) or (N,), got shape {tuple(x.shape)}")
        return super().forward(x.unsqueeze(-2)).squeeze(-2)

"""MIMO convolutional filters (Lab 2B, Task 2).

A MIMO filter maps an N x F feature matrix X to an N x G matrix

    Y = sum_{k=0}^{K-1} S^k X H_k,

where S is the zero-padded delay (S x = [0, x_0, ..., x_{N-2}], not circular) and each
H_k is F x G. There is no bias. Tensors follow PyTorch's layout: X is (batch, F, N), so
X[b].T is the lab's N x F matrix.

Two exact backends compute the same sum:
- "shift": the literal shift register of the lab's text; the reference, kept simple.
- "conv1d": PyTorch's conv1d with left zero padding and the taps reversed (conv1d is a
  cross-correlation); the default because it is several times faster.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

BACKENDS = ("conv1d", "shift")


def shift(x: torch.Tensor, k: int = 1) -> torch.Tensor:
    """S^k x along the last axis: delay by k samples, zeros shifted in (not circular)."""
    if k == 0:
        return x
    n = x.shape[-1]
    if k >= n:
        return torch.zeros_like(x)
    return F.pad(x[..., : n - k], (k, 0))


def mimo_shift(X: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """Reference: sum_k S^k X H_k with X (B, F, N) and H (K, F, G) -> (B, G, N)."""
    Y = 0
    for k in range(H.shape[0]):
        Y = Y + torch.einsum("bfn,fg->bgn", shift(X, k), H[k])
    return Y


def mimo_conv1d(X: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """The same sum through conv1d: weight[g, f, j] = H[K-1-j, f, g], K-1 zeros on the left."""
    K = H.shape[0]
    weight = H.permute(2, 1, 0).flip(-1)
    return F.conv1d(F.pad(X, (K - 1, 0)), weight)


_IMPLEMENTATIONS = {"shift": mimo_shift, "conv1d": mimo_conv1d}


class MIMOFilter(nn.Module):
    """Task 2: a K-tap MIMO filter with F input and G output features; H has shape (K, F, G)."""

    def __init__(self, taps: int, in_features: int, out_features: int, backend: str = "conv1d"):
        super().__init__()
        for name, value in (("taps", taps), ("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MIMOFilter: {name} must be an integer >= 1, got {value!r}")
        if backend not in _IMPLEMENTATIONS:
            raise ValueError(f"MIMOFilter: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.taps, self.in_features, self.out_features = taps, in_features, out_features
        self.backend = backend
        # The course's code drew xavier_normal_ on a (K, G, F) tensor; we keep its scale and
        # random stream, stored as (K, F, G) so that H[k] is the lab's F x G matrix H_k.
        init = torch.empty(taps, out_features, in_features)
        nn.init.xavier_normal_(init)
        self.H = nn.Parameter(init.transpose(1, 2).contiguous())

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        unbatched = X.dim() == 2
        if unbatched:
            X = X.unsqueeze(0)
        if X.dim() != 3 or X.shape[1] != self.in_features:
            raise ValueError(
                f"MIMOFilter: expected input (batch, {self.in_features}, N) or ({self.in_features}, N), "
                f"got shape {tuple(X.shape)}"
            )
        Y = _IMPLEMENTATIONS[self.backend](X, self.H)
        return Y.squeeze(0) if unbatched else Y

    def extra_repr(self) -> str:
        return f"taps={self.taps}, in_features={self.in_features}, out_features={self.out_features}, backend={self.backend!r}"

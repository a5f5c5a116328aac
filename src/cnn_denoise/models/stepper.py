"""A trained network one block at a time, its state carried as explicit tensors (as DTLN's
exported models carry their LSTM states): what `cnn-denoise stream` runs and `export` writes.

enhance/stream.py's Stream runs the model's own forward over each block and the receptive
field before it, so each block costs R / B times its share of the arithmetic (R the receptive
field, B the block): for the speech recipe's MaskNet R is about a second, so 10 ms blocks would
recompute it a hundred times over. Here each layer keeps the past it still needs instead:

    MaskNet   the last S input samples (an analysis frame is 2 S long), the last (K - 1) d frames
              of each dilated layer's input (its taps, and the centred layers' delay), the last
              `lookahead` frames of the analysis features, and the 2 S samples of overlap-add
              not yet complete
    MIMOCNN   the last K - 1 samples of each layer's input

so a block of n samples costs the arithmetic of n samples. `forward(block, *state)` returns
(out, *new_state); blocks must be whole frames (n a multiple of `stride`). The output is
`model.causal`'s (MaskNet: lagging the input by `latency` samples; the lab's CNN: no lag).
Same numbers as the forward up to float rounding, held to that by tests/test_live.py.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnn_denoise.config import choices
from cnn_denoise.models.masknet import MaskNet, pointwise


def _conv_weight(H: torch.Tensor) -> torch.Tensor:
    """A MIMO filter's H (K, F, G) as conv1d's weight: sum_k S^k X H_k."""
    return H.permute(2, 1, 0).flip(-1)


class Stepper(nn.Module):
    """model's causal output, one block of whole frames at a time (see the module docstring)."""

    def __init__(self, model):
        super().__init__()
        self.model = model.eval()
        self.masknet = isinstance(model, MaskNet)
        self.stride = getattr(model, "stride", 1)
        self.latency = getattr(model, "latency", 0)
        self.input_scale = float(model.input_scale)

    def state_shapes(self) -> list[tuple[int, int]]:
        """(features, samples or frames) of each state tensor, in order; none of length 0."""
        m = self.model
        if self.masknet:
            S = m.stride
            shapes = [(1, S)] + [(m.width, (m.taps - 1) * d) for d in m.dilations]
            shapes += [(m.filters, m.lookahead), (1, 2 * S)]
        else:
            shapes = [(f, k - 1) for k, f in zip(m.taps, m.features[:-1], strict=True)]
        return [s for s in shapes if s[1] > 0]

    def initial_state(self, channels: int, dtype=torch.float32) -> list[torch.Tensor]:
        """Zeros: the forward's own zero padding before the signal."""
        return [torch.zeros(channels, f, n, dtype=dtype) for f, n in self.state_shapes()]

    def forward(self, block: torch.Tensor, *state: torch.Tensor):
        state = list(state)
        x = block * self.input_scale
        y, new = self._masknet(x, state) if self.masknet else self._cnn(x, state)
        return (y / self.input_scale, *new)

    def _take(self, state: list, length: int, like: torch.Tensor) -> torch.Tensor:
        """The next state tensor, or an empty one where its length is 0 (not carried)."""
        return state.pop(0) if length > 0 else like.new_zeros(like.shape[0], like.shape[1], 0)

    def _cnn(self, x: torch.Tensor, state: list):
        m, new = self.model, []
        last = len(m.layers) - 1
        for i, (layer, k) in enumerate(zip(m.layers, m.taps, strict=True)):
            full = torch.cat([self._take(state, k - 1, x), x], -1)
            if k > 1:
                new.append(full[..., full.shape[-1] - (k - 1) :])
            x = F.conv1d(full, _conv_weight(layer.H))
            if i < last or m.last_activation == choices.TANH:
                x = torch.tanh(x)
        return x, new

    def _masknet(self, x: torch.Tensor, state: list):
        m, new = self.model, []
        S, n = m.stride, x.shape[-1]
        frames = n // S
        full = torch.cat([state.pop(0), x], -1)  # frame t: the S samples before it and its own S
        new.append(full[..., n:])
        E = torch.relu(F.conv1d(full, _conv_weight(m.enc), stride=S))  # (B, N, frames)
        Z = pointwise(E, m.inp)
        for H, d, a in zip(m.H, m.dilations, m.ahead, strict=True):
            reach = (m.taps - 1) * d
            past = torch.cat([self._take(state, reach, Z), Z], -1)
            if reach:
                new.append(past[..., frames:])
            branch = torch.tanh(F.conv1d(past, _conv_weight(H), dilation=d))
            Z = (past[..., reach - a : reach - a + frames] if a else Z) + branch  # a centred layer: Z a frames late
        if m.lookahead:
            held = torch.cat([state.pop(0), E], -1)
            new.append(held[..., frames:])
            E = held[..., :frames]
        M = torch.sigmoid(pointwise(Z, m.mask))
        out = torch.einsum("bft,fl->blt", E * M, m.dec)  # (B, 2S, frames): frame t at samples tS + S ..
        first = out[:, :S].transpose(1, 2).reshape(out.shape[0], 1, frames * S)
        second = out[:, S:].transpose(1, 2).reshape(out.shape[0], 1, frames * S)
        acc = F.pad(state.pop(0), (0, n)) + F.pad(first, (S, S)) + F.pad(second, (2 * S, 0))
        new.append(acc[..., n:])
        return acc[..., :n], new


class WholeSignal(nn.Module):
    """The model's forward over a whole signal (batch, 1, n), n a multiple of the frame
    (`stride`: pad with zeros and trim), in step with its input: the Stepper over the signal
    and the lag's zeros, the lag dropped (what `export` writes as the whole-signal graph; an
    n of whole frames keeps its shapes free of conditions torch.export cannot prove)."""

    def __init__(self, model):
        super().__init__()
        self.stepper = Stepper(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stepper
        y = s(F.pad(x, (0, s.latency)), *s.initial_state(x.shape[0], x.dtype))[0]
        return y[..., s.latency :]

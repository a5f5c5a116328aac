"""A masking CNN for recorded speech, built from the lab's MIMO filters (the `speech` recipe).

The lab's filter arranged as Conv-TasNet does, all causal: an analysis filter bank in strided
frames, dilated MIMO layers with skips, a sigmoid mask, overlap-add synthesis. docs/speech.md
("The masking CNN") tells the design: the equations, the latency, the filter-bank start,
centred layers and dropout.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def dilated(X: torch.Tensor, H: torch.Tensor, d: int) -> torch.Tensor:
    """sum_k S^(k d) X H_k for X (B, F, T) and H (K, F, G): the MIMO filter with its taps d
    samples apart (the lab's filter with zeros between the taps), through conv1d."""
    K = H.shape[0]
    return F.conv1d(F.pad(X, ((K - 1) * d, 0)), H.permute(2, 1, 0).flip(-1), dilation=d)


def pointwise(X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """X (B, F, T) times W (F, G) at each frame: (B, G, T). A 1-tap conv1d, which trains faster
    here than einsum's batched matrix product (bench/masknet_conv.py)."""
    return F.conv1d(X, W.T[..., None])


def late(X: torch.Tensor, frames: int) -> torch.Tensor:
    """X (B, F, T) delayed by `frames` (zeros first), as long as it was."""
    return F.pad(X, (frames, 0))[..., : X.shape[-1]] if frames else X


class MaskNet(nn.Module):
    """The masking CNN: input and output (batch, 1, n) float32, the output `latency` samples late in `causal`.

    stride: S, samples per frame; the analysis filter has L = 2 S taps
    filters: N, analysis features per frame
    width: H, features of each dilated layer
    taps: K, taps of each dilated layer, in frames
    dilations: d_l, one dilated layer per entry, its taps d_l frames apart
    input_scale: s, the network sees s x and returns y / s (as MIMOCNN's)
    centred: layers whose dilation is at most this hear (K - 1) // 2 taps ahead
    dropout: share of each dilated layer's output zeroed in training steps
    """

    def __init__(
        self,
        stride: int,
        filters: int,
        width: int,
        taps: int,
        dilations,
        input_scale: float = 1.0,
        centred: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.dropout = float(dropout)
        self.stride, self.taps, self.dilations = int(stride), int(taps), [int(d) for d in dilations]
        self.centred = int(centred)
        self.ahead = [(self.taps - 1) // 2 * d if d <= self.centred else 0 for d in self.dilations]  # frames
        self.filters, self.width, self.input_scale = int(filters), int(width), float(input_scale)
        L = 2 * self.stride

        def weights(*shape, fan):
            return nn.Parameter(torch.randn(*shape) / fan**0.5)

        self.enc = weights(L, 1, filters, fan=L)  # (K, F, G) as MIMOFilter.H
        self.inp = weights(filters, width, fan=filters)
        self.H = nn.ParameterList(weights(taps, width, width, fan=taps * width) for _ in self.dilations)
        self.mask = weights(width, filters, fan=width)
        self.dec = weights(filters, L, fan=filters)  # each frame's features -> its L output samples

    @property
    def features(self) -> list[int]:
        """Features along the way: the input, analysis, dilated layers, synthesis, the output."""
        return [1, self.filters, self.width, self.filters, 1]

    @property
    def latency(self) -> int:
        """Samples by which `causal`'s output lags the speech: the analysis filter's length and
        the centred layers' frames ahead."""
        return (2 + self.lookahead) * self.stride

    @property
    def lookahead(self) -> int:
        """Frames after its own that each frame's mask hears (the centred layers')."""
        return sum(self.ahead)

    @property
    def receptive_field(self) -> int:
        """Input samples (this one and the past) that reach one sample of `causal`'s output."""
        frames = 1 + sum((self.taps - 1) * d for d in self.dilations)
        return (frames + 1) * self.stride + self.latency

    @property
    def floats_per_sample(self) -> float:
        """Activations one call of `causal` holds at once per input sample, roughly: at the
        peak of a dilated layer its input, padded input, output and tanh beside the features E
        and the mask's (about 4 width and 5 filters per frame), and the samples' own frames
        and fold. What enhance sizes its calls by (enhance/stream.py)."""
        return (5 * self.filters + 4 * self.width) / self.stride + 8

    @torch.no_grad()
    def start_as_filterbank(self) -> None:
        """Analysis and synthesis as the perfect-reconstruction filter bank of the module's
        docstring (needs filters = 4 stride); the other weights stay as they are."""
        L = 2 * self.stride
        if self.filters != 2 * L:
            raise ValueError(f"a filter bank start needs filters = 4 x stride = {2 * L}, not {self.filters}")
        n = torch.arange(L, dtype=torch.float64)
        window = torch.sqrt(0.5 - 0.5 * torch.cos(2 * torch.pi * n / L))  # w^2 at a hop of L/2 sums to 1
        k = n[:, None]
        dct = torch.sqrt(torch.where(k == 0, 1.0, 2.0).double() / L) * torch.cos(torch.pi * (n[None, :] + 0.5) * k / L)
        atoms = dct * window  # atoms[k, j]: coefficient k of a frame's sample j (in time order)
        split = torch.cat([atoms, -atoms])  # (N, L): each coefficient's positive, then negative part
        self.enc.copy_(split.T.flip(0)[:, None, :])  # enc[K - 1 - j]: tap K - 1 - j meets the frame's sample j
        self.dec.copy_(split)

    @torch.no_grad()
    def rescale(self, gain: float) -> None:
        """Multiply the output by `gain` (the synthesis filters are linear in it)."""
        self.dec.mul_(gain)

    def spec(self) -> dict:
        """What rebuilds this network (the checkpoint keeps it beside the weights)."""
        keys = ("stride", "filters", "width", "taps", "dilations", "input_scale", "centred")
        dropped = {"dropout": self.dropout} if self.dropout else {}  # none: the spec (and checkpoint) as before
        return {"arch": "masknet", **{k: getattr(self, k) for k in keys}, **dropped}

    def causal(self, x: torch.Tensor) -> torch.Tensor:
        """The output lagging the speech by `latency` samples: sample n depends on x[..n] only.
        The input's start must fall on a frame boundary (a multiple of S after the signal's start)."""
        S, L, n = self.stride, 2 * self.stride, x.shape[-1]
        x = F.pad(x * self.input_scale, (L - S, (-n) % S))  # frame t: samples tS + S - L .. tS + S - 1
        E = torch.relu(F.conv1d(x, self.enc.permute(2, 1, 0).flip(-1), stride=S))  # (B, N, frames)
        Z = pointwise(E, self.inp)
        for H, d, a in zip(self.H, self.dilations, self.ahead, strict=True):
            branch = torch.tanh(dilated(Z, H, d))
            if self.dropout and self.training:
                branch = F.dropout(branch, self.dropout)
            Z = late(Z, a) + branch  # a centred layer: its frame t written at t + a
        M = torch.sigmoid(pointwise(Z, self.mask))
        E = late(E, self.lookahead)  # frame t's features meet the mask written for them
        y = F.conv_transpose1d(E * M, self.dec[:, None, :], stride=S)  # overlap-add of each frame's L samples
        return F.pad(y, (S, 0))[..., :n] / self.input_scale  # frame t from sample tS + S

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The clean speech in step with x (batch, 1, n): `causal` shifted back by its latency."""
        n = x.shape[-1]
        return self.causal(F.pad(x, (0, self.latency)))[..., self.latency : self.latency + n]

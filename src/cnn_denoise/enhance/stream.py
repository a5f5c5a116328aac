"""A trained CNN stepping through a signal that arrives in blocks (as denoiser's DemucsStreamer
steps Demucs): the same output as the whole signal at once, in memory set by the block.

The CNN is causal with a finite receptive field R, so an output sample depends on its input
sample and the R - 1 before it, nothing older. Each block therefore goes through the model's
own forward (its activations, input scale and backends: nothing is written twice) after the
R - 1 input samples that precede it, and only the block's outputs are kept. Before the first
block those samples are zeros, which is what the forward's zero padding holds: with no bias
and tanh(0) = 0, zeros map to zeros through every layer.

enhance's blocks are long (many receptive fields), so recomputing R - 1 samples per block costs
little there; `cnn-denoise stream`'s 10 ms blocks use models/stepper.py's Stepper instead, which
keeps each layer's own past rather than the input's.
"""

import torch

from cnn_denoise.enhance.demand import (  # noqa: F401 (where they were; denoiser and tests take them here too)
    MAX_CONTEXT,
    MAX_CONTEXT_FLOATS,
    MAX_CONTEXT_SECONDS,
    demand_problem,
    floats_per_sample,
)


class Stream:
    """model(x) over consecutive blocks of x (channels, F_0, n): each call returns the output
    known so far, flush() the rest; together they equal model(x) of the whole x at once.

    A network that works in frames of S samples (masknet: `stride`) gets whole frames, so its
    frames fall where the whole signal's do; one whose output lags (`latency`, computed by
    `causal`) has the lag dropped at the start and made up with zeros past the end, as its
    forward does. The lab's CNN has S = 1 and no lag: each block comes back as long as it went in.

    model: MIMOCNN or MaskNet (anything with features, receptive_field; stride, latency, causal if framed)
    channels: recordings stepped through side by side, the first axis of each block
    """

    def __init__(self, model, channels: int):
        self.run = getattr(model, "causal", model)
        self.step, self.lag = getattr(model, "stride", 1), getattr(model, "latency", 0)
        keep = -(-(model.receptive_field - 1) // self.step) * self.step  # whole frames of context
        self.context = torch.zeros(channels, model.features[0], keep)
        self.pending = torch.zeros(channels, model.features[0], 0)
        self.pushed = self.returned = self.dropped = 0

    @torch.no_grad()
    def __call__(self, block: torch.Tensor) -> torch.Tensor:
        self.pushed += block.shape[-1]
        return self._frames(torch.cat([self.pending, block], -1))

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """The output of the last samples pushed: zeros past the end complete the last frame
        and make up the lag."""
        want = self.pushed - self.returned
        pad = self.lag + (-(self.pending.shape[-1] + self.lag)) % self.step
        y = self._frames(torch.nn.functional.pad(self.pending, (0, pad)))[..., :want]
        self.returned = self.pushed
        return y

    def _frames(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1] // self.step * self.step
        x, self.pending = x[..., :n], x[..., n:]
        keep = self.context.shape[-1]
        full = torch.cat([self.context, x], -1)
        self.context = full[..., full.shape[-1] - keep :].clone()  # a copy: the whole block is not kept alive
        y = self.run(full)[..., full.shape[-1] - n :]
        drop = min(self.lag - self.dropped, n)  # the lagged output's first samples come before the signal
        self.dropped += drop
        y = y[..., drop:]
        self.returned += y.shape[-1]
        return y

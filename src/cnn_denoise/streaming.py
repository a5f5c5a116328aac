"""A trained CNN stepping through a signal that arrives in blocks (as denoiser's DemucsStreamer
steps Demucs): the same output as the whole signal at once, in memory set by the block.

The CNN is causal with a finite receptive field R, so an output sample depends on its input
sample and the R - 1 before it, nothing older. Each block therefore goes through the model's
own forward (its activations, input scale and backends: nothing is written twice) after the
R - 1 input samples that precede it, and only the block's outputs are kept. Before the first
block those samples are zeros, which is what the forward's zero padding holds: with no bias
and tanh(0) = 0, zeros map to zeros through every layer.
"""

import torch


class Stream:
    """model(x) over consecutive blocks of x (channels, F_0, n), equal to the whole at once."""

    def __init__(self, model, channels: int):
        self.model = model
        self.context = torch.zeros(channels, model.features[0], model.receptive_field - 1)

    @torch.no_grad()
    def __call__(self, block: torch.Tensor) -> torch.Tensor:
        n, keep = block.shape[-1], self.context.shape[-1]
        full = torch.cat([self.context, block], -1)
        self.context = full[..., full.shape[-1] - keep :].clone()  # a copy: the whole block is not kept alive
        return self.model(full)[..., -n:]

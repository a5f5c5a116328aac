"""The losses a network trains on (params.yaml's train.loss), each a function of sums over a batch."""

from collections.abc import Callable
from typing import NamedTuple

import torch

from cnn_denoise.config import choices


def si_sdr_db(pred: torch.Tensor, y: torch.Tensor, floor: float = 1e-20) -> torch.Tensor:
    """Each recording's scale-invariant SDR in dB (Le Roux et al., 2019), the project's one definition.

    pred, y: (batch, ..., n) outputs and clean signals, one recording a row once flattened.
    floor: the least energy a sum may have, so silence either side gives a finite value (a loss
    needs one); scoring passes its own.
    Returns (batch,) dB.
    """
    p, t = pred.flatten(1), y.flatten(1)
    target = (p * t).sum(1, keepdim=True) / t.square().sum(1, keepdim=True).clamp_min(floor) * t
    return 10 * torch.log10(target.square().sum(1).clamp_min(floor) / (p - target).square().sum(1).clamp_min(floor))


class Loss(NamedTuple):
    """A loss as a function of sums over a batch, so that ranks under torchrun can add their
    sums before the loss is taken: the same loss in one process or many.
    sums(pred, y) -> 1-D tensor of sums; value(sums, count) -> the loss (count: samples)."""

    sums: Callable
    value: Callable


LOSSES = {
    # the mean absolute error (PyTorch's L1Loss, what the course trained with)
    choices.L1: Loss(lambda pred, y: (pred - y).abs().sum()[None], lambda s, count: s[0] / count),
    # minus the batch's SNR in dB: 10 log10(sum |pred - y|^2 / sum |y|^2); a silent batch: large, finite
    choices.SNR: Loss(
        lambda pred, y: torch.stack([(pred - y).square().sum(), y.square().sum()]),
        lambda s, count: 10 * torch.log10(s[0] / s[1].clamp_min(1e-30)),
    ),
    # minus the mean scale-invariant SDR of the recordings in dB (Le Roux et al., 2019): blind to the
    # output's gain, every recording weighs alike whatever its level; sums: (SI-SDR total, recordings)
    choices.SI_SDR: Loss(
        lambda pred, y: torch.stack([si_sdr_db(pred, y).sum(), torch.tensor(float(len(y)), device=y.device)]),
        lambda s, count: -s[0] / s[1],
    ),
}
choices.check_table(LOSSES, choices.LOSSES, "training.losses.LOSSES")


def loss_of(name: str, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss `name` of one batch, in one process."""
    loss = LOSSES[name]
    return loss.value(loss.sums(pred, y), y.numel())

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


# the spectral term's STFT sizes (samples, a quarter of each the hop: 32 and 64 ms at 16 kHz; a
# third at 16 ms cost as much again as these two),
# magnitude exponent and share of its complex part (Braun and Tashev, "A consistent look at
# loss functions in speech enhancement", 2021: 0.3 and 0.3 scored best there on PESQ and DNSMOS)
RESOLUTIONS = (512, 1024)
COMPRESS = 0.3
COMPLEX_SHARE = 0.3


def spectral_db(pred: torch.Tensor, y: torch.Tensor, floor: float = 1e-20) -> torch.Tensor:
    """Each recording's distortion of its compressed spectrum in dB, the mean over RESOLUTIONS.

    C(s) = |STFT(s)|^COMPRESS with STFT(s)'s phase: a spectrum whose quiet bins (speech's
    high band, its onsets) weigh nearly as much as its loud ones, as ears weigh them, where
    SI-SDR weighs sample errors by energy. At each resolution the error is COMPLEX_SHARE x
    sum |C(pred) - C(y)|^2 + (1 - COMPLEX_SHARE) x sum (|C(pred)| - |C(y)|)^2 over the
    recording's bins, over sum |C(y)|^2, in dB. Both signals are first divided by the clean
    one's RMS: blind to the recording's level, as SI-SDR is, but not to the output's gain.

    pred, y: (batch, ..., n) outputs and clean signals, one recording a row once flattened.
    Returns (batch,) dB: lower is better; 0 dB, as far off as silence.
    """
    p, t = pred.flatten(1), y.flatten(1)
    rms = t.square().mean(1, keepdim=True).clamp_min(floor).sqrt()
    p, t = p / rms, t / rms
    total = 0
    for n_fft in RESOLUTIONS:
        (P, mp), (T, mt) = _compressed(p, n_fft), _compressed(t, n_fft)
        error = COMPLEX_SHARE * torch.view_as_real(P - T).square().sum(-1) + (1 - COMPLEX_SHARE) * (mp - mt).square()
        total = total + 10 * torch.log10(error.sum((1, 2)).clamp_min(floor) / mt.square().sum((1, 2)).clamp_min(floor))
    return total / len(RESOLUTIONS)


def _compressed(s: torch.Tensor, n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """C(s) of spectral_db at one size (hop n_fft / 4, Hann window) and its magnitude |C(s)|."""
    X = torch.stft(
        s, n_fft, n_fft // 4, window=torch.hann_window(n_fft, device=s.device, dtype=s.dtype), return_complex=True
    )
    magnitude = X.abs() + 1e-8  # a finite slope at 0
    squeezed = magnitude.pow(COMPRESS)
    return X * (squeezed / magnitude), squeezed


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
    # si_sdr plus the mean compressed-spectrum distortion in dB (spectral_db), both per recording
    # and alike in weight: SI-SDR keeps the waveform, the spectral term the quiet bins that
    # PESQ and DNSMOS hear; sums: (SI-SDR total, recordings, spectral total)
    choices.SI_SDR_SPECTRAL: Loss(
        lambda pred, y: torch.stack(
            [si_sdr_db(pred, y).sum(), torch.tensor(float(len(y)), device=y.device), spectral_db(pred, y).sum()]
        ),
        lambda s, count: (s[2] - s[0]) / s[1],
    ),
}
choices.check_table(LOSSES, choices.LOSSES, "training.losses.LOSSES")


def loss_of(name: str, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss `name` of one batch, in one process."""
    loss = LOSSES[name]
    return loss.value(loss.sums(pred, y), y.numel())

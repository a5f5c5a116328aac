"""Speech-enhancement measures people read, per recording and averaged over a set.

- snr_db: 10 log10(|y|^2 / |y - y_hat|^2), the output's SNR against the clean signal;
- snr_gain_db: snr_db of the output minus snr_db of the noisy input (what was gained);
- si_sdr_db: scale-invariant SDR (Le Roux et al., 2019), blind to the output's gain;
  undefined (null) for an all-zero output;
- stoi: short-time objective intelligibility (0..1), from pystoi, which resamples to its
  own 10 kHz internally. PESQ is not reported: it needs 8/16 kHz and the only package for
  it has had no release since 2022.
"""

import math

import numpy as np
import torch

EPS = 1e-30


def _per_recording(a: torch.Tensor) -> torch.Tensor:
    return a.double().flatten(1)


def snr_db(pred: torch.Tensor, y: torch.Tensor) -> float:
    p, t = _per_recording(pred), _per_recording(y)
    return (10 * torch.log10((t**2).sum(1) / ((t - p) ** 2).sum(1).clamp_min(EPS))).mean().item()


def si_sdr_db(pred: torch.Tensor, y: torch.Tensor) -> float | None:
    p, t = _per_recording(pred), _per_recording(y)
    if ((p**2).sum(1) == 0).any():
        return None
    alpha = (p * t).sum(1) / (t**2).sum(1)
    target = alpha[:, None] * t
    return (10 * torch.log10((target**2).sum(1) / ((target - p) ** 2).sum(1).clamp_min(EPS))).mean().item()


def stoi(pred: torch.Tensor, y: torch.Tensor, sample_rate: int) -> float | None:
    from pystoi import stoi as pystoi

    p, t = _per_recording(pred).numpy(), _per_recording(y).numpy()
    if not np.any(p):
        return None
    scores = [pystoi(t[q], p[q], sample_rate, extended=False) for q in range(len(t))]
    value = float(np.mean(scores))
    return None if math.isnan(value) else value


def report(pred: torch.Tensor, x: torch.Tensor, y: torch.Tensor, sample_rate: int) -> dict:
    """All measures for one system's outputs `pred` on a set (x noisy, y clean)."""
    out = {"snr_db": snr_db(pred, y), "si_sdr_db": si_sdr_db(pred, y), "stoi": stoi(pred, y, sample_rate)}
    out["snr_gain_db"] = out["snr_db"] - snr_db(x, y)
    return out

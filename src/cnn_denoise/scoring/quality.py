"""Speech-enhancement measures people read, per recording and averaged over a set.

- snr_db: 10 log10(|y|^2 / |y - y_hat|^2), the output's SNR against the clean signal;
  every measure is averaged over the recordings whose clean signal is not silent (null if none);
- snr_gain_db: snr_db of the output minus snr_db of the noisy input (what was gained);
- si_sdr_db: scale-invariant SDR (Le Roux et al., 2019), blind to the output's gain;
  undefined (null) for an all-zero output;
- stoi: short-time objective intelligibility (0..1), from pystoi, which resamples to its
  own 10 kHz internally. PESQ and DNSMOS, for recorded speech, are in perceptual.py.
"""

import math
import warnings

import numpy as np
import torch

from cnn_denoise.lab.baselines import model_free
from cnn_denoise.scoring.sets import scores
from cnn_denoise.training import losses

EPS = 1e-30
PYSTOI_TOO_SHORT = 1e-5  # what pystoi returns, with a warning, when a recording has fewer than 30 speech frames


def _per_recording(pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of (pred, y) as float64, leaving out recordings whose clean signal is silent:
    no SNR is defined against silence. (Short synthetic recordings can be all pause.)"""
    p, t = pred.double().flatten(1), y.double().flatten(1)
    voiced = (t**2).sum(1) > 0
    return p[voiced], t[voiced]


def _mean(values: torch.Tensor) -> float | None:
    return values.mean().item() if values.numel() else None


def snr_db(pred: torch.Tensor, y: torch.Tensor) -> float | None:
    p, t = _per_recording(pred, y)
    return _mean(10 * torch.log10((t**2).sum(1) / ((t - p) ** 2).sum(1).clamp_min(EPS)))


def si_sdr_db(pred: torch.Tensor, y: torch.Tensor) -> float | None:
    p, t = _per_recording(pred, y)
    if not p.numel() or ((p**2).sum(1) == 0).any():
        return None
    return _mean(losses.si_sdr_db(p, t, floor=EPS))


def stoi(pred: torch.Tensor, y: torch.Tensor, sample_rate: int) -> float | None:
    from pystoi import stoi as pystoi

    p, t = (a.numpy() for a in _per_recording(pred, y))
    if not len(t) or not np.any(p):
        return None
    with warnings.catch_warnings():  # pystoi warns when a recording is too short; that is handled here
        warnings.simplefilter("ignore", RuntimeWarning)
        scores = [pystoi(t[q], p[q], sample_rate, extended=False) for q in range(len(t))]
    scores = [s for s in scores if s != PYSTOI_TOO_SHORT]
    if not scores:
        return None
    value = float(np.mean(scores))
    return None if math.isnan(value) else value


def measures(pred: torch.Tensor, x: torch.Tensor, y: torch.Tensor, sample_rate: int) -> dict:
    """All measures for one system's outputs `pred` on a set (x noisy, y clean)."""
    out = {"snr_db": snr_db(pred, y), "si_sdr_db": si_sdr_db(pred, y), "stoi": stoi(pred, y, sample_rate)}
    before = snr_db(x, y)
    out["snr_gain_db"] = None if out["snr_db"] is None or before is None else out["snr_db"] - before
    return out


def all_measures(pred: torch.Tensor, x: torch.Tensor, y: torch.Tensor, sample_rate: int) -> dict:
    """Every measure of one system's outputs on a set: the lab's losses (metrics.scores) and these."""
    return {**scores(pred, y), **measures(pred, x, y, sample_rate)}


def model_free_measures(train: dict, test: dict, lowpass_hz: float, rate: int) -> dict[str, dict]:
    """all_measures of each model-free baseline (baselines.model_free) on the test set: what the
    baselines stage writes once per dataset, and what evaluate measures itself without it."""
    outputs = model_free(train, test, lowpass_hz, rate)
    return {name: all_measures(out, test["x"], test["y"], rate) for name, out in outputs.items()}

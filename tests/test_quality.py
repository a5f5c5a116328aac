"""SNR, SI-SDR and STOI against their definitions."""

import numpy as np
import pytest
import torch

from cnn_denoise.scoring import quality


def sig(seed, q=3, n=16000):
    return torch.randn(q, 1, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_snr_matches_definition():
    y, e = sig(0), 0.1 * sig(1)
    expected = np.mean([10 * np.log10((y[i] ** 2).sum().item() / (e[i] ** 2).sum().item()) for i in range(3)])
    assert quality.snr_db(y + e, y) == pytest.approx(expected)


def test_si_sdr_ignores_gain_and_matches_definition():
    y, e = sig(0), 0.05 * sig(1)
    base = quality.si_sdr_db(y + e, y)
    assert quality.si_sdr_db(7.0 * (y + e), y) == pytest.approx(base)
    p, t = (y + e)[0, 0].numpy(), y[0, 0].numpy()
    target = (p @ t) / (t @ t) * t
    one = 10 * np.log10((target @ target) / ((p - target) @ (p - target)))
    assert quality.si_sdr_db((y + e)[:1], y[:1]) == pytest.approx(one)
    assert quality.si_sdr_db(torch.zeros_like(y), y) is None


def test_stoi_orders_clean_and_noisy():
    y = sig(0, q=2, n=32000)
    clean = quality.stoi(y, y, 32000)
    noisy = quality.stoi(y + 3 * sig(1, q=2, n=32000), y, 32000)
    assert clean == pytest.approx(1.0, abs=1e-6) and noisy < 0.9
    assert quality.stoi(torch.zeros_like(y), y, 32000) is None


def test_report_gain_is_relative_to_input():
    y = sig(0)
    x = 0.5 * y + 0.1 * sig(1)
    r = quality.measures(y + 0.01 * sig(2), x, y, 32000)
    assert r["snr_gain_db"] == pytest.approx(r["snr_db"] - quality.snr_db(x, y))


def test_silent_recordings_are_left_out_not_nan():
    y = sig(0)
    y[1] = 0  # all pause
    pred = y + 0.01 * sig(1)
    assert quality.snr_db(pred, y) == pytest.approx(quality.snr_db(pred[[0, 2]], y[[0, 2]]))
    assert quality.si_sdr_db(pred, y) == pytest.approx(quality.si_sdr_db(pred[[0, 2]], y[[0, 2]]))
    silent = torch.zeros_like(y)
    assert quality.measures(pred, pred, silent, 32000) == {
        "snr_db": None,
        "si_sdr_db": None,
        "stoi": None,
        "snr_gain_db": None,
    }


def test_stoi_of_recordings_too_short_for_it_is_null():
    """pystoi returns a placeholder 1e-05 (not a score) below 30 speech frames: reported as None."""
    y = torch.sin(torch.arange(2000) / 5.0)[None, None] * 1e-3
    assert quality.stoi(y, y, 32000) is None

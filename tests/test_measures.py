"""measures.py against independent oracles: PESQ's ceiling for identical signals and its order
with noise, DNSMOS's background score falling with noise, spectral gating removing noise."""

import numpy as np
import pytest
from debs import utterance

from cnn_denoise.scoring import perceptual


@pytest.fixture(scope="module")
def speech():
    return np.concatenate([utterance(s, 1.5, 32000) for s in range(4)])  # 6 s at 32 kHz


def test_pesq_of_identical_signals_is_its_ceiling_and_falls_with_noise(speech):
    noise = np.random.default_rng(0).standard_normal(len(speech)) * np.sqrt(np.mean(speech**2))
    assert perceptual.pesq_wb(speech, speech, 32000) == pytest.approx(4.644, abs=0.01)
    scores = [perceptual.pesq_wb(speech, speech + noise * 10 ** (-snr / 20), 32000) for snr in (30, 15, 0)]
    assert scores[0] > scores[1] > scores[2] >= -0.5
    assert perceptual.pesq_wb(np.zeros(32000), speech[:32000], 32000) is None  # no speech in the reference


def test_resampling_to_16k_keeps_a_tone():
    t = np.arange(48000) / 48000
    out = perceptual.to_16k(np.sin(2 * np.pi * 1000 * t), 48000)
    assert len(out) == 16000
    assert np.allclose(out[100:-100], np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)[100:-100], atol=1e-3)


@pytest.mark.slow
def test_dnsmos_hears_the_background(speech):
    clean = perceptual.dnsmos(speech, 32000)
    noisy = perceptual.dnsmos(speech + 0.05 * np.random.default_rng(1).standard_normal(len(speech)), 32000)
    assert set(clean) == {"sig", "bak", "ovrl"} and all(1 <= v <= 5 for v in clean.values())
    assert noisy["bak"] < clean["bak"] - 0.5 and noisy["ovrl"] < clean["ovrl"]
    segments = speech[: 6 * 32000].reshape(6, 1, 32000)  # a set: scored as one stream
    assert perceptual.dnsmos_set(segments, 32000)["bak"] == pytest.approx(clean["bak"], abs=0.6)


def test_spectral_gating_removes_stationary_noise(speech):
    y = speech[: 2 * 32000].reshape(2, 1, 32000)
    x = y + 0.01 * np.random.default_rng(2).standard_normal(y.shape)
    out = perceptual.spectral_gating(x, 32000)
    assert out.shape == x.shape
    pause = np.abs(y) < 1e-6  # the synthetic speech's pauses: noise alone
    assert pause.mean() > 0.1
    assert np.sum(out[pause] ** 2) < 0.5 * np.sum(x[pause] ** 2)  # gated: 3 dB and more less noise
    assert np.all(perceptual.spectral_gating(np.zeros((1, 1, 32000)), 32000) == 0)  # silence stays silence

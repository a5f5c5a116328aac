"""Delay of a system's output relative to its input, by cross-correlation; plus the speech-like probe signal.

A denoiser keeps speech and drops noise, so the peak of the cross-correlation between its input and
output sits at its delay. The probe is synthetic so that tests and measure.py need no recordings.
"""

import numpy as np
from scipy import signal


def measure_delay(x, y, max_lag: int) -> int:
    """Lag (samples) of `y` relative to `x`: y[n] ~ x[n - lag], searched within |lag| <= max_lag."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or y.ndim != 1 or not len(x) or not len(y):
        raise ValueError(f"measure_delay needs two non-empty 1-D arrays, got shapes {x.shape} and {y.shape}")
    if int(max_lag) < 0:
        raise ValueError(f"max_lag must be >= 0, got {max_lag}")
    c = signal.correlate(y, x, mode="full", method="fft")
    lags = signal.correlation_lags(len(y), len(x), mode="full")
    keep = np.abs(lags) <= int(max_lag)
    return int(lags[keep][np.argmax(c[keep])])


def speechlike(rate: int, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Voiced 'syllables': a jittered glottal pulse train through three formant resonators, float32 peak 0.5."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    f0 = 120 * (1 + 0.1 * np.sin(2 * np.pi * 3 * np.arange(n) / rate)) * (1 + 0.02 * rng.standard_normal(n))
    phase = np.cumsum(f0 / rate)
    src = np.diff(np.floor(phase), prepend=0.0) + 0.05 * rng.standard_normal(n)
    out = np.zeros(n)
    for f, bw in ((700, 130), (1220, 70), (2600, 160)):
        r = np.exp(-np.pi * bw / rate)
        out += signal.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / rate), r * r], src)
    syllable = np.clip(np.sin(np.pi * 4 * np.arange(n) / rate), 0, None) ** 0.5  # 4 syllables a second, gaps between
    out *= syllable
    return (0.5 * out / np.max(np.abs(out))).astype(np.float32)


def noisy(clean: np.ndarray, snr_db: float = 10.0, seed: int = 1) -> np.ndarray:
    """`clean` plus white noise at `snr_db`, float32."""
    noise = np.random.default_rng(seed).standard_normal(clean.shape)
    noise *= np.sqrt(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return (clean + noise).astype(np.float32)

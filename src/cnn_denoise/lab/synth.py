"""An offline stand-in for the course's dataset, made deterministically.

The course ships a zip holding one torch file: a list of Q (x, y) pairs, each a float32
tensor [1, N] (1 s at 32 kHz), y clean speech below ~2 kHz, x = 0.5 y + n with n Gaussian
noise band-passed to ~14-15.5 kHz, peaks ~1e-3. This module makes data with the same
layout and statistics, so that the pipeline runs with no network:

- speech-like y: syllables (80-300 ms) separated by pauses, each a harmonic series on a
  gliding pitch contour (90-220 Hz) shaped by two formants, low-passed at 1.9 kHz;
- n: white Gaussian noise through a band-pass filter at 14-15.5 kHz.

Every value is rounded to a 2^-32 grid before the float32 cast, so the bytes do not depend
on the last bit of the machine's sin/exp: the same seed gives the same zip everywhere.
"""

import concurrent.futures
import io
import os
import sys
import zipfile

import numpy as np
import torch
from tqdm import tqdm

SAMPLE_RATE = 32000  # Hz, as the course's recordings
SPEECH_BAND = 1900.0  # Hz, the clean signal's low-pass edge
NOISE_BAND = (14000.0, 15500.0)  # Hz, the noise's pass band
SPEECH_PEAK = (0.8e-3, 1.2e-3)  # peak |y|, drawn per recording
NOISE_RMS = 1.5e-4  # RMS of n
MEMBER = "lab2b_data.pt"  # name of the torch file inside the zip
_GRID = 2.0**32  # values are multiples of 1 / _GRID
_ZIP_TIME = (2023, 11, 3, 0, 0, 0)  # fixed timestamp: the lab's date


def _draw_syllable(rng: np.random.Generator) -> tuple:
    """The random choices of one voiced segment, drawn in a fixed order."""
    f0_start = rng.uniform(90.0, 220.0)
    glide = rng.uniform(0.75, 1.3)  # intonation glide
    vibrato = rng.uniform(4, 7)  # Hz
    formants = [(rng.uniform(300, 900), rng.uniform(60, 120)), (rng.uniform(900, 1800), rng.uniform(80, 160))]
    offsets = rng.uniform(0, 2 * np.pi, size=(int(SPEECH_BAND // 80), 1))
    return f0_start, glide, vibrato, formants, offsets, rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0)


def _syllable(draws: tuple, length: int, fs: int) -> np.ndarray:
    """A voiced segment: harmonics of a gliding f0, weighted by two formant resonances."""
    f0_start, glide, vibrato, formants, offsets, shape, level = draws
    t = np.arange(length) / fs
    f0 = np.linspace(f0_start, f0_start * glide, length) * (1 + 0.02 * np.sin(2 * np.pi * vibrato * t))
    phase = 2 * np.pi * np.cumsum(f0) / fs
    # Harmonics above the band for the whole segment would add exact zeros to the sum below:
    # leave them out (the rows kept come first, so the sum and its bytes are the same).
    h = np.arange(1, int(np.sum(np.arange(1, len(offsets) + 1) * np.min(f0) < SPEECH_BAND)) + 1)[:, None]
    freq = h * f0[None, :]
    gain = sum(1.0 / np.sqrt(1.0 + ((freq - fc) / bw) ** 2) for fc, bw in formants) / np.sqrt(h)
    gain = gain * (freq < SPEECH_BAND)
    voiced = np.sum(gain * np.sin(h * phase[None, :] + offsets[: len(h)]), axis=0)
    envelope = np.sin(np.pi * np.arange(length) / length) ** shape
    return voiced * envelope * level


def draw_speech(rng: np.random.Generator, n: int, fs: int = SAMPLE_RATE) -> tuple:
    """The random choices of one recording (where its syllables fall, each one's voice, its
    peak level), drawn in a fixed order; render_speech turns them into samples."""
    syllables = []
    pos = int(rng.uniform(0.0, 0.15) * fs)
    while pos < n:
        length = min(int(rng.uniform(0.08, 0.30) * fs), n - pos)
        if length > 8:
            syllables.append((pos, length, _draw_syllable(rng)))
        pos += length + int(rng.uniform(0.03, 0.25) * fs)
    return n, fs, syllables, rng.uniform(*SPEECH_PEAK) if syllables else None


def render_speech(draws: tuple) -> np.ndarray:
    """One speech-like recording from its draws: syllables and pauses, band-limited, peak ~1e-3."""
    import scipy.signal  # here, not above: the train stage reads this module's constants and would pay its import

    n, fs, syllables, peak_level = draws
    y = np.zeros(n)
    for pos, length, voice in syllables:
        y[pos : pos + length] += _syllable(voice, length, fs)
    y = scipy.signal.sosfiltfilt(scipy.signal.butter(8, SPEECH_BAND, fs=fs, output="sos"), y)
    peak = np.max(np.abs(y))
    return y * (peak_level / peak) if peak > 0 else y


def clean_speech(rng: np.random.Generator, n: int, fs: int = SAMPLE_RATE) -> np.ndarray:
    """One speech-like recording of n samples."""
    return render_speech(draw_speech(rng, n, fs))


_WARMUP = 2048  # samples of noise dropped while the band-pass filter settles


def band_noise(rng: np.random.Generator, n: int, fs: int = SAMPLE_RATE) -> np.ndarray:
    """Gaussian noise band-passed to NOISE_BAND, scaled to NOISE_RMS."""
    return _shape_noise(rng.standard_normal(n + _WARMUP), fs)


def _shape_noise(white: np.ndarray, fs: int) -> np.ndarray:
    import scipy.signal

    sos = scipy.signal.butter(6, NOISE_BAND, btype="bandpass", fs=fs, output="sos")
    noise = scipy.signal.sosfilt(sos, white)[_WARMUP:]
    return noise * (NOISE_RMS / np.sqrt(np.mean(noise**2)))


def _on_grid(v: np.ndarray) -> np.ndarray:
    return np.round(v * _GRID) / _GRID


def _render_pair(draws: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) as float32 from one recording's draws: y on the grid, x = 0.5 y + n on the grid."""
    speech, white, fs = draws
    y = _on_grid(render_speech(speech))
    return _on_grid(0.5 * y + _on_grid(_shape_noise(white, fs))).astype(np.float32), y.astype(np.float32)


def make_pairs(pairs: int, samples: int, seed: int, fs: int = SAMPLE_RATE) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Q (x, y) pairs in the course's layout: float32 tensors [1, samples], x = 0.5 y + n."""
    if pairs < 1 or samples < 1:
        raise ValueError(f"synthetic data needs pairs >= 1 and samples >= 1, got pairs={pairs}, samples={samples}")
    rng = np.random.default_rng(seed)
    # Every random choice first, in one stream, then the arithmetic on every core: the same
    # bytes for any number of workers.
    draws = [(draw_speech(rng, samples, fs), rng.standard_normal(samples + _WARMUP), fs) for _ in range(pairs)]
    # Threads, not processes: NumPy's ufuncs release the GIL on long arrays, and a forked
    # worker of a process whose torch threads have run can deadlock (it did under pytest-xdist).
    with concurrent.futures.ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        bar = tqdm(
            pool.map(_render_pair, draws),
            total=pairs,
            desc="synthetic data",
            unit="pair",
            file=sys.stderr,
            disable=None,
        )
        return [(torch.from_numpy(x)[None, :], torch.from_numpy(y)[None, :]) for x, y in bar]


def make_zip(pairs: int, samples: int, seed: int) -> bytes:
    """The whole dataset as the bytes of a zip holding one torch file, as the course ships it."""
    buffer = io.BytesIO()
    torch.save(make_pairs(pairs, samples, seed), buffer)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        info = zipfile.ZipInfo(MEMBER, date_time=_ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        zf.writestr(info, buffer.getvalue(), compresslevel=1)  # higher levels: much slower, barely smaller
    return out.getvalue()

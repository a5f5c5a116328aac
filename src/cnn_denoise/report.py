"""Things to listen to and look at: WAV files and figures (the evaluate stage's reports/,
and the training curves that tracking logs to MLflow).

For a few test recordings: noisy / clean / CNN / best-linear WAVs (16-bit, one gain per
example so their loudness compares) and a figure of their waveforms and spectrograms; and
the frequency responses of the first layer's filters (the lab's filterbank picture) beside
the best linear filter's.
"""

from pathlib import Path

import matplotlib
import numpy as np
import scipy.io.wavfile

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save(fig, path) -> Path:
    """Lay out, write and close a figure; return its path."""
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def history_png(history: list[dict], path) -> Path:
    """Train and test L1 per epoch (epoch 0 is the initial model), on a log scale."""
    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    for key, label in (("train_l1", "train"), ("test_l1", "test")):
        ax.plot(epochs, [row[key] for row in history], marker="o", markersize=3, label=label)
    ax.set(xlabel="epoch", ylabel="L1 (mean absolute error)", yscale="log", title="Training history")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return save(fig, path)


def write_wavs(folder, name: str, signals: dict[str, np.ndarray], sample_rate: int) -> list[Path]:
    """One 16-bit WAV per signal; a shared gain puts the loudest at 0.9 of full scale."""
    peak = max(float(np.max(np.abs(s))) for s in signals.values()) or 1.0
    paths = []
    for label, s in signals.items():
        path = Path(folder) / f"{name}_{label}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        scipy.io.wavfile.write(path, sample_rate, np.round(np.clip(s / peak * 0.9, -1, 1) * 32767).astype(np.int16))
        paths.append(path)
    return paths


def example_figure(path, signals: dict[str, np.ndarray], sample_rate: int, title: str) -> Path:
    """Waveform (left) and spectrogram (right) of each signal, one row each."""
    fig, axes = plt.subplots(len(signals), 2, figsize=(11, 2.2 * len(signals)), dpi=100, squeeze=False)
    t = np.arange(len(next(iter(signals.values())))) / sample_rate
    for row, (label, s) in zip(axes, signals.items(), strict=True):
        row[0].plot(t, s, linewidth=0.5)
        row[0].set(ylabel=label, xlim=(t[0], t[-1]))
        with np.errstate(divide="ignore"):  # silent stretches have zero power: -inf dB, drawn black
            row[1].specgram(s, NFFT=512, Fs=sample_rate, noverlap=384, cmap="magma", vmin=-200)
        row[1].set(ylabel="Hz")
    axes[-1][0].set_xlabel("time (s)")
    axes[-1][1].set_xlabel("time (s)")
    fig.suptitle(title)
    return save(fig, path)


def response_figure(path, first_layer: np.ndarray, linear: np.ndarray, sample_rate: int) -> Path:
    """|H(f)| in dB of each first-layer filter (H[:, 0, g]) and of the best linear filter."""
    n = 4096
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    for g in range(first_layer.shape[-1]):
        ax.plot(freqs, 20 * np.log10(np.abs(np.fft.rfft(first_layer[:, 0, g], n)) + 1e-12), linewidth=1, label=f"layer 1, filter {g + 1}")
    ax.plot(freqs, 20 * np.log10(np.abs(np.fft.rfft(linear, n)) + 1e-12), "k--", linewidth=1.5, label="best linear filter")
    ax.set(xlabel="frequency (Hz)", ylabel="|H| (dB)", title="Frequency responses: the first layer's filterbank")
    ax.axvspan(14000, 15500, color="red", alpha=0.1, label="noise band")
    ax.axvspan(0, 2000, color="green", alpha=0.1, label="speech band")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return save(fig, path)

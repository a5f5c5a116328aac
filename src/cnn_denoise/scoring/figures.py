"""Things to listen to and look at: WAV files and figures (the evaluate stage's reports/,
and the training curves that tracking logs to MLflow).

For a few test recordings: noisy / clean / CNN / best-linear WAVs (16-bit, one gain per
example so their loudness compares) and a figure of their waveforms and spectrograms; and
the frequency responses of the first layer's filters (the lab's filterbank picture) beside
the best linear filter's.
"""

from pathlib import Path

import numpy as np
import scipy.io.wavfile
from matplotlib.figure import Figure


def figure(rows: int, cols: int, size: tuple[float, float], dpi: int = 100):
    """A figure with a fixed layout (no pyplot state; tight_layout drew every figure twice,
    a third of evaluate's figure time) and its axes as a rows x cols array."""
    fig = Figure(figsize=size, dpi=dpi)
    return fig, fig.subplots(rows, cols, squeeze=False)


def save(fig, path) -> Path:
    """Write a figure; return its path."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return Path(path)


def envelope(t: np.ndarray, s: np.ndarray, columns: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """The min and max of s in each of `columns` equal blocks, in time order, as an audio
    editor draws a waveform: at a figure's ~1000 pixels the same picture as every sample,
    for a fraction of the drawing. Signals shorter than 2 x columns come back whole."""
    per = len(s) // columns
    if per < 2:
        return t, s
    blocks = s[: per * columns].reshape(columns, per)
    lo, hi = blocks.argmin(1), blocks.argmax(1)
    first, second = np.minimum(lo, hi), np.maximum(lo, hi)
    starts = np.arange(columns) * per
    index = np.stack([starts + first, starts + second], 1).ravel()
    index = np.concatenate([index, np.arange(per * columns, len(s))])  # the tail, sample by sample
    return t[index], s[index]


def history_png(history: list[dict], path) -> Path:
    """Train and test L1 per epoch (epoch 0 is the initial model), on a log scale."""
    epochs = [row["epoch"] for row in history]
    fig, ((ax,),) = figure(1, 1, (6, 3.5), dpi=120)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.14, top=0.9)
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
    fig, axes = figure(len(signals), 2, (11, 2.2 * len(signals)))
    fig.subplots_adjust(
        left=0.08, right=0.98, bottom=0.3 / len(signals), top=1 - 0.3 / len(signals), hspace=0.35, wspace=0.18
    )
    t = np.arange(len(next(iter(signals.values())))) / sample_rate
    for row, (label, s) in zip(axes, signals.items(), strict=True):
        row[0].plot(*envelope(t, s), linewidth=0.5)
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
    fig, ((ax,),) = figure(1, 1, (9, 4))
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.12, top=0.92)
    for g in range(first_layer.shape[-1]):
        ax.plot(
            freqs,
            20 * np.log10(np.abs(np.fft.rfft(first_layer[:, 0, g], n)) + 1e-12),
            linewidth=1,
            label=f"layer 1, filter {g + 1}",
        )
    ax.plot(
        freqs, 20 * np.log10(np.abs(np.fft.rfft(linear, n)) + 1e-12), "k--", linewidth=1.5, label="best linear filter"
    )
    ax.set(xlabel="frequency (Hz)", ylabel="|H| (dB)", title="Frequency responses: the first layer's filterbank")
    ax.axvspan(14000, 15500, color="red", alpha=0.1, label="noise band")
    ax.axvspan(0, 2000, color="green", alpha=0.1, label="speech band")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return save(fig, path)

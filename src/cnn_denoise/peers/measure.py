"""Print each installed peer's delay, measured on speech-like input: `python -m cnn_denoise.peers.measure`.

The delay is the cross-correlation lag of a peer's raw (uncompensated) output against its input, at
the peer's own rate. Inputs: espeak-ng speech plus noise when espeak-ng is installed, the synthetic
speech-like signal plus noise, and a noise burst. The DELAY constants in the peer modules are what
this prints.
"""

import shutil
import subprocess
import tempfile

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from cnn_denoise.peers import PEERS, available
from cnn_denoise.peers.align import measure_delay, noisy, speechlike

TEXT = "The quick brown fox jumps over the lazy dog. Speech denoising keeps the voice and drops the noise."


def espeak(rate: int) -> np.ndarray | None:
    """Speech from espeak-ng resampled to `rate`, or None if espeak-ng is not installed."""
    if shutil.which("espeak-ng") is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-w", f.name, TEXT], check=True, capture_output=True)
        x, sr = sf.read(f.name, dtype="float32")
    x = resample_poly(x, rate, sr).astype(np.float32)
    return 0.5 * x / np.max(np.abs(x))


def probes(rate: int) -> dict[str, np.ndarray]:
    """Named test inputs at `rate`."""
    out = {"synthetic speech + noise": noisy(speechlike(rate, 3.0))}
    speech = espeak(rate)
    if speech is not None:
        out["espeak-ng speech + noise"] = noisy(speech)
    burst = np.zeros(rate, np.float32)
    burst[rate // 4 : rate // 2] = 0.3 * np.random.default_rng(2).standard_normal(rate // 4)
    out["noise burst"] = burst
    return out


def main() -> None:
    for name, why in available().items():
        mod = PEERS[name]
        if why:
            print(f"{name}: skipped ({why})")
            continue
        lags = {k: measure_delay(x, mod.raw(x, mod.RATE // 10), mod.RATE // 10) for k, x in probes(mod.RATE).items()}
        found = sorted(set(lags.values()))
        print(
            f"{name}: delay {found} samples at {mod.RATE} Hz = {[1000 * d / mod.RATE for d in found]} ms; "
            f"module DELAY = {mod.DELAY} ({'agrees' if found == [mod.DELAY] else 'DIFFERS'}); by probe: {lags}"
        )


if __name__ == "__main__":
    main()

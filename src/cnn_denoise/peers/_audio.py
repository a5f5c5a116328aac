"""Checks and alignment shared by the peer wrappers, so each peer module stays a thin adapter."""

import numpy as np


def as_mono(x) -> np.ndarray:
    """Return `x` as a contiguous 1-D float32 array, or raise ValueError with one line."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio of shape [n], got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"expected float audio in [-1, 1], got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains NaN or infinite samples")
    return np.ascontiguousarray(x, dtype=np.float32)


def align(raw: np.ndarray, delay: int, n: int) -> np.ndarray:
    """Undo a peer's delay: drop its first `delay` samples and keep `n` (zero-padded if short)."""
    out = np.zeros(n, dtype=np.float32)
    kept = raw[delay : delay + n]
    out[: len(kept)] = kept
    return out

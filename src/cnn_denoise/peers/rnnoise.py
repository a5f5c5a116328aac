"""RNNoise (Valin 2018) through the C library that PyPI's `pyrnnoise` ships, with its built-in weights.

We call librnnoise.so with ctypes ourselves instead of pyrnnoise's Python API: that API rounds every
frame to int16 (and asserts the input lies in [-1, 1]), and importing it pulls in audiolab/PyAV.
The C API (rnnoise_create/process_frame/destroy) takes float samples on the int16 scale, 480 a frame.
"""

import ctypes
import importlib.util
import os

import numpy as np

from cnn_denoise.peers._audio import align, as_mono

DIST = "pyrnnoise"
RATE = 48000
FRAME = 480
# Measured by `python -m cnn_denoise.peers.measure` (cross-correlation of the raw output with a speech-like input).
DELAY = 960
_SCALE = 32768.0  # RNNoise works on int16-scaled floats
_lib = None


def missing() -> str | None:
    """Why this peer cannot run here, or None."""
    spec = importlib.util.find_spec("pyrnnoise")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return f"{DIST} is not installed: pip install '.[peers]'"
    if not os.path.exists(os.path.join(spec.submodule_search_locations[0], "librnnoise.so")):
        return f"{DIST} has no librnnoise.so for this platform: pip install '.[peers]' on Linux"
    return None


def _load():
    global _lib
    if _lib is None:
        why = missing()
        if why:
            raise ImportError(why)
        path = os.path.join(importlib.util.find_spec("pyrnnoise").submodule_search_locations[0], "librnnoise.so")
        lib = ctypes.CDLL(path)
        lib.rnnoise_create.argtypes, lib.rnnoise_create.restype = [ctypes.c_void_p], ctypes.c_void_p
        lib.rnnoise_destroy.argtypes, lib.rnnoise_destroy.restype = [ctypes.c_void_p], None
        lib.rnnoise_get_frame_size.restype = ctypes.c_int
        f32 = ctypes.POINTER(ctypes.c_float)
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, f32, f32]
        lib.rnnoise_process_frame.restype = ctypes.c_float
        if lib.rnnoise_get_frame_size() != FRAME:
            raise ImportError(f"librnnoise frame size is {lib.rnnoise_get_frame_size()}, expected {FRAME}")
        _lib = lib
    return _lib


def raw(x: np.ndarray, tail: int, threads: int = 1) -> np.ndarray:
    """The uncompensated output for `x` followed by `tail` zeros (len(x) + tail samples). `threads` is unused."""
    lib = _load()
    n = len(x) + tail
    buf = np.zeros(-(-n // FRAME) * FRAME, dtype=np.float32)
    buf[: len(x)] = x * _SCALE
    out = np.empty_like(buf)
    f32 = ctypes.POINTER(ctypes.c_float)
    state = lib.rnnoise_create(None)
    try:
        for i in range(0, len(buf), FRAME):
            lib.rnnoise_process_frame(state, out[i:].ctypes.data_as(f32), buf[i:].ctypes.data_as(f32))
    finally:
        lib.rnnoise_destroy(state)
    return out[:n] / np.float32(_SCALE)


def enhance(x, threads: int = 1) -> np.ndarray:
    """Denoise mono float32 audio at 48 kHz; same length, delay removed."""
    x = as_mono(x)
    return align(raw(x, DELAY + FRAME, threads), DELAY, len(x))

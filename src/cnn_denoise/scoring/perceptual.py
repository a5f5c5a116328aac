"""Perceptual measures of speech and a spectral-gating baseline, for the recorded-speech sets.

- pesq_wb: wide-band PESQ (ITU-T P.862.2, the `pesq` package), -0.5..4.64, after resampling
  to 16 kHz. It hears 50 Hz-7 kHz only: the lab's 14-15.5 kHz noise is inaudible to it, so it
  is reported for the speech sets, never for the lab's;
- dnsmos: DNSMOS P.835 (Reddy et al., 2022), a network's estimate of the 1-5 opinion scores of
  the speech (SIG), the background (BAK) and the whole (OVRL), no clean reference needed. The
  ONNX model and the polynomial calibration are those the `speechmos` wheel ships; it is run
  here with onnxruntime (speechmos's own module imports librosa, for a second model we do not
  use). It scores 9.01 s windows at 16 kHz, a second apart; shorter signals are repeated to
  fill one, as speechmos does;
- spectral_gating: non-stationary spectral gating (`noisereduce`), a denoiser that needs no
  training: the classic baseline a learned one must beat.
"""

import math
import warnings
from functools import cache

import numpy as np
import scipy.signal

PESQ_RATE = 16000  # Hz: wide-band PESQ and DNSMOS take 16 kHz
DNSMOS_SECONDS = 9.01  # the model's input length
# DNSMOS's calibration of the raw network outputs to MOS (speechmos's non-personalised model)
_CALIBRATION = {
    "sig": (-0.08397278, 1.22083953, 0.0052439),
    "bak": (-0.13166888, 1.60915514, -0.39604546),
    "ovrl": (-0.06766283, 1.11546468, 0.04602535),
}


def to_16k(signal, rate: int) -> np.ndarray:
    """The signal resampled to 16 kHz (polyphase, float64)."""
    signal = np.asarray(signal, dtype=np.float64)
    if rate == PESQ_RATE:
        return signal
    g = math.gcd(PESQ_RATE, int(rate))
    return scipy.signal.resample_poly(signal, PESQ_RATE // g, int(rate) // g)


def pesq_wb(clean, degraded, rate: int) -> float | None:
    """Wide-band PESQ of `degraded` against `clean` (1-D, same length, at `rate`); None where
    PESQ finds no speech in the reference (silence)."""
    from pesq import NoUtterancesError, PesqError, pesq

    ref, deg = to_16k(clean, rate), to_16k(degraded, rate)
    if not np.any(ref) or not np.any(deg):
        return None
    try:
        return float(pesq(PESQ_RATE, ref, deg, "wb"))
    except (NoUtterancesError, PesqError):
        return None


@cache
def _session():
    import importlib.resources

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one core: stages share the machine (and make test runs one per core)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = False  # the arena keeps its peak: more memory, no faster here
    model = importlib.resources.files("speechmos") / "dnsmos_models" / "sig_bak_ovr.onnx"
    with importlib.resources.as_file(model) as path:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _windows(audio: np.ndarray, hop: float):
    """The 9.01 s windows DNSMOS scores, `hop` seconds apart, of 16 kHz audio (repeated to one
    window's length when shorter), one at a time: a second apart they overlap nine times over."""
    length = int(DNSMOS_SECONDS * PESQ_RATE)
    if len(audio) < length:
        audio = np.resize(audio, length)  # np.resize repeats the signal
    for s in range(0, len(audio) - length + 1, int(hop * PESQ_RATE)):
        yield audio[s : s + length].astype(np.float32)


def _score(windows) -> dict:
    raw = np.concatenate([_session().run(None, {"input_1": w[None]})[0] for w in windows])
    return {
        name: float(np.mean(np.polyval(_CALIBRATION[name], raw[:, i]))) for i, name in enumerate(("sig", "bak", "ovrl"))
    }


def dnsmos(signal, rate: int) -> dict:
    """DNSMOS P.835 of one recording (1-D, any rate): {"sig", "bak", "ovrl"} on the 1-5 scale,
    the means over its 9.01 s windows one second apart (as speechmos scores a file)."""
    audio = np.asarray(signal)
    if rate != PESQ_RATE or audio.dtype != np.float32:  # 16 kHz float32 (enhance --score's) is used as it is
        audio = to_16k(audio, rate)
    if not np.all(np.isfinite(audio)):
        raise ValueError("dnsmos: the signal holds NaN or infinite values")
    peak = np.max(np.abs(audio)) if len(audio) else 0.0
    if peak > 1:  # the model was trained on [-1, 1]: a louder file is scaled down, as a player would clip it
        audio = audio / peak
    return _score(_windows(audio, 1.0))


def dnsmos_set(signals, rate: int) -> dict:
    """DNSMOS of a set of short recordings ([Q, N] or [Q, 1, N]): played one after the other,
    scored in back-to-back 9.01 s windows (a 1 s segment repeated nine times would cost nine
    times as much to score the same sound)."""
    audio = to_16k(np.asarray(signals, dtype=np.float64).reshape(len(signals), -1).ravel(), rate)
    audio = audio / max(1.0, float(np.max(np.abs(audio)))) if len(audio) else audio
    return _score(_windows(audio, DNSMOS_SECONDS))


def spectral_gating(x, rate: int) -> np.ndarray:
    """Each row of x ([Q, 1, N] or [Q, N], float) denoised by non-stationary spectral gating."""
    import noisereduce

    x = np.asarray(x, dtype=np.float64)
    rows = x.reshape(len(x), -1)
    out = np.empty_like(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # silent rows: 0/0 in its masks, output 0
        for q, row in enumerate(rows):
            out[q] = np.nan_to_num(noisereduce.reduce_noise(y=row, sr=rate, stationary=False, n_jobs=1))
    return out.reshape(x.shape)


def perceptual(pred, y, rate: int) -> dict:
    """Wide-band PESQ (mean over recordings) and DNSMOS of a speech set's outputs ([Q, 1, N] tensors)."""
    p, t = pred[:, 0].double().numpy(), y[:, 0].double().numpy()
    scores = [pesq_wb(t[q], p[q], rate) for q in range(len(t))]
    scores = [v for v in scores if v is not None]
    out = {"pesq_wb": float(np.mean(scores)) if scores else None}
    return {**out, **{f"dnsmos_{k}": v for k, v in dnsmos_set(p, rate).items()}}

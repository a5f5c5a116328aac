"""What `cnn-denoise enhance` and `Denoiser` do to a recording: the rules and their text,
written once here. `cnn-denoise enhance --help` prints RULES; the command and the Python API
run the same functions below, so a file and an array come back by the same rules.

Torch-free and small: the arithmetic of levels and scales is here because getting it wrong
writes garbage with exit status 0 (an overflow, a silent model), not because it is long.
"""

import math
import textwrap

import numpy as np

from cnn_denoise.common.errors import PipelineError

FULL_SCALE = 0.999  # an output whose peak would pass 1.0 is scaled to this peak
MAX_RATE = 768_000  # Hz: the rates a recording and a model may have (params.yaml's data.sample_rate allows 1000..)
MIN_MODEL_RATE = 1000
# Resampling by up/down designs a filter of 20 max(up, down) + 1 taps; past this term its
# design alone takes gigabytes (a 44099 Hz file against a 32 kHz model is 32000/44099: fine).
MAX_RATIO_TERM = 1 << 17

RULES = {
    "rate": "resampled to the model's rate (its checkpoint records it) with SciPy's polyphase resampler, "
    "denoised, resampled back: the output has the input's rate (1 Hz to 768 kHz; a rate whose ratio to the "
    f"model's needs a filter past {20 * MAX_RATIO_TERM + 1} taps is refused)",
    "channels": "each channel is denoised on its own; the output has the input's channels",
    "level": "the recording is scaled to the training inputs' RMS and the output scaled back; the models learnt "
    "y from x = 0.5 y + n, so speech comes out about twice as loud; silence stays silence",
    "clipping": f"never wrapped around: an output past full scale (1.0) is scaled down as a whole to a peak of "
    f"{FULL_SCALE}, and said (the command prints a note, Denoiser warns)",
    "format": "a WAV comes back in its own length and sample format (PCM 8 to 32-bit, float, u-law, A-law, "
    "IMA/MS/NMS ADPCM, G.721, GSM 6.10; MP3 in a WAV as 16-bit PCM, said); what PyAV (FFmpeg) decodes (MP3, FLAC, "
    "AAC, Opus, Vorbis, WMA...) comes back as <stem>.wav, 16-bit PCM (24-bit from deeper lossless sources), said; "
    "a file neither reads is named at the end, after the others, and the exit status is 1; inputs are never "
    "overwritten; long files stream in blocks with bounded memory",
}


def help_text(width: int = 100, rules: dict | None = None, header: str = "policies:") -> str:
    """RULES (or `rules`) as the epilog of `cnn-denoise enhance --help` (or of another command's)."""
    lines = [header]
    for name, rule in (RULES if rules is None else rules).items():
        lines += textwrap.wrap(rule, width, initial_indent=f"  {name:10}", subsequent_indent=" " * 12)
    return "\n".join(lines) + "\n"


def ratio(rate: int, model_rate: int, where: str) -> tuple[int, int]:
    """(up, down): the recording's rate to the model's, in lowest terms; refused where the
    resampler's filter could not be designed in bounded memory."""
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or not 1 <= rate <= MAX_RATE:
        raise PipelineError(
            f"{where} has a sample rate of {rate!r}, not a whole number of Hz from 1 to {MAX_RATE}; give a recording "
            "at a rate in that range (or fix its header)"
        )
    g = math.gcd(int(rate), int(model_rate))
    up, down = model_rate // g, int(rate) // g
    if max(up, down) > MAX_RATIO_TERM:
        raise PipelineError(
            f"{where} is at {rate} Hz, {up}/{down} of the model's {model_rate} Hz: its resampling filter would need "
            f"{20 * max(up, down) + 1} taps; resample it to a common rate first (e.g. sox in.wav -r 48000 out.wav)"
        )
    return up, down


def training_record_problem(audio: dict) -> str | None:
    """Why a checkpoint's record of its training recordings ({"sample_rate", "input_rms"})
    cannot set a recording's rate and level, with the fix, or None."""
    rate, rms = audio.get("sample_rate"), audio.get("input_rms")
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or not MIN_MODEL_RATE <= rate <= MAX_RATE:
        return (
            f"its training sample rate is {rate!r}, not a whole number of Hz from {MIN_MODEL_RATE} to {MAX_RATE}; "
            "give a checkpoint written by the train stage"
        )
    if isinstance(rms, bool) or not isinstance(rms, int | float) or not math.isfinite(rms) or rms < 0:
        return (
            f"its training level (input_rms) is {rms!r}, not a finite number >= 0; give a checkpoint written by "
            "the train stage"
        )
    if rms == 0:
        return (
            "it was trained on silent recordings (its training level input_rms is 0), so it has no level to bring a "
            "recording to; retrain it on recordings that are not all silence"
        )
    return None


class Level:
    """The RMS of a recording fed in blocks, without overflow: the sum of squares is kept
    relative to the largest magnitude so far (as LAPACK's dnrm2 does), so samples near 1e200
    give their RMS, not inf."""

    def __init__(self):
        self.scale, self.ssq, self.count = 0.0, 0.0, 0

    def add(self, block: np.ndarray) -> None:
        self.count += block.size
        peak = float(np.abs(block).max(initial=0.0))
        if peak == 0.0:
            return
        if peak > self.scale:
            self.ssq *= (self.scale / peak) ** 2
            self.scale = peak
        self.ssq += float(np.square(block / self.scale).sum())

    @property
    def rms(self) -> float:
        return self.scale * math.sqrt(self.ssq / self.count) if self.count and self.scale else 0.0


def to_training_level(block: np.ndarray, rms: float, input_rms: float) -> np.ndarray:
    """A recording of this RMS brought to the training level (silence left as it is). Divided
    by rms first: x / rms is at most sqrt(n) whatever the magnitudes, where input_rms / rms
    overflows for tiny recordings."""
    return block / rms * input_rms if rms > 0 else block


def output_factor(peak: float, rms: float, input_rms: float) -> tuple[float, float]:
    """(factor, clipped): what multiplies the model's output at the training level, of this
    peak, to give the output at the recording's level; `clipped` is the extra factor the
    clipping rule applied (1.0 when the output stays within full scale). Overflow-free: the
    recording's level is rms / input_rms, and peak * rms passing input_rms means the output
    passes full scale, decided without forming either quotient."""
    if peak == 0.0 or rms == 0.0:
        return 0.0, 1.0  # silence out (zeros in give zeros out: the CNN has no bias)
    if peak * rms > input_rms:
        return FULL_SCALE / peak, FULL_SCALE / peak * (input_rms / rms)
    return rms / input_rms, 1.0


def clipping_note(name: str, clipped: float) -> str:
    return f"{name}: the output would have passed full scale; scaled by {clipped:.3g} as a whole"


def gate(block: np.ndarray, what: str, fix: str) -> np.ndarray:
    """The check on every array that leaves the program: finite, and (once scaled) within full
    scale. Refused, naming `what` and `fix`, rather than written as garbage with exit status 0."""
    if not np.isfinite(block).all():
        raise PipelineError(f"{what} holds NaN or infinite samples; {fix}")
    return block

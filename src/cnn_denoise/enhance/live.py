"""`cnn-denoise stream`: audio from a pipe denoised as it arrives, a few ms at a time.

    blocks from the pipe -> the training level -> resampled to the model's rate (resample.py)
    -> the model one block at a time with its state (engine.py) -> resampled back -> the
    recording's level -> the pipe, flushed after every block

enhance's rules (policy.py) hold where a stream allows them; two cannot, and LIVE_RULES says
what happens instead. The level: enhance scales a recording by its RMS over the whole file,
which a stream never has; here the RMS is the mean square so far (the first LEVEL_SECONDS),
then a moving mean over the last LEVEL_SECONDS or so, so the gain follows a talker who comes
closer but not each syllable (`--level DBFS` fixes it instead). Clipping: an output cannot be
scaled as a whole once sent, so samples past full scale are clipped, and counted at the end.

Memory is a few blocks and the model's state, whatever the length of the input.
"""

import math
import os
import time

import numpy as np

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.enhance import pipes, policy
from cnn_denoise.enhance.engine import BlockStream
from cnn_denoise.enhance.resample import Resampler

LEVEL_SECONDS = 2.0  # the auto level's memory: a talker moving, not a syllable
LEVEL_FLOOR = 1e-4  # RMS (-80 dBFS) below which the auto level stops raising the gain: hiss is not brought up to speech
LIVE_RULES = {
    "level": f"the input is brought to the training level by its RMS so far, then over about the last "
    f"{LEVEL_SECONDS:g} s (a stream has no whole-file RMS), and the output scaled back; --level DBFS fixes it",
    "clipping": "samples past full scale are clipped (a stream cannot be scaled as a whole afterwards) and counted "
    "at the end",
    "rate": "resampled to the model's rate and back as the audio arrives (SciPy's polyphase filter, as enhance; "
    "it waits for 10 x max(up, down) / up input samples more, 0.6 ms from 48 kHz)",
    "delay": "the model's output lags its input by its algorithmic delay (printed at the start, and by cnn-denoise "
    "info); --align drops that many samples at the start and flushes as many at the end, so output sample n is "
    "input sample n denoised",
}


def help_text(width: int = 100) -> str:
    """LIVE_RULES as the end of `cnn-denoise stream --help`, laid out as enhance's policies are."""
    from cnn_denoise.enhance import policy

    return policy.help_text(width, LIVE_RULES, "policies: enhance's (cnn-denoise enhance --help), but")


class Level:
    """The gain to the training level, block by block (see the module docstring)."""

    def __init__(self, input_rms: float, rate: int, fixed_db: float | None = None):
        self.input_rms, self.memory = input_rms, LEVEL_SECONDS * rate
        self.fixed = None if fixed_db is None else 10 ** (fixed_db / 20)
        self.ms, self.seen = 0.0, 0

    def __call__(self, block: np.ndarray) -> float:
        if self.fixed is not None:
            return self.input_rms / self.fixed
        frames = block.shape[-1]
        self.seen += frames
        self.ms += frames / min(self.seen, self.memory) * (float(np.mean(np.square(block))) - self.ms)
        return self.input_rms / max(math.sqrt(self.ms), LEVEL_FLOOR)


class Chain:
    """Resampler, model, resampler, for (channels, n) float64 blocks at the training level."""

    def __init__(self, engine, channels: int, up: int, down: int, align: bool):
        self.into, self.back = Resampler(up, down, channels), Resampler(down, up, channels)
        self.model = BlockStream(engine, channels, align)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.back(self.model(self.into(x)))

    def flush(self) -> np.ndarray:
        mid = np.concatenate([self.model(self.into.flush()), self.model.flush()], axis=-1)
        return np.concatenate([self.back(mid), self.back.flush()], axis=-1)


def delay_line(denoiser, align: bool, rate: int, block: int, engine) -> str:
    d = engine.latency
    ms = 1000 * d / denoiser.sample_rate
    what = "compensated (--align)" if align else "in the output (--align compensates it)"
    return (
        f"stream: {denoiser.name} on {engine.name}, {rate} Hz in blocks of {block} samples "
        f"({1000 * block / rate:g} ms); algorithmic delay {ms:g} ms ({d} samples at {denoiser.sample_rate} Hz), {what}"
    )


def run(denoiser, fin, fout, raw: pipes.Format | None, block_ms: float, align: bool, level_db, note) -> dict:
    """Denoise fin into fout until fin ends; `raw`: the input's format (None: a WAV header
    says it, and the output gets one). `note(line)` gets the lines for the person (stderr).
    Returns {"frames", "seconds", "clipped"}."""
    fmt, data_left = (raw, None) if raw else pipes.read_wav_header(fin)
    up, down = policy.ratio(fmt.rate, denoiser.sample_rate, "the input")
    block = max(1, round(fmt.rate * block_ms / 1000))
    engine = denoiser.block_engine()
    note(delay_line(denoiser, align, fmt.rate, block, engine))
    chain, level = Chain(engine, fmt.channels, up, down, align), Level(denoiser.input_rms, fmt.rate, level_db)
    frame_bytes = fmt.width * fmt.channels
    out = Output(fout, fmt, wav=raw is None)
    pushed = done = clipped = 0
    gain = 1.0
    try:
        while True:
            want = block * frame_bytes if data_left is None else min(block * frame_bytes, data_left)
            data = fin.read(want) if want else b""
            if data_left is not None:
                data_left -= len(data)
            data = data[: len(data) // frame_bytes * frame_bytes]  # a torn last frame (a cut pipe) goes
            if not data:
                break
            x = policy.gate(pipes.decode(data, fmt), "the input", "give finite samples")
            pushed += x.shape[-1]
            gain = level(x)
            y = chain(x * gain)[:, : pushed - done] / gain
            done += y.shape[-1]
            clipped += out.write(policy.gate(y, f"the output of {denoiser.name}", "report it"))
        y = chain.flush()[:, : pushed - done] / gain
        if y.shape[-1] < pushed - done:  # the two rate changes' rounding: silence to the input's length
            y = np.pad(y, ((0, 0), (0, pushed - done - y.shape[-1])))
        clipped += out.write(policy.gate(y, f"the output of {denoiser.name}", "report it"))
    finally:
        out.close(pushed)
    return {"frames": pushed, "seconds": pushed / fmt.rate, "clipped": clipped}


class Output:
    """Blocks to the output, flushed each; a WAV header first (of unknown length), its sizes
    patched at the end where the output is a regular file."""

    def __init__(self, f, fmt: pipes.Format, wav: bool):
        self.f, self.fmt, self.wav = f, fmt, wav
        if wav:
            f.write(pipes.wav_header(fmt))
            f.flush()

    def write(self, y: np.ndarray) -> int:
        data, clipped = pipes.encode(y, self.fmt)
        if data:
            self.f.write(data)
            self.f.flush()
        return clipped

    def close(self, frames: int) -> None:
        """The header's sizes where the output can seek back (a file): an ordinary WAV."""
        try:
            regular = self.wav and os.path.isfile(f"/proc/self/fd/{self.f.fileno()}") and self.f.seekable()
        except (OSError, ValueError):
            return
        size = frames * self.fmt.width * self.fmt.channels
        if regular and size < pipes.UNKNOWN - 36:
            self.f.flush()
            at = self.f.tell()
            self.f.seek(at - size - 44)
            self.f.write(pipes.wav_header(self.fmt, size))
            self.f.seek(at)
            self.f.flush()


def summary(done: dict, took: float) -> str:
    line = (
        f"stream: {done['seconds']:.2f} s of audio in {took:.2f} s (real-time factor "
        f"{took / max(done['seconds'], 1e-9):.3f})"
    )
    if done["clipped"]:
        line += f"; {done['clipped']} samples past full scale were clipped"
    return line


def timed_run(*args, **kwargs) -> tuple[dict, float]:
    start = time.perf_counter()
    done = run(*args, **kwargs)
    return done, time.perf_counter() - start


def check_options(rate, channels, sample, block_ms: float) -> pipes.Format | None:
    """The raw format when --rate/--channels/--format are given (all or none), else None."""
    if not 0.1 <= block_ms <= 10_000:
        raise PipelineError(f"--block-ms {block_ms:g} is out of range; give 0.1 to 10000 ms (10 is usual)")
    given = [v is not None for v in (rate, channels, sample)]
    if any(given) and not all(given):
        raise PipelineError(
            "raw PCM needs all of --rate, --channels and --format (e.g. --rate 16000 --channels 1 --format s16le); "
            "give none of them for a WAV stream"
        )
    if not any(given):
        return None
    if not 1 <= rate <= policy.MAX_RATE or not 1 <= channels <= 64:
        raise PipelineError(f"--rate {rate} --channels {channels}: give 1 to {policy.MAX_RATE} Hz and 1 to 64 channels")
    return pipes.Format(rate, channels, sample)

"""`enhance --score`: DNSMOS of a file before and after, in memory bounded whatever its rate,
channel count, length or format (files.open_source: a WAV, or what PyAV decodes), only where
there is speech to score, and what DNSMOS does not say (MEANING).

A file is read in blocks, each block's channels averaged, and resampled to DNSMOS's 16 kHz in
blocks (denoiser.resampled_blocks: the same samples as the whole at once), so what is held is
its first SCORED_SECONDS as 16 kHz mono float32, never the file at its own rate and channels
(a 96 kHz 8-channel file once took 48 times that, twice over); DNSMOS then scores its windows
one at a time.

DNSMOS fills its 9.01 s window by repeating a shorter signal, so a file of one sample was
scored as 9 s of DC, and a silent one as if it were speech: a file under MIN_SECONDS or quieter
than SILENT_RMS gets no score, and the line says why. DNSMOS's scale is 1-5 but its calibration
polynomial can land outside it: a score past an end is printed at that end and the line says
which scores were, and their values.
"""

import math
from pathlib import Path

import numpy as np

from cnn_denoise.common.errors import PipelineError

SCORED_SECONDS = 600  # --score rates at most a recording's first ten minutes
MIN_SECONDS = 1.0  # shorter files are not scored: DNSMOS would hear them repeated to 9 s
SILENT_RMS = 1e-3  # quieter files (RMS, full scale 1: -60 dBFS) are not scored: no speech in them
READ = 1 << 16  # frames read at once
RATE = 16000  # Hz: DNSMOS's

# Printed once with the scores: DNSMOS and SI-SDR can move apart (a model that muffles noise and
# speech alike sounds cleaner and is further from the speech), and nothing else says why.
MEANING = (
    "note: DNSMOS (1 to 5) rates how clean a recording sounds, with no clean reference; it does not say how close "
    "the output is to the clean speech, which SI-SDR does (make repro's table, cnn-denoise info): a model can raise "
    "one and lower the other"
)


def mono_16k(path: Path, info=None) -> np.ndarray:
    """The file's first SCORED_SECONDS, channels averaged, at 16 kHz (float32), read in blocks;
    `info`: files.audio_info(path), when known."""
    from cnn_denoise.enhance import policy
    from cnn_denoise.enhance.denoiser import Window, resampled_blocks
    from cnn_denoise.enhance.files import audio_info, open_source

    source = open_source(path, info or audio_info(path))
    total = min(source.frames, SCORED_SECONDS * source.rate)
    up, down = policy.ratio(source.rate, RATE, str(path))

    def blocks():
        done = 0
        for block in source.blocks(0, source.channels, READ):
            block = block[:, : total - done]
            done += block.shape[1]
            yield block.mean(axis=0)[None]
            if done >= total:
                return
        while done < total:  # fewer frames than the header said (an MP3's or a container's estimate): silence
            block = np.zeros((1, min(READ, total - done)))
            done += block.shape[1]
            yield block

    out = np.empty(-(-total * up // down), dtype=np.float32)
    at = 0
    for y in resampled_blocks(Window(blocks(), 1), total, up, down):
        out[at : at + y.shape[-1]] = y[0]
        at += y.shape[-1]
    return out[:at]


def unscorable(audio: np.ndarray) -> str | None:
    """Why a 16 kHz signal holds no speech DNSMOS could score, or None."""
    seconds = len(audio) / RATE
    if seconds < MIN_SECONDS:
        return f"lasts {seconds:.3f} s, shorter than the {MIN_SECONDS:g} s scored (DNSMOS would hear it repeated)"
    rms = math.sqrt(float(np.mean(np.square(audio, dtype=np.float64))))
    if rms < SILENT_RMS:
        return f"is silent (RMS {rms:.2g} of full scale)"
    return None


def score_line(src: Path, dst: Path, info=None) -> str:
    """DNSMOS before and after, for one file (its first SCORED_SECONDS, channels averaged), or
    why it has none; `info`: files.audio_info(src), when known."""
    from cnn_denoise.scoring.perceptual import dnsmos

    scores = {}
    for side, path, known in (("input", src, info), ("output", dst, None)):
        try:
            audio = mono_16k(path, known)
        except PipelineError as exc:
            return f"{src.name}: no DNSMOS score: {exc}"
        if why := unscorable(audio):
            return f"{src.name}: no DNSMOS score: the {side} {why}"
        scores[side] = dnsmos(audio, RATE)
    cells, outside = [], []
    for key in ("sig", "bak", "ovrl"):
        shown = []
        for side in ("input", "output"):
            value = scores[side][key]
            if not 1 <= value <= 5:
                outside.append(f"{key.upper()} {'before' if side == 'input' else 'after'} {value:.2f}")
            shown.append(min(5.0, max(1.0, value)))
        cells.append(f"{key.upper()} {shown[0]:.2f} -> {shown[1]:.2f}")
    note = f"; outside DNSMOS's 1-5 scale, shown at its end: {', '.join(outside)}" if outside else ""
    return f"{src.name}: DNSMOS {'  '.join(cells)}{note}"

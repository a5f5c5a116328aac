"""Recordings that are not WAVs libsndfile reads (MP3, AAC, Opus, Vorbis, FLAC, WMA...), decoded
with PyAV: FFmpeg's decoders, already a dependency (the speech corpus's G.722), where the advice
to convert first named tools a person may not have (sox here cannot read MP3).

Decoded frame by frame and handed on in blocks, so memory is bounded whatever the length, as
for a WAV. The output is a WAV beside the others (<stem>.wav, said by enhance): libsndfile writes
none of these codecs, and a lossy codec re-encoded would add its own artefacts to the result."""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from cnn_denoise.common.errors import PipelineError, first_line

# The output's sample format by the decoder's: lossy codecs decode to floats but keep less than
# 16 bits of it; integer sources keep their depth; lossless float (PCM in AIFF, CAF) stays float.
INTEGER_SUBTYPES = {"u8": "PCM_16", "s16": "PCM_16", "s32": "PCM_24", "s64": "PCM_24"}


def read_through(source, done: int) -> None:
    """After a whole pass over a file source: its frame count learned on the first, a file that
    shrank since, or held nothing, refused (FileSource's and AvSource's rule)."""
    if not source.counted:
        source.frames, source.counted = done, True
    elif done < source.frames:
        raise PipelineError(f"{source.path} changed while it was read ({done} frames, then fewer); run it again")
    if done == 0:
        raise PipelineError(f"{source.path} holds no samples; give a recording")


class AvInfo(NamedTuple):
    """What enhance needs of a recording before any work, as soundfile's info gives it for a WAV;
    `frames` is the container's estimate until a pass has counted them."""

    samplerate: int
    channels: int
    frames: int
    format: str  # the container, as FFmpeg names it (mp3, ogg, mov,mp4,m4a,...)
    subtype: str  # what the output WAV is written in
    codec: str  # the decoder's name as people know it: MP3, FLAC, AAC, Opus


def _errors():
    import av

    return (av.error.FFmpegError, OSError, ValueError, IndexError)


def reason(exc: BaseException) -> str:
    """FFmpeg's words for an error, without the path it appends (the message names it already)."""
    return (getattr(exc, "strerror", None) or first_line(exc, 160)).strip()


def _samples(frame) -> np.ndarray:
    """A decoded frame as (channels, n) float64 in [-1, 1], whatever its sample format."""
    a = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:  # interleaved: one row of n * channels
        a = a.reshape(-1, channels).T
    name = frame.format.name.rstrip("p")
    if name == "u8":
        return (a.astype(np.float64) - 128.0) / 128.0
    if name in ("s16", "s32", "s64"):
        return a.astype(np.float64) / float(2 ** (8 * a.dtype.itemsize - 1))
    return a.astype(np.float64)


def probe(path: Path) -> AvInfo:
    """The recording's rate, channels and length, from its header and its first decoded frame;
    raises ValueError with FFmpeg's reason where it has no audio PyAV can decode."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError("no audio stream in it")
            stream = container.streams.audio[0]
            first = next((f for f in container.decode(stream) if f.samples), None)
            if first is None:
                raise ValueError("no samples in it")
            rate, channels = first.sample_rate, len(first.layout.channels)
            seconds = (
                float(stream.duration * stream.time_base)
                if stream.duration
                else (container.duration or 0) / av.time_base
            )
            codec, kind = stream.codec_context.codec, first.format.name.rstrip("p")
            container_name = container.format.name
    except _errors() as exc:
        raise ValueError(reason(exc)) from None
    subtype = INTEGER_SUBTYPES.get(kind) or ("FLOAT" if codec.name.startswith("pcm_") else "PCM_16")
    name = codec.long_name.split(" (")[0]  # "MP3 (MPEG audio layer 3)": the name people know
    return AvInfo(rate, channels, max(1, round(seconds * rate)), container_name, subtype, name)


class AvSource:
    """A recording PyAV decodes, as (channels, n) float64 blocks read front to back (FileSource's
    interface): each pass opens the file again. `frames` starts as the container's estimate; the
    first pass sets it to what the file holds."""

    def __init__(self, path: Path, info: AvInfo):
        self.path, self.name = path, str(path)
        self.channels, self.frames, self.rate = info.channels, info.frames, info.samplerate
        self.counted = False

    def _frames(self, c0: int, c1: int):
        """Channels c0..c1 of the decoded frames, (channels, n) each; a change of rate or channels
        is refused (the model's resampling takes one rate per recording)."""
        import av

        with av.open(str(self.path)) as container:
            for frame in container.decode(container.streams.audio[0]):
                if frame.sample_rate != self.rate or len(frame.layout.channels) != self.channels:
                    raise PipelineError(
                        f"{self.path} changes from {self.rate} Hz, {self.channels} channel(s) to {frame.sample_rate} "
                        f"Hz, {len(frame.layout.channels)} midway; split it where it changes and enhance each part"
                    )
                if frame.samples:
                    yield _samples(frame)[c0:c1]

    def blocks(self, c0: int, c1: int, size: int):
        limit = self.frames if self.counted else None  # later passes stop where the first one did
        done = 0
        try:
            for block in _rebatch(self._frames(c0, c1), size):
                block = block if limit is None else block[:, : limit - done]
                done += block.shape[1]
                if block.shape[1]:
                    yield block
                if limit is not None and done >= limit:
                    break
        except _errors() as exc:
            raise PipelineError(
                f"{self.path}: PyAV cannot decode it past frame {done} ({reason(exc)}); export it again"
            ) from None
        read_through(self, done)


def _rebatch(pieces, size: int):
    """Arrays (channels, n) of any lengths as consecutive blocks of `size` (the last shorter),
    holding at most one block and one piece at a time."""
    held, count = [], 0
    for piece in pieces:
        held.append(piece)
        count += piece.shape[1]
        if count >= size:
            joined = np.concatenate(held, axis=1)
            whole = count - count % size
            for a in range(0, whole, size):
                yield np.ascontiguousarray(joined[:, a : a + size])
            held, count = [joined[:, whole:]], count - whole
    if count:
        yield np.ascontiguousarray(np.concatenate(held, axis=1))

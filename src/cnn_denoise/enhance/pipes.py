"""Audio through pipes: a WAV header read without seeking, raw PCM, and the same written back.

A WAV written to a pipe cannot know its length: sox and ffmpeg write the RIFF and data sizes as
0xFFFFFFFF (or 0, or arecord's 2 GB) and readers take the data to the end of the stream. Here
a data size of 0 or 0xFFFFFFFF means "to the end", any other is honoured, and chunks before
the data (LIST, fact...) are read past, never sought. The output header is written the same
way; where the output turns out to be a regular file (`> out.wav`) the sizes are patched at
the end, so the file is an ordinary WAV.
"""

import struct
from typing import NamedTuple

import numpy as np

from cnn_denoise.common.errors import PipelineError

UNKNOWN = 0xFFFFFFFF
FORMATS = {"s16le": ("int", 2), "s24le": ("int", 3), "s32le": ("int", 4), "u8": ("uint", 1), "f32le": ("float", 4)}
CONVERT = "convert it first, e.g. sox in.wav -b 16 -e signed-integer -t wav - | cnn-denoise stream - -o -"


class Format(NamedTuple):
    rate: int
    channels: int
    sample: str  # a key of FORMATS

    @property
    def width(self) -> int:
        return FORMATS[self.sample][1]


def _read_exactly(f, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) < n:
        raise PipelineError(f"the input ended inside its WAV header ({what}); give a whole WAV stream, or --raw")
    return data


def read_wav_header(f) -> tuple[Format, int | None]:
    """(format, data bytes or None for "to the end") of a WAV stream, leaving f at its samples."""
    head = f.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        raise PipelineError(
            f"the input does not start as a WAV stream (it starts {head[:12]!r}); give a WAV, or raw PCM with "
            "--rate, --channels and --format"
        )
    fmt = None
    while True:
        kind, size = struct.unpack("<4sI", _read_exactly(f, 8, "a chunk header"))
        if kind == b"fmt ":
            body = _read_exactly(f, size + (size & 1), "the fmt chunk")
            fmt = _parse_fmt(body)
        elif kind == b"data":
            if fmt is None:
                raise PipelineError("the WAV stream has its samples before its fmt chunk; write it again (sox, ffmpeg)")
            return fmt, None if size in (0, UNKNOWN) or head[:4] == b"RF64" else size
        else:  # LIST, fact, ds64...: read past, in pieces (a pipe cannot seek)
            left = size + (size & 1)
            while left:
                got = len(f.read(min(left, 1 << 16)))
                if not got:
                    raise PipelineError("the input ended inside its WAV header; give a whole WAV stream")
                left -= got


def _parse_fmt(body: bytes) -> Format:
    if len(body) < 16:
        raise PipelineError("the WAV stream's fmt chunk is too short; write it again (sox, ffmpeg)")
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
    if tag == 0xFFFE and len(body) >= 26:
        tag = struct.unpack_from("<H", body, 24)[0]  # the sub-format GUID starts with the tag
    kinds = {(1, 8): "u8", (1, 16): "s16le", (1, 24): "s24le", (1, 32): "s32le", (3, 32): "f32le"}
    if (tag, bits) not in kinds:
        raise PipelineError(
            f"the WAV stream holds {bits}-bit samples of format tag 0x{tag:04X}, not 8/16/24/32-bit PCM or 32-bit "
            f"float; {CONVERT}"
        )
    if not 1 <= channels <= 64 or not 1 <= rate <= 768_000:
        raise PipelineError(f"the WAV stream declares {channels} channels at {rate} Hz; {CONVERT}")
    return Format(rate, channels, kinds[tag, bits])


def wav_header(fmt: Format, data_bytes: int = UNKNOWN) -> bytes:
    """A 44-byte WAV header (WAVE_FORMAT_EXTENSIBLE past two channels, as libsndfile writes);
    data_bytes UNKNOWN: a stream's, of unknown length."""
    tag = 3 if fmt.sample == "f32le" else 1
    block = fmt.width * fmt.channels
    riff = UNKNOWN if data_bytes == UNKNOWN else 36 + data_bytes
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff,
        b"WAVE",
        b"fmt ",
        16,
        tag,
        fmt.channels,
        fmt.rate,
        fmt.rate * block,
        block,
        fmt.width * 8,
        b"data",
        data_bytes,
    )


def decode(data: bytes, fmt: Format) -> np.ndarray:
    """Interleaved samples -> (channels, frames) float64 in [-1, 1)."""
    kind, width = FORMATS[fmt.sample]
    if fmt.sample == "s24le":
        b = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
        x = ((b[:, 0] | b[:, 1] << 8 | b[:, 2] << 16) << 8 >> 8) / float(1 << 23)
    elif kind == "float":
        x = np.frombuffer(data, "<f4").astype(np.float64)
    elif kind == "uint":
        x = (np.frombuffer(data, np.uint8).astype(np.float64) - 128) / 128
    else:
        x = np.frombuffer(data, f"<i{width}") / float(1 << (8 * width - 1))
    return x.reshape(-1, fmt.channels).T


def encode(x: np.ndarray, fmt: Format) -> tuple[bytes, int]:
    """(channels, frames) float64 -> interleaved bytes, and how many samples were past full
    scale (clipped: a pipe cannot be scaled as a whole afterwards)."""
    kind, width = FORMATS[fmt.sample]
    inter = x.T.reshape(-1)
    if kind == "float":
        clipped = int(np.count_nonzero(np.abs(inter) > 1.0))
        return np.clip(inter, -1.0, 1.0).astype("<f4").tobytes(), clipped
    full = float(1 << (8 * width - 1))
    q = np.round(inter * full)
    clipped = int(np.count_nonzero((q > full - 1) | (q < -full)))
    q = np.clip(q, -full, full - 1)
    if kind == "uint":
        return (q + 128).astype(np.uint8).tobytes(), clipped
    if fmt.sample == "s24le":
        v = q.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
        return v.tobytes(), clipped
    return q.astype(f"<i{width}").tobytes(), clipped

"""Recordings as files: which inputs are WAVs we can decode, their format kept on the way out, and
a file denoised in blocks, written whole beside its output or not at all (FileSource, FileStore)."""

import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from cnn_denoise.common.errors import PipelineError, first_line, printable
from cnn_denoise.enhance import policy

WAV_FORMATS = ("WAV", "WAVEX", "RF64")  # what soundfile calls the RIFF WAV family


TEMP_TAG = "enhance"  # temp files beside an output are .<name>.enhance-<random>.tmp


# WAV format tags (the fmt chunk's first field): those libsndfile decodes (PCM, MS ADPCM, float,
# A-law, u-law, IMA ADPCM, GSM 6.10, NMS ADPCM, G.721, MP3, extensible), and the names people know
# others by, to name a codec it cannot decode (the rest are named by number).
DECODED = {0x0001, 0x0002, 0x0003, 0x0006, 0x0007, 0x0011, 0x0031, 0x0038, 0x0040, 0x0055, 0xFFFE}


FALLBACK_SUBTYPE = "PCM_16"  # what an output is written as where libsndfile cannot write the input's format (MP3)


CODECS = {
    0x0050: "MPEG-1 Layer I/II",
    0x0055: "MPEG Layer III (MP3)",
    0x00FF: "AAC",
    0x0160: "WMA",
    0x0161: "WMA",
    0x0162: "WMA Pro",
    0x2000: "AC-3",
    0x2001: "DTS",
    0x0022: "TrueSpeech",
    0x0092: "AC-3 over S/PDIF",
}


def _utf8_name(path: Path) -> None:
    """libsndfile takes a file name as UTF-8 text: one that is not could not be opened, and
    would be reported as a broken WAV."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        raise PipelineError(
            f"{printable(str(path))}: the name is not UTF-8 text, which libsndfile cannot open; rename it"
        ) from None


def wav_files(inputs: list[str]) -> list[Path]:
    """The WAV files named, and those directly inside the folders named."""
    files = []
    for item in map(Path, inputs):
        _utf8_name(item)
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
            for p in found:
                _utf8_name(p)
            if not found:
                raise PipelineError(f"{item} holds no .wav file; give WAV files or folders of them")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise PipelineError(f"{item}: no such file or folder")
    names = [p.name for p in files]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise PipelineError(
            f"two inputs are named {twice[0]}; their outputs would collide in one folder: enhance them separately"
        )
    return files


def format_tag(path: Path) -> int | None:
    """The format tag of a RIFF WAV's fmt chunk (the extensible format's sub-format), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    if head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return None
    at = 12
    while at + 8 <= len(head):
        kind, size = head[at : at + 4], struct.unpack_from("<I", head, at + 4)[0]
        if kind == b"fmt " and at + 10 <= len(head):
            tag = struct.unpack_from("<H", head, at + 8)[0]
            if tag == 0xFFFE and at + 34 <= len(
                head
            ):  # WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the tag
                tag = struct.unpack_from("<H", head, at + 32)[0]
            return tag
        at += 8 + size + (size & 1)
    return None


def audio_info(path: Path):
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile's own error type for anything it cannot parse
        tag = format_tag(path)
        if tag is not None and tag not in DECODED:
            raise PipelineError(
                f"{path} holds {CODECS.get(tag, f'audio of WAV format tag 0x{tag:04X}')}, which libsndfile cannot "
                "decode; convert it to PCM first (e.g. ffmpeg -i in.wav -c:a pcm_s16le out.wav)"
            ) from None
        reason = first_line(exc).split(": ")[-1][:160]
        raise PipelineError(f"{path} is not a readable WAV file ({reason}); give a .wav file") from None
    if info.format not in WAV_FORMATS:
        raise PipelineError(
            f"{path} is a {info.format} file, not a WAV; convert it to WAV first (e.g. sox in.flac out.wav)"
        )
    if info.frames == 0:
        raise PipelineError(f"{path} holds no samples; give a recording")
    return info


def output_subtype(info) -> str:
    """The input's sample format where libsndfile can write it (every WAV encoding it writes:
    PCM, float, A-law, u-law, IMA/MS/NMS ADPCM, G.721, GSM 6.10), else FALLBACK_SUBTYPE (MP3)."""
    import io

    import soundfile as sf

    try:
        with sf.SoundFile(io.BytesIO(), "w", info.samplerate, info.channels, info.subtype, format=info.format):
            return info.subtype
    except sf.SoundFileError:
        return FALLBACK_SUBTYPE


def identity(path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def refuse_inputs_as_outputs(files: list[Path], out_dir: Path) -> None:
    """No output may be an input: compared as files (device and inode), not as names, so an
    output folder that is an input folder by another path (a symlink, a bind mount, a Docker
    volume, a hard link of the recording) is refused like the folder itself."""
    inputs = {identity(src): src for src in files}
    for src in files:
        dst = out_dir / src.name
        try:
            same = inputs.get(identity(dst))
        except (FileNotFoundError, NotADirectoryError):
            continue
        if same is not None:
            other = "" if same.absolute() == dst.absolute() else f" ({same}, reached by another path)"
            raise PipelineError(
                f"{dst} is the input itself{other}; give another -o folder (inputs are never overwritten)"
            )


class FileSource:
    """A WAV file's samples, (channels, n) float64 blocks, read front to back: GSM 6.10, G.721
    and NMS ADPCM cannot seek, so each pass opens the file again instead of seeking back.
    `frames` starts as the header's count; the first pass sets it to what the file holds
    (an MP3 header's count is an estimate)."""

    def __init__(self, path: Path, info):
        self.path, self.name = path, str(path)
        self.channels, self.frames, self.rate = info.channels, info.frames, info.samplerate
        self.counted = False

    def blocks(self, c0: int, c1: int, size: int):
        import soundfile as sf

        done = 0
        try:
            with sf.SoundFile(str(self.path)) as f:
                while done < self.frames:
                    block = f.read(min(size, self.frames - done), dtype="float64", always_2d=True)
                    if len(block) == 0:
                        break
                    done += len(block)
                    yield np.ascontiguousarray(block[:, c0:c1].T)  # a copy: the other channels' samples go
        except sf.SoundFileError as exc:
            raise PipelineError(
                f"{self.path}: libsndfile cannot decode it past frame {done} ({first_line(exc)}); export it again"
            ) from None
        if not self.counted:
            self.frames, self.counted = done, True
        elif done < self.frames:
            raise PipelineError(f"{self.path} changed while it was read ({done} frames, then fewer); run it again")
        if done == 0:
            raise PipelineError(f"{self.path} holds no samples; give a recording")


class FileStore:
    """The output at the training level, float32 in a file with no name beside the output
    (channel after channel): on the output's disk, not in /tmp, and gone with the process,
    however it ends."""

    def __init__(self, fd: int, channels: int, frames: int):
        self.fd, self.channels, self.frames = fd, channels, frames

    def put(self, c0: int, a: int, block: np.ndarray) -> None:
        for i, row in enumerate(block.astype("<f4")):
            data, at = memoryview(row.tobytes()), ((c0 + i) * self.frames + a) * 4
            while data:  # pwrite may write less than asked (a full disk raises on the next call)
                wrote = os.pwrite(self.fd, data, at)
                data, at = data[wrote:], at + wrote

    def get(self, a: int, b: int) -> np.ndarray:
        rows = [os.pread(self.fd, (b - a) * 4, (c * self.frames + a) * 4) for c in range(self.channels)]
        return np.stack([np.frombuffer(r, dtype="<f4") for r in rows]).astype(np.float64)


def enhance_file(denoiser, src: Path, dst: Path) -> dict:
    """Denoise one WAV file into dst (same rate, channels, length and sample format, or
    FALLBACK_SUBTYPE where libsndfile cannot write it), in blocks; returns {"seconds": audio
    length, "scaled": the factor applied to avoid clipping, "subtype": the output's format}."""
    import soundfile as sf

    from cnn_denoise.common.atomic import atomic_path
    from cnn_denoise.enhance.denoiser import READ

    info = audio_info(src)
    subtype, source = output_subtype(info), FileSource(src, info)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(prefix=f".{dst.name}.{TEMP_TAG}-", suffix=".tmp", dir=dst.parent) as tmp:
        store, rows = FileStore(tmp.fileno(), info.channels, info.frames), max(1, READ // info.channels)
        rms, peak = denoiser.process(source, store)
        factor, clipped = policy.output_factor(peak, rms, denoiser.input_rms)
        with (
            atomic_path(dst, TEMP_TAG) as tmp_out,
            sf.SoundFile(str(tmp_out), "w", info.samplerate, info.channels, subtype, format=info.format) as out,
        ):
            for a in range(0, source.frames, rows):
                block = store.get(a, min(a + rows, source.frames)) * factor
                out.write(policy.gate(block, f"the output for {src}", "report it").T)
    return {"seconds": source.frames / info.samplerate, "scaled": clipped, "subtype": subtype}

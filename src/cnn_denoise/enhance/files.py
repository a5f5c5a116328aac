"""Recordings as files: which inputs are recordings we can decode (WAVs through libsndfile, their
format kept on the way out; the rest through PyAV, decoded.py, back as WAVs), and a file denoised
in blocks, written whole beside its output or not at all (FileSource, FileStore)."""

import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from cnn_denoise.common.errors import PipelineError, first_line, printable
from cnn_denoise.enhance import policy

WAV_FORMATS = ("WAV", "WAVEX", "RF64")  # what soundfile calls the RIFF WAV family

# What enhance takes from a folder (a file named on the command line is tried whatever its name):
# the RIFF WAV family and the audio files FFmpeg decodes, not the videos, pictures and notes
# that share folders with recordings.
AUDIO_SUFFIXES = {
    ".wav", ".wave", ".rf64", ".flac", ".mp3", ".mp2", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma",
    ".aif", ".aiff", ".aifc", ".caf", ".w64", ".au", ".snd", ".amr", ".ac3", ".mka", ".wv", ".ape", ".spx",
}  # fmt: skip


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


def audio_files(inputs: list[str]) -> list[Path]:
    """The files named, and the recordings (AUDIO_SUFFIXES) directly inside the folders named."""
    files = []
    for item in map(Path, inputs):
        _utf8_name(item)
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            for p in found:
                _utf8_name(p)
            if not found:
                raise PipelineError(
                    f"{item} holds no recording (.wav, .flac, .mp3, ...); give recordings or folders of them"
                )
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise PipelineError(f"{item}: no such file or folder")
    return files


def refuse_collisions(outputs: dict[Path, Path]) -> None:
    """Two inputs whose outputs would have the same name (a.wav, and a.mp3 written as a.wav)."""
    seen = {}
    for src, dst in outputs.items():
        if dst.name in seen:
            raise PipelineError(
                f"{seen[dst.name]} and {src} would both be written as {dst.name} in one folder: enhance them separately"
            )
        seen[dst.name] = src


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
    """soundfile's info for a WAV libsndfile decodes, else decoded.AvInfo for what PyAV decodes;
    a PipelineError naming the problem and the fix for anything else."""
    import soundfile as sf

    from cnn_denoise.enhance import decoded

    try:
        info, said = sf.info(str(path)), None
    except Exception as exc:  # libsndfile's own error type for anything it cannot parse: PyAV may
        info, said = None, first_line(exc).split(": ")[-1][:120].rstrip(".")
    if info is not None and info.format in WAV_FORMATS:
        if info.frames == 0:
            raise PipelineError(f"{path} holds no samples; give a recording")
        return info
    try:
        return decoded.probe(path)
    except ValueError as exc:
        reason = f"libsndfile: {said}; PyAV: {exc}" if said else str(exc)
    tag = format_tag(path)
    if tag is not None and tag not in DECODED:
        raise PipelineError(
            f"{path} holds {CODECS.get(tag, f'audio of WAV format tag 0x{tag:04X}')}, which neither libsndfile nor "
            f"PyAV decodes ({reason}); export it again as PCM WAV or FLAC from the program that made it"
        )
    if reason == "no samples in it":
        raise PipelineError(f"{path} holds no samples; give a recording")
    raise PipelineError(
        f"{path} is not a recording libsndfile or PyAV can read ({reason}); give a WAV, FLAC, MP3 or other audio file"
    )


def output_path(out_dir: Path, src: Path, info) -> Path:
    """A WAV's output has its name; a recording PyAV decodes comes back as <stem>.wav."""
    from cnn_denoise.enhance.decoded import AvInfo

    return out_dir / (src.stem + ".wav" if isinstance(info, AvInfo) else src.name)


def open_source(src: Path, info):
    """The recording's samples in blocks: FileSource for a WAV, decoded.AvSource otherwise."""
    from cnn_denoise.enhance.decoded import AvInfo, AvSource

    return AvSource(src, info) if isinstance(info, AvInfo) else FileSource(src, info)


def output_subtype(info) -> str:
    """The input's sample format where libsndfile can write it (every WAV encoding it writes:
    PCM, float, A-law, u-law, IMA/MS/NMS ADPCM, G.721, GSM 6.10), else FALLBACK_SUBTYPE (MP3);
    what decoded.py chose for a recording PyAV decodes."""
    import io

    import soundfile as sf

    from cnn_denoise.enhance.decoded import AvInfo

    if isinstance(info, AvInfo):
        return info.subtype
    try:
        with sf.SoundFile(io.BytesIO(), "w", info.samplerate, info.channels, info.subtype, format=info.format):
            return info.subtype
    except sf.SoundFileError:
        return FALLBACK_SUBTYPE


def identity(path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def refuse_inputs_as_outputs(files: list[Path], outputs: list[Path]) -> None:
    """No output may be an input: compared as files (device and inode), not as names, so an
    output folder that is an input folder by another path (a symlink, a bind mount, a Docker
    volume, a hard link of the recording) is refused like the folder itself."""
    inputs = {identity(src): src for src in files}
    for dst in outputs:
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
        from cnn_denoise.enhance.decoded import read_through

        read_through(self, done)


class FileStore:
    """The output at the training level, float32 in a file with no name beside the output
    (channel after channel): on the output's disk, not in /tmp, and gone with the process,
    however it ends. Laid out by the source's frame count, read when the first block is put:
    the level pass before has counted them (a header's or container's count is an estimate)."""

    def __init__(self, fd: int, source):
        self.fd, self.channels, self.source = fd, source.channels, source

    @property
    def frames(self) -> int:
        return self.source.frames

    def put(self, c0: int, a: int, block: np.ndarray) -> None:
        for i, row in enumerate(block.astype("<f4")):
            data, at = memoryview(row.tobytes()), ((c0 + i) * self.frames + a) * 4
            while data:  # pwrite may write less than asked (a full disk raises on the next call)
                wrote = os.pwrite(self.fd, data, at)
                data, at = data[wrote:], at + wrote

    def get(self, a: int, b: int) -> np.ndarray:
        rows = [os.pread(self.fd, (b - a) * 4, (c * self.frames + a) * 4) for c in range(self.channels)]
        return np.stack([np.frombuffer(r, dtype="<f4") for r in rows]).astype(np.float64)


def enhance_file(denoiser, src: Path, dst: Path, info=None) -> dict:
    """Denoise one recording into dst (same rate, channels and length; a WAV's sample format, or
    FALLBACK_SUBTYPE where libsndfile cannot write it; a WAV of decoded.py's choice for what PyAV
    decodes), in blocks; returns {"seconds": audio length, "scaled": the factor applied to
    avoid clipping, "subtype": the output's format}. `info`: audio_info(src), when known."""
    import soundfile as sf

    from cnn_denoise.common.atomic import atomic_path
    from cnn_denoise.enhance.denoiser import READ

    info = info or audio_info(src)
    subtype, source = output_subtype(info), open_source(src, info)
    container = info.format if info.format in WAV_FORMATS else "WAV"
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(prefix=f".{dst.name}.{TEMP_TAG}-", suffix=".tmp", dir=dst.parent) as tmp:
        store, rows = FileStore(tmp.fileno(), source), max(1, READ // info.channels)
        rms, peak = denoiser.process(source, store)
        factor, clipped = policy.output_factor(peak, rms, denoiser.input_rms)
        with (
            atomic_path(dst, TEMP_TAG) as tmp_out,
            sf.SoundFile(str(tmp_out), "w", info.samplerate, info.channels, subtype, format=container) as out,
        ):
            for a in range(0, source.frames, rows):
                block = store.get(a, min(a + rows, source.frames)) * factor
                out.write(policy.gate(block, f"the output for {src}", "report it").T)
    return {"seconds": source.frames / info.samplerate, "scaled": clipped, "subtype": subtype}

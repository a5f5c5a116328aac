"""cnn-denoise: the project's command line.

cnn-denoise enhance INPUT... -o OUT_DIR [-m MODEL]    denoise WAV files
cnn-denoise promote NAME [--alias best]              models:/cnn-denoise@best -> that run's model
"""

import argparse
import os
import re
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cnn_denoise.common.errors import PipelineError, first_line, run_stage
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


def wav_files(inputs: list[str]) -> list[Path]:
    """The WAV files named, and those directly inside the folders named."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
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


def _format_tag(path: Path) -> int | None:
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


def _info(path: Path):
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile's own error type for anything it cannot parse
        tag = _format_tag(path)
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


def _identity(path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _refuse_inputs_as_outputs(files: list[Path], out_dir: Path) -> None:
    """No output may be an input: compared as files (device and inode), not as names, so an
    output folder that is an input folder by another path (a symlink, a bind mount, a Docker
    volume, a hard link of the recording) is refused like the folder itself."""
    inputs = {_identity(src): src for src in files}
    for src in files:
        dst = out_dir / src.name
        try:
            same = inputs.get(_identity(dst))
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

    info = _info(src)
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


def enhance(argv) -> int:
    parser = argparse.ArgumentParser(
        prog="cnn-denoise enhance",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Denoise WAV recordings with a trained model.",
        epilog=policy.help_text(),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="WAV files, or folders of them")
    parser.add_argument(
        "-o", "--out", required=True, metavar="OUT_DIR", help="folder for the outputs (same file names)"
    )
    parser.add_argument(
        "-m",
        "--model",
        help="a checkpoint of the train stage, or an MLflow URI: runs:/<run id>, models:/<name>@<alias> "
        "(default: models:/cnn-denoise@speech, else @best, when registered; else models/model.pt)",
    )
    parser.add_argument(
        "--score", action="store_true", help="print DNSMOS (SIG, BAK, OVRL; no clean reference) before and after"
    )
    args = parser.parse_args(argv)
    from tqdm import tqdm

    from cnn_denoise.common.atomic import clean_abandoned
    from cnn_denoise.enhance.denoiser import Denoiser

    files = wav_files(args.inputs)
    infos = [_info(src) for src in files]  # every input readable before any work
    out_dir = Path(args.out)
    _refuse_inputs_as_outputs(files, out_dir)
    model = args.model or default_model()
    denoiser = Denoiser.load(model)
    if line := verdict(model, denoiser.audio):
        print(line, file=sys.stderr)
    for src, info in zip(files, infos, strict=True):
        policy.ratio(info.samplerate, denoiser.sample_rate, str(src))  # every rate workable before any work
    clean_abandoned(out_dir, TEMP_TAG, keep={_identity(src) for src in files})
    start, audio = time.perf_counter(), 0.0
    for src, info in tqdm(
        list(zip(files, infos, strict=True)), desc="enhance", unit="file", file=sys.stderr, disable=None
    ):
        done = enhance_file(denoiser, src, out_dir / src.name)
        audio += done["seconds"]
        if args.score:
            tqdm.write(score_line(src, out_dir / src.name), file=sys.stderr)
        if done["scaled"] != 1.0:
            print(f"note: {policy.clipping_note(src.name, done['scaled'])}", file=sys.stderr)
        if done["subtype"] != info.subtype:
            print(
                f"note: {src.name}: written as {done['subtype']} WAV (libsndfile cannot write its {info.subtype})",
                file=sys.stderr,
            )
    took = time.perf_counter() - start
    print(
        f"enhanced {len(files)} file(s) into {out_dir}: {audio:.1f} s of audio in {took:.1f} s "
        f"(real-time factor {took / audio:.3f})",
        file=sys.stderr,
    )
    return 0


DEFAULT_ALIASES = ("speech", "best")  # what enhance takes when no -m is given, first registered first
SCORED_SECONDS = 600  # --score rates at most a recording's first ten minutes (DNSMOS holds them in memory)


def default_model() -> str:
    """models:/cnn-denoise@speech or @best when the project's store holds one, else the
    pipeline's models/model.pt. A store that does not exist yet is not created to find out."""
    from cnn_denoise import tracking

    uri = tracking.tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return "models/model.pt"
    found = tracking.registered_alias(DEFAULT_ALIASES)
    return f"models:/{tracking.REGISTERED_MODEL}@{found}" if found else "models/model.pt"


def heard(audio: dict) -> str:
    """What a checkpoint says its model was trained on, in a few words."""
    about = audio.get("trained_on") or {}
    if not about:
        return "an unrecorded dataset (an older checkpoint)"
    kinds = ", ".join(about.get("kinds", [])) or "?"
    snr = about.get("snr_db")
    band = about.get("band_hz")
    speed = about.get("speed") or [1.0, 1.0]
    formant = about.get("formant") or [1.0, 1.0]
    weights = {k: w for k, w in (about.get("kind_weights") or {}).items() if w != 1}  # the rest drawn x1
    return (
        f"{about.get('speech', '?')} with {kinds} noise"
        + (f" at {snr[0]:g} to {snr[1]:g} dB SNR" if snr else "")
        + (f" in {band[0]:g}-{band[1]:g} Hz" if band else "")
        + (f", played at {speed[0]:g} to {speed[1]:g} x speed" if speed != [1.0, 1.0] else "")
        + (f", formants moved {formant[0]:g} to {formant[1]:g} x" if formant != [1.0, 1.0] else "")
        + (f", through random filters (eq {about['eq']:g})" if about.get("eq") else "")
        + (", drawn " + ", ".join(f"{k} x{w:g}" for k, w in weights.items()) + " as often" if weights else "")
    )


def verdict(model: str, audio: dict) -> str | None:
    """One line when the model makes its own test set worse than the noisy input: what it was
    trained on, and where a better one comes from."""
    cnn, noisy = audio.get("test_si_sdr_db"), audio.get("noisy_si_sdr_db")
    if cnn is None or noisy is None or cnn >= noisy:
        return None
    return (
        f"note: {model} was trained on {heard(audio)} and lowers SI-SDR on its own test set ({cnn:.1f} dB vs "
        f"{noisy:.1f} dB noisy); `make recipe NAME=speech` trains one for recorded speech"
    )


def score_line(src: Path, dst: Path) -> str:
    """DNSMOS before and after, for one file (its first SCORED_SECONDS, channels averaged)."""
    import soundfile as sf

    from cnn_denoise.scoring.perceptual import dnsmos

    def rate(path):
        info = sf.info(str(path))
        x, sr = sf.read(str(path), frames=min(info.frames, SCORED_SECONDS * info.samplerate), always_2d=True)
        return dnsmos(x.mean(axis=1), sr)

    before, after = rate(src), rate(dst)
    cells = "  ".join(f"{k.upper()} {before[k]:.2f} -> {after[k]:.2f}" for k in ("sig", "bak", "ovrl"))
    return f"{src.name}: DNSMOS {cells}"


def info(argv) -> int:
    parser = argparse.ArgumentParser(prog="cnn-denoise info", description="What a model is and what it heard.")
    parser.add_argument("model", nargs="?", help="a checkpoint or an MLflow URI (default: what enhance would use)")
    args = parser.parse_args(argv)
    from cnn_denoise.enhance.denoiser import Denoiser

    model = args.model or default_model()
    d = Denoiser.load(model)
    spec_ = d.model.spec() if hasattr(d.model, "spec") else {"taps": d.model.taps, "features": d.model.features}
    about = d.audio.get("trained_on") or {}
    print(f"model        {model}")
    print(f"network      {', '.join(f'{k} {v}' for k, v in spec_.items())}")
    print(f"trained on   {heard(d.audio)}")
    print(
        f"rate, level  {d.sample_rate} Hz, input RMS {d.input_rms:.3g}"
        + (f" (levels {about['level_db']} dBFS)" if about.get("level_db") else "")
    )
    if "test_si_sdr_db" in d.audio:
        print(
            f"own test set SI-SDR {d.audio['test_si_sdr_db']:.2f} dB (noisy input {d.audio['noisy_si_sdr_db']:.2f} dB)"
        )
    if line := verdict(model, d.audio):
        print(line)
    return 0


# A run or experiment name as promote accepts it: what `dvc exp show` and MLflow print, less
# the quotes and backslashes that MLflow's search filter (a quoted string) cannot carry.
RUN_NAME = re.compile(r"[^'\"\\\x00-\x1f\x7f]{1,250}")
ALIAS = re.compile(r"[\w-]{1,255}")  # MLflow's rule, less its reserved latest and v<number>


def promote(argv) -> int:
    parser = argparse.ArgumentParser(
        prog="cnn-denoise promote", description="Point a registered-model alias at a run's model."
    )
    parser.add_argument("name", help="the run: a DVC experiment's name (dvc exp show) or an MLflow run name")
    parser.add_argument("--alias", default="best", help="the alias to set (default: %(default)s)")
    args = parser.parse_args(argv)
    if not RUN_NAME.fullmatch(args.name):
        raise PipelineError(
            f"run name {args.name!r} holds a quote, a backslash or a control character, which MLflow's search "
            "cannot match; give the name as dvc exp show lists it, or rename the experiment"
        )
    if not ALIAS.fullmatch(args.alias) or args.alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", args.alias):
        raise PipelineError(
            f"alias {args.alias!r} is not one MLflow accepts; use letters, digits, _ and - (not latest or v<number>)"
        )
    from cnn_denoise import tracking

    version = tracking.promote(args.name, args.alias)
    print(
        f"models:/{tracking.REGISTERED_MODEL}@{args.alias} is now version {version} (run {args.name}); "
        f"cnn-denoise enhance -m models:/{tracking.REGISTERED_MODEL}@{args.alias} uses it",
        file=sys.stderr,
    )
    return 0


# What a person is told after Ctrl-C and when memory runs out, by command (the stages' words
# name dvc repro and training knobs, which mean nothing here).
HINTS = {
    "enhance": {
        "interrupted": "no output was left half-written (a run killed outright leaves a hidden temp file the next "
        "run removes); run it again",
        "out_of_memory": "enhance holds a few blocks of a recording whatever its size, so the machine is short of "
        "memory; close other programs and run it again",
    },
    "info": {"interrupted": "nothing was changed", "out_of_memory": "close other programs and run it again"},
    "promote": {
        "interrupted": "the alias may not be set; run it again",
        "out_of_memory": "close other programs and run it again",
    },
}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"enhance": enhance, "promote": promote, "info": info}
    if not argv or argv[0] not in commands:
        print(
            "usage: cnn-denoise enhance INPUT... -o OUT_DIR [-m MODEL] [--score] | cnn-denoise info [MODEL] | "
            "cnn-denoise promote NAME [--alias best]",
            file=sys.stderr,
        )
        sys.exit(2)
    run_stage(lambda: commands[argv[0]](argv[1:]), **HINTS[argv[0]])

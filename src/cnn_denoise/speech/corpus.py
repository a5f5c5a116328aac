"""Recorded speech for the speech stages: Debian's packages of Asterisk's English prompts (one
speaker, Allison Smith) and opsound's hold music, or a folder of the user's own WAVs.

The packages come with `apt-get download NAME=VERSION` (or from a folder or URL holding
NAME_VERSION_all.deb), their SHA-256 is checked, and they are unpacked in memory: a .deb is an
`ar` archive whose data.tar.* holds the files (deb.py reads them); nothing is extracted to disk, and
members with unsafe names (absolute, `..`, links) or sizes refuse the package. Only the English voice's
prompts are kept (its folder in the package; other voices and languages, tones and silences
are left out); G.722 files are decoded with PyAV (FFmpeg), WAVs with soundfile.

A corpus is {"speech": {name: clip}, "music": {...}, "recorded": {...}}, each clip
{"rate": Hz, "audio": int16 or float32 tensor [n]}, at the rate it was recorded at: the mixer
resamples what it uses. Names are prompts ("digits/1") or file names, so a split by name is a
split by utterance.
"""

import io
import os
import shutil
import subprocess
import tempfile
import urllib.parse
from pathlib import Path, PurePosixPath

import numpy as np

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.common.hashing import sha256_file
from cnn_denoise.speech.deb import MAX_DEB_BYTES, deb_files

APT_TIMEOUT = 900  # seconds apt-get download may take
# The voice's folder inside the package (Asterisk's sounds for en_US, female, Allison Smith).
VOICE_DIR = "usr/share/asterisk/sounds/en_US_f_Allison/"
MUSIC_DIR = "usr/share/asterisk/moh/"
# Prompts that are tones or silence, not speech.
NOT_SPEECH = {"ascending-2tone", "descending-2tone", "beep", "beeperr", "confbridge-join", "confbridge-leave"}
NOT_SPEECH_DIRS = ("silence/",)
AUDIO_SUFFIXES = (".wav", ".flac", ".g722")
SILENT_RMS = 1e-3  # an utterance quieter than this (RMS, full scale 1) is silent: -60 dBFS
MIN_RATE = 8000  # Hz: below it there is no speech band to speak of
CREDITS = """\
# Attribution

The recordings in this folder come from Debian's packages, unchanged but for decoding; the data
sets made from them (data/speech/) are mixes of them with noise, i.e. adaptations.

- Voice: {voice}. Asterisk's English prompts, recorded by Allison Smith
  (http://www.theivrvoice.com), financial contributions by Digium, Inc. (http://www.digium.com).
  License: Creative Commons Attribution-ShareAlike 3.0 (CC-BY-SA-3.0),
  https://creativecommons.org/licenses/by-sa/3.0/
- Music: {music}. opsound hold music: Paul Shuler (Macroform): cold_day, robot_dity,
  the_simplicity; Manolo Camp: morning_coffee; Reno Project: system.
  License: CC-BY-SA-3.0 (by explicit permission of their authors).

The packages' own copyright files are beside this one (copyright-<package>).
"""


def deb_name(package: str, version: str) -> str:
    """The file name Debian gives a package ('all' architecture; an epoch's colon as %3a)."""
    return f"{package}_{version.replace(':', '%3a')}_all.deb"


def _apt_download(package: str, version: str, folder: Path) -> Path:
    """`apt-get download package=version` into folder; the .deb's path."""
    apt = shutil.which("apt-get")
    if apt is None:
        raise PipelineError(
            f"speech.source is apt but apt-get is not on this machine; put {deb_name(package, version)} in a folder "
            "and set speech.source to it"
        )
    try:
        proc = subprocess.run(
            [apt, "download", f"{package}={version}"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=APT_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise PipelineError(
            f"apt-get download {package}={version} took over {APT_TIMEOUT} s; check the network and run it again"
        ) from None
    found = sorted(folder.glob(f"{package}_*.deb"))
    if proc.returncode != 0 or len(found) != 1:
        reason = " ".join((proc.stderr or proc.stdout or "no .deb written").split())[:300]
        fix = (
            "run `apt-get update` (as root) first"
            if "locate" in reason or "not found" in reason or "no candidate" in reason.lower()
            else "check the network and apt's sources"
        )
        raise PipelineError(
            f"apt-get download {package}={version} failed ({reason}); {fix}, or put "
            f"{deb_name(package, version)} in a folder and set speech.source to it"
        )
    return found[0]


def fetch_deb(package: str, version: str, sha256: str, source: str, dest) -> Path:
    """The package's .deb at dest (a folder), hash-checked: from apt-get, a folder or a URL."""
    from cnn_denoise.common.atomic import atomic_path
    from cnn_denoise.common.download import fetch

    dest = Path(dest)
    name = deb_name(package, version)
    with tempfile.TemporaryDirectory(prefix="speech-deb-", dir=dest.parent if dest.parent.is_dir() else None) as tmp:
        if source == "apt":
            got = _apt_download(package, version, Path(tmp))
        else:
            parts = urllib.parse.urlsplit(source)
            if parts.scheme in ("http", "https", "file"):
                url = source.rstrip("/") + "/" + urllib.parse.quote(name)
            else:
                folder = Path(source).expanduser()
                if not folder.is_absolute() and os.environ.get("DVC_ROOT"):  # dvc exp run --temp: a copy elsewhere
                    folder = Path(os.environ["DVC_ROOT"]) / folder
                if not folder.is_dir():
                    raise PipelineError(
                        f"speech.source: no folder {folder}; set it to apt, a folder or a URL holding {name}"
                    )
                if not (folder / name).is_file():
                    raise PipelineError(f"speech.source: no {name} in {folder}; put it there or set speech.source: apt")
                url = str(folder / name)
            got = Path(tmp) / name
            if url.startswith(("http://", "https://", "file://")):
                try:
                    fetch(url, got, sha256=sha256, max_bytes=MAX_DEB_BYTES)
                except PipelineError as exc:  # its messages name data.url and data.sha256: here speech.*
                    message = (
                        str(exc).replace("data.url", "speech.source").replace("data.sha256", f"{package}'s sha256")
                    )
                    raise PipelineError(message.replace("data.max_mb", "the size limit")) from None
            else:
                shutil.copyfile(url, got)
        found = sha256_file(got)
        if found != sha256.lower():
            raise PipelineError(
                f"{name}: SHA-256 {found}, expected {sha256.lower()}; a corrupt or different package: delete it "
                "and run again, or fix the sha256 in params.yaml's speech section"
            )
        dest.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest / name) as out:
            shutil.copyfile(got, out)
    return dest / name


def _decode_g722(blob: bytes, what) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(io.BytesIO(blob), format="g722") as container:
            stream = container.streams.audio[0]
            frames = [f.to_ndarray() for f in container.decode(stream)]
            rate = stream.codec_context.sample_rate
    except (av.error.FFmpegError, IndexError, ValueError) as exc:
        raise PipelineError(f"{what}: not decodable G.722 ({exc}); delete the package and download it again") from None
    if not frames:
        raise PipelineError(f"{what}: no audio in it; delete the package and download it again")
    audio = np.concatenate([f.reshape(f.shape[0], -1)[0] for f in frames])
    return audio, rate


def read_audio(blob_or_path, what) -> tuple[np.ndarray, int]:
    """(mono samples, rate) of a WAV/FLAC (bytes or a path): int16 as int16, others float32.
    Stereo is averaged; other channel counts, rates below MIN_RATE and unreadable files refused."""
    import soundfile as sf

    source = io.BytesIO(blob_or_path) if isinstance(blob_or_path, bytes) else blob_or_path
    try:
        info = sf.info(source)
        if isinstance(source, io.BytesIO):
            source.seek(0)
        dtype = "int16" if info.subtype == "PCM_16" else "float32"
        audio, rate = sf.read(source, dtype=dtype, always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise PipelineError(f"{what}: not a readable WAV or FLAC ({reason}); convert it to 16-bit PCM WAV") from None
    if audio.shape[1] not in (1, 2):
        raise PipelineError(f"{what} has {audio.shape[1]} channels; give mono or stereo WAVs (sox in.wav -c 1 out.wav)")
    if rate < MIN_RATE:
        raise PipelineError(f"{what} is sampled at {rate} Hz; give at least {MIN_RATE} Hz")
    if audio.shape[1] == 2:
        audio = audio.astype(np.float32).mean(1, dtype=np.float64).astype(np.float32)
        if dtype == "int16":
            audio = audio / 32768
    else:
        audio = audio[:, 0]
    if audio.dtype == np.float32 and not np.all(np.isfinite(audio)):
        raise PipelineError(f"{what} holds NaN or infinite samples; export it again")
    return audio, rate


def as_float(audio) -> np.ndarray:
    """Samples as float64 in [-1, 1] (int16 scaled by 1/32768)."""
    audio = np.asarray(audio)
    return audio.astype(np.float64) / 32768 if audio.dtype == np.int16 else audio.astype(np.float64)


def check_clip(audio, rate: int, what, min_seconds: float) -> None:
    seconds = len(audio) / rate
    if seconds < min_seconds:
        raise PipelineError(
            f"{what} lasts {seconds:.3f} s, shorter than speech.min_seconds ({min_seconds} s); remove it or lower "
            "speech.min_seconds"
        )
    rms = float(np.sqrt(np.mean(as_float(audio) ** 2)))
    if rms < SILENT_RMS:
        raise PipelineError(f"{what} is silent (RMS {rms:.2g} of full scale); remove it or record it louder")


def _clip(audio, rate) -> dict:
    import torch

    return {"rate": int(rate), "audio": torch.from_numpy(np.ascontiguousarray(audio))}


def voice_prompt(name: str) -> str | None:
    """The prompt name ("digits/1") of a file of the English voice in the package, or None for
    anything else (other voices or languages, documents, tones, silences)."""
    if not name.startswith(VOICE_DIR) or not name.endswith(AUDIO_SUFFIXES):
        return None
    prompt = name[len(VOICE_DIR) :].rsplit(".", 1)[0]
    if prompt.startswith(NOT_SPEECH_DIRS) or prompt in NOT_SPEECH:
        return None
    return prompt


def voice_from_deb(path, min_seconds: float) -> dict:
    """{prompt: clip} of the English voice's prompts in the package at `path`; prompts shorter
    than min_seconds are left out (the package's single letters and digits are ~0.3 s)."""
    files = deb_files(path, lambda n: voice_prompt(n) is not None)
    out = {}
    for name, blob in sorted(files.items()):
        what = f"{Path(path).name}:{name}"
        audio, rate = _decode_g722(blob, what) if name.endswith(".g722") else read_audio(blob, what)
        if len(audio) / rate < min_seconds or np.sqrt(np.mean(as_float(audio) ** 2)) < SILENT_RMS:
            continue
        prompt = voice_prompt(name)
        if prompt in out:  # a .wav and a .g722 of one prompt: one utterance
            continue
        out[prompt] = _clip(audio, rate)
    if not out:
        raise PipelineError(
            f"{path} holds no prompts of the English voice (no {VOICE_DIR}*.g722 or .wav of at least "
            f"{min_seconds} s); set speech.voice to an asterisk-core-sounds-en package"
        )
    return out


def music_from_deb(path) -> dict:
    """{track: clip} of the hold-music package's WAVs."""
    files = deb_files(path, lambda n: n.startswith(MUSIC_DIR) and n.endswith((".wav", ".flac")))
    if not files:
        raise PipelineError(
            f"{path} holds no {MUSIC_DIR}*.wav; set speech.music to asterisk-moh-opsound-wav (or another hold-music "
            "package in WAV)"
        )
    out = {}
    for name, blob in sorted(files.items()):
        what = f"{Path(path).name}:{name}"
        audio, rate = read_audio(blob, what)
        check_clip(audio, rate, what, 1.0)
        out[PurePosixPath(name).stem] = _clip(audio, rate)
    return out


def copyright_of(path) -> str:
    """The package's copyright file (its licence terms and credits), or ''."""
    files = deb_files(path, lambda n: n.startswith("usr/share/doc/") and n.endswith("/copyright"))
    return next(iter(files.values()), b"").decode("utf-8", "replace")


def folder_clips(folder: Path, what: str, min_seconds: float) -> dict:
    """{file name without suffix: clip} of the WAV/FLAC files directly in folder."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".wav", ".flac"))
    out = {}
    for p in files:
        audio, rate = read_audio(p, p)
        check_clip(audio, rate, p, min_seconds)
        out[p.stem] = _clip(audio, rate)
    if not out and files == []:
        raise PipelineError(f"{folder} holds no .wav or .flac files; put your {what} there")
    return out


def from_folder(folder, min_seconds: float) -> dict:
    """The user's corpus: folder/speech/*.wav (clean utterances, one each) and, if present,
    folder/noise/*.wav (their own noise, the kind "recorded")."""
    folder = Path(folder).expanduser()
    if not folder.is_absolute() and os.environ.get("DVC_ROOT"):
        folder = Path(os.environ["DVC_ROOT"]) / folder
    if not (folder / "speech").is_dir():
        raise PipelineError(
            f"speech.folder: no folder {folder / 'speech'}; put your clean utterances (WAV, one each) there, or set "
            "speech.folder: null"
        )
    corpus = {"speech": folder_clips(folder / "speech", "clean utterances", min_seconds)}
    corpus["recorded"] = folder_clips(folder / "noise", "noise recordings", 1.0) if (folder / "noise").is_dir() else {}
    return corpus


def seconds(clips: dict) -> float:
    return sum(len(c["audio"]) / c["rate"] for c in clips.values())

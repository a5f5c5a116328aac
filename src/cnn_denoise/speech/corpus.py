"""Recorded speech for the speech stages: fetching and reading Debian packages (the voices of
voices.py, opsound's hold music), or a folder of the user's own WAVs.

The packages come with `apt-get download NAME=VERSION` (or from a folder or URL holding
NAME_VERSION_all.deb), their SHA-256 is checked, and they are unpacked in memory: a .deb is an
`ar` archive whose data.tar.* holds the files (deb.py reads them); nothing is extracted to disk,
and members with unsafe names (absolute, `..`, links) or sizes refuse the package. G.722 files
are decoded with PyAV (FFmpeg), WAV, FLAC and Ogg with soundfile; which files are whose voice is
voices.py's.

A corpus is {"speech": {name: clip}, "music": {...}, "recorded": {...}}, each clip
{"rate": Hz, "audio": int16 or float32 tensor [n]} (a package's speech clips also "voice": its
voice id), at the rate it was recorded at: the mixer resamples what it uses. Names are
"voice:utterance" for the packages' voices, file names for a folder's.
"""

import errno
import io
import math
import os
import shutil
import stat
import subprocess
import tempfile
import urllib.parse
from pathlib import Path, PurePosixPath

import numpy as np

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.common.hashing import sha256_file
from cnn_denoise.speech.deb import MAX_DEB_BYTES, deb_files

APT_TIMEOUT = 900  # seconds apt-get download may take
MUSIC_DIR = "usr/share/asterisk/moh/"
# Prompts that are tones or silence, not speech.
NOT_SPEECH = {"ascending-2tone", "descending-2tone", "beep", "beeperr", "confbridge-join", "confbridge-leave"}
NOT_SPEECH_DIRS = ("silence/",)
SILENT_RMS = 1e-3  # an utterance quieter than this (RMS, full scale 1) is silent: -60 dBFS
MIN_RATE = 8000  # Hz: below it there is no speech band to speak of
AUDIO_FILES = (".wav", ".flac")  # what speech.folder's recordings are named (any case)
# The mixer resamples a clip by up/down in lowest terms to data.sample_rate with resample_poly,
# which designs a filter of 20 max(up, down) + 1 taps for every segment it mixes: the standard
# rates' terms are a few hundred (44100 to 16000 is 160/441); an odd rate's (199999) millions.
MAX_RATIO_TERM = 1 << 12
MUSIC_CREDIT = (
    "opsound hold music: Paul Shuler (Macroform): cold_day, robot_dity, the_simplicity; Manolo Camp: "
    "morning_coffee; Reno Project: system. License: CC-BY-SA-3.0 (by explicit permission of their authors), "
    "https://creativecommons.org/licenses/by-sa/3.0/"
)
CREDITS = (
    """\
# Attribution

The recordings in this folder come from Debian's packages, unchanged but for decoding; the data
sets made from them (data/speech/) are mixes of them with noise, i.e. adaptations.

- Voice: {voice}.
- Music: {music}. """
    + MUSIC_CREDIT
    + """

The packages' own copyright files are beside this one (copyright-<package>).
"""
)


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


def _entry_problem(p: Path) -> str | None:
    """Why a folder entry named like a recording is not a file we can read as one, or None.
    Asked of os.stat, which follows links, never of open(): opening a FIFO waits for a writer."""
    try:
        mode = os.stat(p).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link that loops"
        if not p.exists() and p.is_symlink():
            return f"a symbolic link to {os.readlink(p)}, which does not exist"
        return f"not readable ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket"}
    kind = next((name for test, name in kinds.items() if test(mode)), "a device file")
    return f"{kind}, not a recording"


def _rate_problem(rate: int, target: int) -> str | None:
    g = math.gcd(int(rate), int(target))
    up, down = target // g, int(rate) // g
    if max(up, down) <= MAX_RATIO_TERM:
        return None
    return (
        f"is at {rate} Hz, {up}/{down} of data.sample_rate ({target} Hz): mixing would design a "
        f"{20 * max(up, down) + 1}-tap filter for every segment; resample it to a common rate first "
        "(sox in.wav -r 48000 out.wav)"
    )


def folder_clips(folder: Path, what: str, min_seconds: float, sample_rate: int) -> dict:
    """{file name without suffix: clip} of the WAV/FLAC files directly in folder. Every entry
    named .wav or .flac (any case) is a recording, or stops the stage with one line: a link
    that leads nowhere, a FIFO or a folder so named, two files of one name (u1.wav and
    u1.flac: the split is by name, so one utterance twice could land in both splits), a rate
    whose ratio to data.sample_rate needs a filter past MAX_RATIO_TERM."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_FILES)
    for p in files:
        if why := _entry_problem(p):
            raise PipelineError(f"{p} is {why}; remove it from {folder} or put the recording there")
    stems: dict[str, list[str]] = {}
    for p in files:
        stems.setdefault(p.stem, []).append(p.name)
    if clash := next((names for names in stems.values() if len(names) > 1), None):
        raise PipelineError(
            f"{folder}: {', '.join(clash)} are one name ({Path(clash[0]).stem}) for {len(clash)} files, and a "
            "recording is named by its file name without the suffix; rename or remove all but one"
        )
    out = {}
    for p in files:
        audio, rate = read_audio(p, p)
        if why := _rate_problem(rate, sample_rate):
            raise PipelineError(f"{p} {why}")
        check_clip(audio, rate, p, min_seconds)
        out[p.stem] = _clip(audio, rate)
    if not out:
        raise PipelineError(f"{folder} holds no .wav or .flac files; put your {what} there")
    return out


def from_folder(folder, min_seconds: float, sample_rate: int) -> dict:
    """The user's corpus: folder/speech/*.wav (clean utterances, one each) and, if present,
    folder/noise/*.wav (their own noise, the kind "recorded"), each at a rate the mixer can
    bring to data.sample_rate (`sample_rate`) with a filter of bounded length."""
    folder = Path(folder).expanduser()
    if not folder.is_absolute() and os.environ.get("DVC_ROOT"):
        folder = Path(os.environ["DVC_ROOT"]) / folder
    if not (folder / "speech").is_dir():
        raise PipelineError(
            f"speech.folder: no folder {folder / 'speech'}; put your clean utterances (WAV, one each) there, or set "
            "speech.folder: null"
        )
    corpus = {"speech": folder_clips(folder / "speech", "clean utterances", min_seconds, sample_rate)}
    noise = folder / "noise"
    corpus["recorded"] = folder_clips(noise, "noise recordings", 1.0, sample_rate) if noise.is_dir() else {}
    return corpus


def seconds(clips: dict) -> float:
    return sum(len(c["audio"]) / c["rate"] for c in clips.values())

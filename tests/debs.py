"""Tiny Debian packages for the speech tests: a few synthetic utterances (WAV or G.722) laid out
as Asterisk's sound packages are, and a hold-music package, built in memory in seconds."""

import hashlib
import io
import tarfile

import numpy as np

VOICE = "usr/share/asterisk/sounds/en_US_f_Allison/"
MUSIC = "usr/share/asterisk/moh/"
PROMPTS = [f"prompt-{i:02d}" for i in range(12)] + ["digits/1", "digits/2"]


def wav_bytes(audio: np.ndarray, rate: int, subtype="PCM_16", fmt="WAV") -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, subtype=subtype, format=fmt)
    return buffer.getvalue()


def g722_bytes(audio: np.ndarray) -> bytes:
    """16 kHz samples in [-1, 1] encoded as raw G.722 (what the g722 package holds)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="g722") as out:
        stream = out.add_stream("g722", rate=16000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.round(audio * 32767).astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buffer.getvalue()


def utterance(seed: int, seconds: float, rate: int) -> np.ndarray:
    """Speech-like audio (synth.py's syllables) at about -20 dBFS."""
    from cnn_denoise.lab import synth

    y = synth.clean_speech(np.random.default_rng(seed), int(seconds * rate), rate)
    return y / max(np.max(np.abs(y)), 1e-12) * 0.3


def tar_xz(files: dict[str, bytes], extra=()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return buffer.getvalue()


def ar(members: dict[str, bytes]) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members.items():
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += [header, data, b"\n" if len(data) % 2 else b""]
    return b"".join(out)


def deb(files: dict[str, bytes], extra=()) -> bytes:
    return ar({"debian-binary": b"2.0\n", "control.tar.xz": tar_xz({}), "data.tar.xz": tar_xz(files, extra)})


def voice_deb(g722=True, prompts=PROMPTS, seconds=1.2) -> bytes:
    files = {}
    for i, name in enumerate(prompts):
        audio = utterance(i, seconds + 0.1 * (i % 3), 16000)
        files[f"{VOICE}{name}.{'g722' if g722 else 'wav'}"] = g722_bytes(audio) if g722 else wav_bytes(audio, 16000)
    files[f"{VOICE}silence/1.wav"] = wav_bytes(np.zeros(8000), 8000)  # left out: not speech
    files[f"{VOICE}beep.wav"] = wav_bytes(0.3 * np.sin(np.arange(4000) * 0.5), 8000)  # a tone, left out
    files["usr/share/asterisk/sounds/fr_FR_f_June/bonjour.wav"] = wav_bytes(utterance(99, 1.0, 8000), 8000)
    files["usr/share/doc/asterisk-core-sounds-en-g722/copyright"] = b"License: CC-BY-SA-3.0\n"
    return deb(files)


def music_deb() -> bytes:
    rng = np.random.default_rng(7)
    t = np.arange(8000 * 4) / 8000
    tracks = {
        f"{MUSIC}track-{i}.wav": wav_bytes(
            0.2 * np.sin(2 * np.pi * (220 + 110 * i) * t) + 0.01 * rng.standard_normal(len(t)), 8000
        )
        for i in range(2)
    }
    tracks["usr/share/doc/asterisk-moh-opsound-wav/copyright"] = b"License: CC-BY-SA-3.0\n"
    return deb(tracks)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_debs(folder, voice=None, music=None) -> dict:
    """The two packages in folder under params.yaml's names; {"voice": {...}, "music": {...}} overrides."""
    voice = voice if voice is not None else voice_deb()
    music = music if music is not None else music_deb()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "asterisk-core-sounds-en-g722_1.6.1-1_all.deb").write_bytes(voice)
    (folder / "asterisk-moh-opsound-wav_2.03-1.1_all.deb").write_bytes(music)
    return {
        "speech.voices": [voice_param("asterisk-core-sounds-en-g722", "1.6.1-1", voice)],
        "speech.music.sha256": sha256(music),
    }


def voice_param(package: str, version: str, data: bytes) -> dict:
    """One entry of params.yaml's speech.voices for a package's bytes."""
    return {"package": package, "version": version, "sha256": sha256(data)}

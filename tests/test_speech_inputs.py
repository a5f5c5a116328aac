"""The speech_corpus stage against inputs nobody here wrote (issue 38): hostile .debs and odd
folders of recordings, each through `python stages/speech_corpus.py` as its own process, with
its peak memory and a time limit; a refusal is one line, exit 1, nothing written."""

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from debs import VOICE, ar, music_deb, utterance, voice_deb, wav_bytes, write_debs
from helpers import REPO, write_params_copy

from cnn_denoise.speech import deb


def corpus_stage(tmp_path, timeout=120):
    """`python stages/speech_corpus.py data/debs data/corpus` in tmp_path: (process, peak RSS in
    MiB, VmHWM read at exit; ru_maxrss of a child would also count the pytest it forked from)."""
    script = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: print('VmHWM', "
        "open('/proc/self/status').read().split('VmHWM:')[1].split()[0], file=sys.stderr))\n"
        f"sys.argv = [{str(REPO / 'stages' / 'speech_corpus.py')!r}, 'data/debs', 'data/corpus']\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    env = dict(os.environ, CNN_DENOISE_TRACKING="off")
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
    )
    text, _, peak = proc.stderr.rpartition("VmHWM")
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, text), int(peak.split()[0]) / 1024


def refused(proc, message):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert message in lines[0], lines[0]
    return lines[0]


def with_voice(tmp_path, voice: bytes, **changes) -> None:
    shas = write_debs(tmp_path / "data/debs", voice=voice, music=music_deb())
    write_params_copy(tmp_path, **shas, **changes)


def raw_tar_xz(members) -> bytes:
    """data.tar.xz of (name, bytes or a declared size with no data) members, xz at preset 0."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz", preset=0) as tar:
        for name, data in members:
            info = tarfile.TarInfo("./" + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# ---- hostile packages ----


@pytest.mark.slow
def test_an_ar_member_of_negative_size_is_refused_not_looped_on(tmp_path):
    """A header declaring -60 bytes once sent the parser back to the same header forever."""
    good = voice_deb(prompts=["a"])
    first = good.index(b"debian-binary/")
    bad = good[: first + 48] + b"-60       " + good[first + 58 :]
    with_voice(tmp_path, bad)
    proc, _ = corpus_stage(tmp_path, timeout=60)
    refused(proc, "a corrupt ar header at byte 8; delete it and download it again")
    assert not (tmp_path / "data/corpus").exists()


@pytest.mark.slow
def test_an_xz_bomb_of_members_each_under_the_file_limit_is_refused_in_bounded_memory(tmp_path):
    """Eight 60 MiB members (each under MAX_FILE_BYTES) in 100 KB: they summed to gigabytes in
    memory; refused at the member that passes MAX_TOTAL_BYTES, before it is read. The stage's
    peak is measured against its own on a small package (torch alone is some 200 MiB): it may
    grow by what it holds (at most MAX_TOTAL_BYTES), not by the 480 MiB the package declares."""
    assert 5 * (60 << 20) > deb.MAX_TOTAL_BYTES and 60 << 20 < deb.MAX_FILE_BYTES
    (tmp_path / "small").mkdir()
    with_voice(tmp_path / "small", voice_deb(prompts=["a", "b"]))
    _, small = corpus_stage(tmp_path / "small")
    zeros = bytes(60 << 20)
    data = raw_tar_xz([(f"{VOICE}bomb-{i}.wav", zeros) for i in range(8)])
    blob = ar({"debian-binary": b"2.0\n", "control.tar.xz": raw_tar_xz([]), "data.tar.xz": data})
    assert len(blob) < 100_000
    with_voice(tmp_path, blob)
    proc, peak = corpus_stage(tmp_path)
    print(f"{len(blob)} bytes declaring 480 MiB: peak RSS {peak:.0f} MiB, {small:.0f} MiB on a small package")
    refused(proc, f"the files used from it pass {deb.MAX_TOTAL_BYTES} bytes together (at member '{VOICE}bomb-4.wav')")
    assert peak < small + (deb.MAX_TOTAL_BYTES >> 20) + 96 and not (tmp_path / "data/corpus").exists()


@pytest.mark.slow
def test_a_member_that_would_inflate_past_the_bound_is_refused_before_it_is_inflated(tmp_path):
    """A member the stage does not use (another language) declaring 3 GiB: passing over it
    means inflating it (xz has no index to skip by), so what it declares is counted first."""
    info = tarfile.TarInfo("./usr/share/asterisk/sounds/fr_FR_f_June/huge.wav")
    info.size = 3 << 30
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz", preset=0) as tar:
        tar.addfile(info)  # the header alone: the stage must refuse on it
    blob = ar({"debian-binary": b"2.0\n", "control.tar.xz": raw_tar_xz([]), "data.tar.xz": buffer.getvalue()})
    with_voice(tmp_path, blob)
    proc, _ = corpus_stage(tmp_path)
    refused(proc, f"its data.tar inflates past {deb.MAX_INFLATED_BYTES} bytes (at member 'usr/share/asterisk")


@pytest.mark.slow
def test_members_the_stage_does_not_use_are_never_held(tmp_path):
    """A 60 MiB member of another voice is passed over as the stream goes by: the stage's
    peak is that of the small package it is beside, not 60 MiB more."""
    base = voice_deb(prompts=["a", "b"])
    with_voice(tmp_path, base)
    _, small = corpus_stage(tmp_path)
    files = {f"{VOICE}{n}.wav": wav_bytes(utterance(i, 1.2, 16000), 16000) for i, n in enumerate(["a", "b"])}
    files["usr/share/doc/asterisk-core-sounds-en-g722/copyright"] = b"License: CC-BY-SA-3.0\n"
    other = [("usr/share/asterisk/sounds/fr_FR_f_June/long.wav", bytes(60 << 20)), *files.items()]
    blob = ar({"debian-binary": b"2.0\n", "control.tar.xz": raw_tar_xz([]), "data.tar.xz": raw_tar_xz(other)})
    with_voice(tmp_path, blob)
    proc, big = corpus_stage(tmp_path)
    assert proc.returncode == 0, proc.stderr
    print(f"peak RSS {small:.0f} MiB, with a 60 MiB member passed over {big:.0f} MiB")
    assert big < small + 30


# ---- speech.folder: every recording, at a rate the mixer can reach ----


def own_folder(tmp_path, files: dict[str, bytes], **changes) -> Path:
    """tmp_path/mine/speech holding files (and the packages the stage also reads); params set."""
    speech = tmp_path / "mine" / "speech"
    speech.mkdir(parents=True)
    for name, data in files.items():
        (speech / name).write_bytes(data)
    with_voice(tmp_path, voice_deb(prompts=["a"]), **{"speech.folder": "mine", **changes})
    return speech


@pytest.mark.slow
def test_an_odd_rate_is_refused_when_the_corpus_is_read(tmp_path):
    """0.6 s at 199,999 Hz against data.sample_rate 32000 is 32000/199999: the mixer designed a
    4-million-tap filter for each segment (speech_train 40x slower). Refused in one line at
    corpus time; 44.1 kHz beside it (320/441) is not."""
    own_folder(
        tmp_path,
        {
            "cd.wav": wav_bytes(utterance(0, 1.0, 44100), 44100),
            "odd.wav": wav_bytes(utterance(1, 0.6, 199_999), 199_999),
        },
        **{"speech.min_seconds": 0.5},
    )
    proc, _ = corpus_stage(tmp_path, timeout=60)
    refused(
        proc,
        "mine/speech/odd.wav is at 199999 Hz, 32000/199999 of data.sample_rate (32000 Hz): mixing would design "
        "a 3999981-tap filter for every segment; resample it to a common rate first",
    )
    assert not (tmp_path / "data/corpus").exists()


def test_recordings_of_one_name_are_refused_by_name_not_dropped(tmp_path):
    """u1.wav, u1.flac and u1.WAV are three files; one was kept, two dropped without a word."""
    files = {
        "u1.wav": wav_bytes(utterance(0, 1.0, 16000), 16000),
        "u1.flac": wav_bytes(utterance(1, 1.0, 16000), 16000, fmt="FLAC"),
        "u1.WAV": wav_bytes(utterance(2, 1.0, 16000), 16000),
        "u2.wav": wav_bytes(utterance(3, 1.0, 16000), 16000),
    }
    own_folder(tmp_path, files)
    proc, _ = corpus_stage(tmp_path, timeout=60)
    refused(proc, "u1.WAV, u1.flac, u1.wav are one name (u1) for 3 files")
    assert not (tmp_path / "data/corpus").exists()


@pytest.mark.parametrize(
    "kind, message",
    [
        ("loop", "x.wav is a symbolic link that loops; remove it from"),
        ("dangling", "x.wav is a symbolic link to gone.wav, which does not exist; remove it"),
        ("fifo", "x.wav is a FIFO (named pipe), not a recording; remove it"),
        ("device", "x.wav is a device file, not a recording; remove it"),
        ("folder", "x.wav is a folder, not a recording; remove it"),
    ],
)
def test_an_entry_named_like_a_recording_that_is_none_stops_the_stage(tmp_path, kind, message):
    """docs/speech.md: unreadable files stop the stage with one line naming the file. These were
    skipped without a word (a FIFO is never opened: that would wait for a writer)."""
    speech = own_folder(tmp_path, {"ok.wav": wav_bytes(utterance(0, 1.0, 16000), 16000)})
    x = speech / "x.wav"
    if kind == "loop":
        x.symlink_to("x.wav")
    elif kind == "dangling":
        x.symlink_to("gone.wav")
    elif kind == "fifo":
        os.mkfifo(x)
    elif kind == "device":
        x.symlink_to("/dev/null")
    else:
        x.mkdir()
    proc, _ = corpus_stage(tmp_path, timeout=60)
    refused(proc, f"mine/speech/{message}")
    assert not (tmp_path / "data/corpus").exists()

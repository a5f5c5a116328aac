"""Recordings that are not WAVs (MP3, Opus, AAC, FLAC) through `cnn-denoise enhance`: decoded with
PyAV in blocks and written back as <stem>.wav, said on a note line; checked against the clean
signal (SI-SDR), against the WAV route (a lossless FLAC gives the WAV's output to the sample),
and for memory that does not grow with the recording's length."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import encode
from test_enhance import denoising_model, speech_at

from cnn_denoise import cli
from cnn_denoise.enhance import score
from cnn_denoise.scoring import quality


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return denoising_model(tmp_path_factory.mktemp("model"))


def si_sdr(x, clean):
    return quality.si_sdr_db(torch.from_numpy(x.T.copy()), torch.from_numpy(clean.T.copy()))


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, codec, rate, exact",
    [("talk.mp3", "libmp3lame", 44100, True), ("talk.opus", "libopus", 48000, True), ("talk.m4a", "aac", 44100, False)],
)
def test_a_lossy_recording_is_decoded_denoised_and_written_as_wav(tmp_path, capsys, model, name, codec, rate, exact):
    noisy, clean = speech_at(rate, 2.0, 2, seed=3)
    src = encode(tmp_path / name, noisy, rate, codec)
    with pytest.raises(SystemExit) as exited:
        cli.main(
            ["enhance", str(src), "-o", str(tmp_path / "out"), "-m", str(model), *(["--score"] * (codec == "aac"))]
        )
    err = capsys.readouterr().err
    assert exited.value.code == 0, err
    if codec == "aac":  # the input is read for DNSMOS as it was for denoising, and the scores are explained
        assert f"{name}: DNSMOS SIG " in err and score.MEANING in err, err
    assert f"note: {name}: decoded with PyAV (" in err and "written as talk.wav, a PCM_16 WAV" in err, err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["talk.wav"]
    out, got_rate = sf.read(tmp_path / "out" / "talk.wav")
    info = sf.info(str(tmp_path / "out" / "talk.wav"))
    assert (got_rate, info.channels, info.subtype, info.format) == (rate, 2, "PCM_16", "WAV")
    if exact:  # LAME's and Opus's headers say where the signal starts and ends: the decoder trims to it
        assert len(out) == len(noisy)
    else:  # AAC as PyAV muxes it: its last frame is whole (the padding is not trimmed)
        assert len(noisy) <= len(out) < len(noisy) + 1024
        out = out[: len(noisy)]
    before, after = si_sdr(noisy, clean), si_sdr(out, clean)
    assert after > before + 8, (before, after)


def test_a_lossless_flac_gives_what_its_wav_gives(tmp_path, model):
    """A 24-bit FLAC through PyAV (FFmpeg's decoder) gives what a 24-bit WAV of the samples libFLAC
    decodes from it gives (libsndfile's reading: the other decoder), to the sample, and is 24-bit."""
    noisy, _ = speech_at(48000, 0.8, 2)
    sf.write(tmp_path / "a.flac", noisy, 48000, subtype="PCM_24")
    sf.write(tmp_path / "b.wav", sf.read(tmp_path / "a.flac")[0], 48000, subtype="PCM_24")
    for src in ("a.flac", "b.wav"):
        assert cli.enhance([str(tmp_path / src), "-o", str(tmp_path / "out"), "-m", str(model)]) == 0
    a, b = sf.read(tmp_path / "out" / "a.wav"), sf.read(tmp_path / "out" / "b.wav")
    assert sf.info(str(tmp_path / "out" / "a.wav")).subtype == "PCM_24"
    np.testing.assert_array_equal(a[0], b[0])


def test_an_mp3_and_a_wav_of_one_name_are_refused_before_any_work(tmp_path, capsys, model):
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "talk.wav", np.zeros(1000), 16000)
    encode(tmp_path / "in" / "talk.mp3", np.zeros(44100), 44100)
    with pytest.raises(SystemExit) as exited:
        cli.main(["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(model)])
    lines = capsys.readouterr().err.splitlines()
    assert exited.value.code == 1 and len(lines) == 1, lines
    assert "talk.mp3 and " in lines[0] and "would both be written as talk.wav" in lines[0], lines
    assert not (tmp_path / "out").exists()


def rss_mib(tmp_path, model, seconds: int) -> float:
    """Peak RSS (VmHWM: the command's own high-water mark) of `cnn-denoise enhance` on a 44.1 kHz
    stereo MP3 of `seconds`, whose output must have every sample."""
    rng = np.random.default_rng(0)
    src = encode(tmp_path / f"long{seconds}.mp3", rng.standard_normal((44100 * seconds, 2)) * 0.05, 44100)
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('VmHWM', "
        "open('/proc/self/status').read().split('VmHWM:')[1].split()[0], file=sys.stderr))\n"
        "from cnn_denoise.cli import main\nmain(sys.argv[1:])\n"
    )
    argv = ["enhance", str(src), "-o", str(tmp_path / "out"), "-m", str(model)]
    proc = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert sf.info(str(tmp_path / "out" / src.with_suffix(".wav").name)).frames == 44100 * seconds
    return int(proc.stderr.split("VmHWM")[-1].split()[0]) / 1024


@pytest.mark.slow
def test_a_long_mp3_in_bounded_memory(tmp_path, model):
    """Four minutes of stereo MP3 cost no more memory than ten seconds (64 MiB of slack; held
    whole as float64 they would be 160 MiB): decoded frame by frame, never all at once."""
    short, long = rss_mib(tmp_path, model, 10), rss_mib(tmp_path, model, 240)
    assert long < short + 64, (short, long)

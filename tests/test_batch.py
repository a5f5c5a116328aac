"""`cnn-denoise enhance` on a folder holding recordings it can and cannot read: every readable one
is denoised and written whole, the others are named at the end, one `error:` line each, and the
exit status is 1; a bad file costs only itself."""

import subprocess

import numpy as np
import pytest
import soundfile as sf
from helpers import encode
from test_enhance import denoising_model, speech_at


@pytest.mark.slow
def test_a_folder_with_unreadable_files_does_the_others_and_names_them_at_the_end(tmp_path):
    model, folder = denoising_model(tmp_path), tmp_path / "in"
    folder.mkdir()
    noisy, _ = speech_at(48000, 0.5, 1)
    sf.write(folder / "a.wav", noisy, 48000, subtype="PCM_16")
    (folder / "b.wav").write_text("not audio")  # unreadable: seen before any work
    encode(folder / "c.mp3", noisy, 48000)
    sf.write(folder / "d.wav", np.zeros((0, 1)), 16000)  # no samples
    sf.write(folder / "e.wav", np.zeros(100), 196613)  # a rate whose resampling filter is refused
    sf.write(folder / "f.wav", np.array([0.1, np.nan] * 500), 16000, subtype="FLOAT")  # refused midway, in its pass
    sf.write(folder / "g.wav", noisy[::-1], 48000, subtype="PCM_16")
    (folder / "notes.txt").write_text("not a recording, and not taken from a folder")
    alone = tmp_path / "alone"
    subprocess.run(["cnn-denoise", "enhance", str(folder / "g.wav"), "-o", str(alone), "-m", str(model)], check=True)

    proc = subprocess.run(
        ["cnn-denoise", "enhance", str(folder), "-o", str(tmp_path / "out"), "-m", str(model)],
        capture_output=True,
        text=True,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav", "c.wav", "g.wav"]  # nothing hidden either
    assert sf.info(str(tmp_path / "out" / "a.wav")).frames == len(noisy)
    assert sf.info(str(tmp_path / "out" / "c.wav")).frames == len(noisy)
    # g.wav is what it is alone: the others' failures changed nothing in it
    assert (tmp_path / "out" / "g.wav").read_bytes() == (alone / "g.wav").read_bytes()
    errors = lines[-4:]
    assert [e.split()[1].rsplit("/", 1)[-1] for e in errors] == ["b.wav", "d.wav", "e.wav", "f.wav"], lines
    assert all(e.startswith("error: ") and "; " in e for e in errors), errors
    assert "is not a recording libsndfile or PyAV can read" in errors[0] and "holds no samples" in errors[1]
    assert "196613 Hz" in errors[2] and "NaN or infinite" in errors[3]
    assert lines[-5].startswith("enhanced 3 file(s) into ") and lines[-5].endswith("; 4 not, each below"), lines
    assert sum(line.startswith("error: ") for line in lines) == 4


@pytest.mark.slow
def test_a_folder_with_no_recording_is_one_line(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("x")
    proc = subprocess.run(
        ["cnn-denoise", "enhance", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", "unused.pt"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and "holds no recording (.wav, .flac, .mp3, ...)" in proc.stderr

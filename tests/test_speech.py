"""speech.py: Debian packages fetched (apt-get, a folder, HTTP on 127.0.0.1), checked, parsed in
memory, the English voice kept; the user's own WAVs; every bad input one line naming the fix."""

import os
import stat
import tarfile

import numpy as np
import pytest
import torch
from debs import music_deb, sha256, utterance, voice_deb, wav_bytes, write_debs
from helpers import write_params_copy

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.speech import corpus, voices

G722 = ("asterisk-core-sounds-en-g722", "1.6.1-1")


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("debs")
    shas = write_debs(folder)
    return folder, shas


def english(path, min_seconds: float) -> dict:
    """{prompt: clip} of the English voice in the package at path, as speech_corpus reads it."""
    clips, _ = voices.corpus_speech([(path, G722[0])], min_seconds)
    prefix = "asterisk/allison-smith:en_US/"
    assert all(name.startswith(prefix) for name in clips)
    return {name[len(prefix) :]: clip for name, clip in clips.items()}


def test_the_english_voice_only_decoded_at_its_rate(packages):
    folder, _ = packages
    clips = english(folder / corpus.deb_name(*G722), 0.5)
    assert sorted(clips) == sorted([f"prompt-{i:02d}" for i in range(12)] + ["digits/1", "digits/2"])
    clip = clips["prompt-00"]
    assert clip["rate"] == 16000 and clip["audio"].dtype == torch.int16
    assert abs(len(clip["audio"]) - 1.2 * 16000) <= 160  # G.722 frames: the length within 10 ms
    want = utterance(0, 1.2, 16000)[:16000]
    got = corpus.as_float(clip["audio"].numpy())
    best = max(np.corrcoef(got[lag : lag + 16000], want)[0, 1] for lag in range(64))  # the codec's delay: samples
    assert best > 0.9


def test_wav_prompts_and_min_seconds(tmp_path):
    (tmp_path / "v.deb").write_bytes(voice_deb(g722=False, prompts=["long", "short"], seconds=0.4))
    assert sorted(english(tmp_path / "v.deb", 0.45)) == ["short"]  # 0.5 s kept, 0.4 s left out


def test_music_and_copyright(packages):
    folder, _ = packages
    music = corpus.music_from_deb(folder / "asterisk-moh-opsound-wav_2.03-1.1_all.deb")
    assert sorted(music) == ["track-0", "track-1"] and music["track-0"]["rate"] == 8000
    assert "CC-BY-SA-3.0" in corpus.copyright_of(folder / corpus.deb_name(*G722))


def fake_apt(bin_dir, script: str):
    """An apt-get on PATH that runs `script` (sh) in the folder it is called from."""
    bin_dir.mkdir(exist_ok=True)
    apt = bin_dir / "apt-get"
    apt.write_text("#!/bin/sh\n" + script)
    apt.chmod(apt.stat().st_mode | stat.S_IEXEC)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def test_apt_get_download_is_run_and_checked(packages, tmp_path, monkeypatch):
    folder, shas = packages
    log = tmp_path / "calls"
    monkeypatch.setenv(
        "PATH", fake_apt(tmp_path / "bin", f'echo "$@" >> {log}; cp {folder}/"$(echo $2 | cut -d= -f1)"_*.deb .\n')
    )
    got = corpus.fetch_deb(*G722, shas["speech.voices"][0]["sha256"], "apt", tmp_path / "out")
    assert got.read_bytes() == (folder / corpus.deb_name(*G722)).read_bytes()
    assert log.read_text() == "download asterisk-core-sounds-en-g722=1.6.1-1\n"
    with pytest.raises(PipelineError, match=r"SHA-256 [0-9a-f]{64}, expected 0{64}; a corrupt or different"):
        corpus.fetch_deb(*G722, "0" * 64, "apt", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def test_apt_get_that_cannot_find_the_package_says_update(tmp_path, monkeypatch):
    script = 'echo "E: Unable to locate package $2" >&2; exit 100\n'
    monkeypatch.setenv("PATH", fake_apt(tmp_path / "bin", script))
    with pytest.raises(PipelineError, match=r"failed \(E: Unable to locate package .*\); run `apt-get update`"):
        corpus.fetch_deb(*G722, "0" * 64, "apt", tmp_path / "out")


def test_fetch_from_a_loopback_server_and_a_folder(packages, http_server, tmp_path):
    folder, shas = packages
    root, url = http_server
    name = corpus.deb_name(*G722)
    (root / name).write_bytes((folder / name).read_bytes())
    got = corpus.fetch_deb(*G722, shas["speech.voices"][0]["sha256"], f"{url}/files", tmp_path / "http")
    assert sha256(got.read_bytes()) == shas["speech.voices"][0]["sha256"]
    with pytest.raises(PipelineError, match=r"asterisk-core-sounds-en-g722's sha256 mismatch"):
        corpus.fetch_deb(*G722, "1" * 64, f"{url}/files", tmp_path / "bad")
    with pytest.raises(PipelineError, match=r"HTTP 404.*check speech.source"):
        corpus.fetch_deb(*G722, "1" * 64, f"{url}/status/404/x", tmp_path / "bad")
    assert corpus.fetch_deb(*G722, shas["speech.voices"][0]["sha256"], str(folder), tmp_path / "dir").is_file()
    with pytest.raises(
        PipelineError, match=r"^speech.source: no asterisk-core-sounds-en-g722_1.6.1-1_all.deb in .*; put it"
    ):
        corpus.fetch_deb(*G722, "1" * 64, str(tmp_path), tmp_path / "none")


def _bad_member_deb(name: str) -> bytes:
    from debs import deb

    info = tarfile.TarInfo(name)
    return deb({}, extra=[info])


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"hello", r"is not a Debian package \(no ar header\); delete it and download it again"),
        (b"!<arch>\nbroken", r"a corrupt ar header at byte 8"),
        (b"!<arch>\n" + b"debian-binary/  0           0     0     100644  99        `\n2.0\n", r"is truncated"),
    ],
)
def test_corrupt_packages_are_one_line(tmp_path, blob, message):
    (tmp_path / "x.deb").write_bytes(blob)
    with pytest.raises(PipelineError, match=message):
        english(tmp_path / "x.deb", 0.5)


def test_a_package_with_an_escaping_member_or_no_data_is_refused(tmp_path):
    from debs import ar

    (tmp_path / "slip.deb").write_bytes(_bad_member_deb("../../etc/evil"))
    with pytest.raises(PipelineError, match=r"member '../../etc/evil' points outside its folder; refusing"):
        english(tmp_path / "slip.deb", 0.5)
    (tmp_path / "empty.deb").write_bytes(ar({"debian-binary": b"2.0\n"}))
    with pytest.raises(PipelineError, match=r"holds no data.tar"):
        english(tmp_path / "empty.deb", 0.5)
    good = voice_deb()
    (tmp_path / "cut.deb").write_bytes(good[: len(good) // 2])
    with pytest.raises(PipelineError, match=r"truncated|corrupt"):
        english(tmp_path / "cut.deb", 0.5)
    (tmp_path / "none.deb").write_bytes(music_deb())
    with pytest.raises(PipelineError, match=r"holds no utterances of .*'s voices of at least 0.5 s"):
        english(tmp_path / "none.deb", 0.5)
    with pytest.raises(PipelineError, match=r"no such package; run dvc repro"):
        english(tmp_path / "missing.deb", 0.5)


def user_folder(root, files: dict[str, bytes]):
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_a_folder_of_your_own(tmp_path):
    stereo = np.stack([utterance(1, 1.0, 44100), utterance(2, 1.0, 44100)], 1)
    folder = user_folder(
        tmp_path,
        {
            "speech/a.wav": wav_bytes(utterance(0, 1.0, 16000), 16000),
            "speech/b.flac": wav_bytes(stereo, 44100, fmt="FLAC"),
            "speech/c.wav": wav_bytes(utterance(3, 1.0, 48000).astype(np.float32), 48000, subtype="FLOAT"),
            "speech/notes.txt": b"ignored",
            "noise/fan.wav": wav_bytes(0.1 * np.random.default_rng(0).standard_normal(16000), 16000),
        },
    )
    clips = corpus.from_folder(folder, 0.5, 16000)
    assert sorted(clips["speech"]) == ["a", "b", "c"] and sorted(clips["recorded"]) == ["fan"]
    assert clips["speech"]["b"]["rate"] == 44100 and clips["speech"]["b"]["audio"].ndim == 1
    assert clips["speech"]["c"]["audio"].dtype == torch.float32


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("a.wav", b"not audio at all", r"a.wav: not a readable WAV or FLAC \(.*\); convert it to 16-bit PCM WAV$"),
        ("a.wav", wav_bytes(np.zeros((8000, 3)), 8000), r"has 3 channels; give mono or stereo"),
        ("a.wav", wav_bytes(utterance(0, 1.0, 4000), 4000), r"is sampled at 4000 Hz; give at least 8000 Hz"),
        ("a.wav", wav_bytes(np.zeros(16000), 16000), r"a.wav is silent \(RMS 0 of full scale\); remove it"),
        ("a.wav", wav_bytes(utterance(0, 0.2, 16000), 16000), r"lasts 0.200 s, shorter than speech.min_seconds"),
    ],
)
def test_bad_wavs_in_a_folder_are_one_line(tmp_path, name, data, message):
    user_folder(tmp_path, {f"speech/{name}": data})
    with pytest.raises(PipelineError, match=message):
        corpus.from_folder(tmp_path, 0.5, 16000)


def test_a_folder_without_speech(tmp_path):
    with pytest.raises(PipelineError, match=r"^speech.folder: no folder .*speech; put your clean utterances"):
        corpus.from_folder(tmp_path, 0.5, 16000)
    (tmp_path / "speech").mkdir()
    with pytest.raises(PipelineError, match=r"holds no .wav or .flac files; put your clean utterances there"):
        corpus.from_folder(tmp_path, 0.5, 16000)


def test_the_fetch_and_corpus_stages(packages, tmp_path, stage):
    folder, shas = packages
    write_params_copy(tmp_path, **{"speech.source": str(folder), **shas})
    proc = stage("speech_fetch", "data/speech/debs", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = stage("speech_corpus", "data/speech/debs", "data/speech/corpus", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "speech: 14 clips" in proc.stderr
    out = tmp_path / "data/speech/corpus"
    corpus = torch.load(out / "corpus.pt", weights_only=True)
    assert sorted(corpus) == ["music", "recorded", "speech"] and len(corpus["speech"]) == 14
    credits = (out / "ATTRIBUTION.md").read_text()
    assert "Allison Smith" in credits and "CC-BY-SA-3.0" in credits and shas["speech.voices"][0]["sha256"] in credits
    assert sorted(p.name for p in out.iterdir()) == [
        "ATTRIBUTION.md",
        "copyright-asterisk-core-sounds-en-g722",
        "copyright-asterisk-moh-opsound-wav",
        "corpus.pt",
        "voices.json",
    ]
    wrong = [{**shas["speech.voices"][0], "sha256": "2" * 64}]
    write_params_copy(tmp_path, **{"speech.source": str(folder), "speech.voices": wrong})
    proc = stage("speech_fetch", "data/speech/debs2", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "expected " + "2" * 64 in proc.stderr
    assert not (tmp_path / "data/speech/debs2").exists()

"""voices.py: each package's rule (reserved and bench voices never mapped), the decoders, the band
test, the split by voice; the corpus and mix stages on several voices (small fake packages); and,
marked slow, the real Debian packages fetched as speech_fetch does (VOICES_SOURCE: apt, the
default, or a folder or URL holding the .debs)."""

import io
import json
import os

import numpy as np
import pytest
import torch
import yaml
from debs import deb, utterance, voice_param, write_debs
from helpers import REPO, speech_stages, write_params_copy

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.config import choices
from cnn_denoise.speech import corpus, mixer, voices
from cnn_denoise.speech.deb import deb_files

KLETTRES = "usr/share/klettres/"
KTUBERLING = "usr/share/ktuberling/sounds/"


def ogg_bytes(audio: np.ndarray, rate: int) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="OGG", subtype="VORBIS")
    return buffer.getvalue()


def gsm_bytes(audio: np.ndarray) -> bytes:
    """8 kHz samples as raw GSM 6.10 frames (what the asterisk-prompt packages hold)."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, audio, 8000, format="RAW", subtype="GSM610")
    return buffer.getvalue()


def kde_deb(languages=("fr", "de", "en_GB", "lt", "uk", "nn"), words=4) -> bytes:
    """klettres-data's layout: <lang>/alpha/<x>.ogg, a few words per language, reserved ones too."""
    files = {}
    for i, lang in enumerate(languages):
        for w in range(words):
            files[f"{KLETTRES}{lang}/alpha/w{w}.ogg"] = ogg_bytes(utterance(10 * i + w, 0.8, 44100), 44100)
        files[f"{KLETTRES}{lang}/sounds.xml"] = b"<sounds/>"
    files["usr/share/doc/klettres-data/copyright"] = b"License: GPL-2+\n"
    return deb(files)


def prompt_deb(words=6) -> bytes:
    """asterisk-prompt-es-co's layout: raw GSM prompts in es/, a beep left out."""
    files = {f"usr/share/asterisk/sounds/es/p{w}.gsm": gsm_bytes(utterance(50 + w, 1.0, 8000)) for w in range(words)}
    files["usr/share/asterisk/sounds/es/beep.gsm"] = gsm_bytes(0.3 * np.sin(np.arange(4000) * 0.5))
    files["usr/share/doc/asterisk-prompt-es-co/copyright"] = b"License: GPL-2\nJuly E. Jimenez\n"
    return deb(files)


def test_reserved_and_bench_packages_are_refused():
    for package in ("asterisk-core-sounds-ru-g722", "asterisk-prompt-it-menardi", "asterisk-prompt-it-menardi-alaw"):
        with pytest.raises(PipelineError, match="reserved for independent checks"):
            voices.check_package(package)
    for package in ("asterisk-core-sounds-fr-g722", "asterisk-core-sounds-fr-wav"):
        with pytest.raises(PipelineError, match="bench voice"):
            voices.check_package(package)
    assert not [p for p in voices.PACKAGES if p.startswith(voices.RESERVED_PACKAGES + voices.BENCH_PACKAGES)]


def test_reserved_languages_are_never_mapped():
    k, t = voices.klettres_member, voices.ktuberling_member
    for lang in ("lt", "nn", "uk", "uk@latin", "nn_NO"):
        assert k(f"{KLETTRES}{lang}/alpha/a.ogg") is None
        assert t(f"{KTUBERLING}{lang}/ball.ogg") is None
    assert k(f"{KLETTRES}fr/alpha/a.ogg") == ("klettres/fr", "alpha/a")
    assert t(f"{KTUBERLING}fr/ball.wav") == ("ktuberling/fr", "ball")
    assert t(f"{KTUBERLING}sr@latin/oko.ogg") is None  # a copy of sr/


def test_a_kde_package_gives_a_voice_per_language_and_never_a_reserved_one(tmp_path):
    (tmp_path / "k.deb").write_bytes(kde_deb())
    got = voices.voices_from_deb(tmp_path / "k.deb", "klettres-data", 0.5)
    assert sorted(got) == ["klettres/de", "klettres/en_GB", "klettres/fr"]
    assert all(sorted(c) == [f"alpha/w{w}" for w in range(4)] for c in got.values())
    clip = got["klettres/fr"]["alpha/w0"]
    assert clip["rate"] == 44100 and clip["audio"].dtype == np.float32 and np.abs(clip["audio"]).max() <= 1
    asked = voices.voices_from_deb(tmp_path / "k.deb", "klettres-data", 0.5, voices={"klettres/lt", "klettres/uk"})
    assert asked == {}


def test_gsm_prompts_decode_as_pyav_does(tmp_path):
    import av

    (tmp_path / "p.deb").write_bytes(prompt_deb())
    got = voices.voices_from_deb(tmp_path / "p.deb", "asterisk-prompt-es-co", 0.5)
    assert list(got) == ["es-co/july-jimenez"] and sorted(got["es-co/july-jimenez"]) == [f"p{w}" for w in range(6)]
    blob = gsm_bytes(utterance(50, 1.0, 8000))
    audio, rate = voices.decode("p0.gsm", blob)
    with av.open(io.BytesIO(blob), format="gsm") as container:  # FFmpeg's decoder: the oracle
        ref = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert rate == 8000 and len(audio) == len(blob) // 33 * 160
    np.testing.assert_allclose(audio, ref.astype(np.float32) / 32768, atol=1e-6)
    with pytest.raises(PipelineError, match="not whole 33-byte GSM 6.10 frames"):
        voices.decode("x.gsm", blob[:-1])


def test_band_of_telephone_and_wide_speech():
    from scipy.signal import resample_poly

    narrow = utterance(3, 1.0, 8000)
    assert voices.band_of(narrow, 8000) == "narrow"
    assert voices.band_of(resample_poly(narrow, 2, 1), 16000) == "narrow"  # upsampled: still nothing above 4 kHz
    noise = np.random.default_rng(0).uniform(-0.1, 0.1, 16000)
    assert voices.band_of(noise, 16000) == "wide"


def test_split_is_by_speaker_group_and_deterministic():
    ids = ["asterisk/allison-smith", "es-co/july-jimenez", "klettres/en", "ktuberling/en", "klettres/en_GB"]
    ids += [f"klettres/{x}" for x in "ar cs da de es fr he hu it".split()]
    train, held = voices.split_voices(ids, 0.3, seed=1)
    assert sorted(train + held) == sorted(ids) and train and held
    assert voices.split_voices(list(reversed(ids)), 0.3, seed=1) == (train, held)
    assert any(voices.split_voices(ids, 0.3, seed=s)[1] != held for s in range(10))
    english = {"klettres/en", "ktuberling/en", "klettres/en_GB"}
    assert english <= set(train) or english <= set(held)  # one language's KDE folders on one side
    assert voices.split_voices(["a", "b", "c"], 0.0) == (["a", "b", "c"], [])
    assert voices.split_voices(["a"], 0.5) == (["a"], [])
    assert (
        len(voices.split_voices(["a", "b", "c"], 0.01)[1]) == 1
        and len(voices.split_voices(["a", "b", "c"], 0.99)[0]) == 1
    )


def test_babble_never_speaks_the_targets_voice():
    """Two voices, each a pure tone: babble for voice a holds only b's tone (an FFT as the oracle)."""
    rate = 16000
    t = np.arange(rate) / rate
    pool = [
        {"rate": rate, "audio": torch.from_numpy(np.sin(2 * np.pi * f * t).astype(np.float32)), "voice": v}
        for v, f in (("a", 500.0), ("b", 1500.0))
        for _ in range(3)
    ]
    mix = mixer.Mix(
        kinds=(choices.BABBLE,), snr_db=(0, 0), level_db=(-20, -20), babble_talkers=(2, 3), seconds=1.0, rate=rate
    )
    spectrum = np.abs(
        np.fft.rfft(mixer.noise(choices.BABBLE, np.random.default_rng(0), rate, mix, {choices.BABBLE: pool}, "a"))
    )
    assert spectrum[1500] > 100 * spectrum[500]
    both = np.abs(np.fft.rfft(mixer.noise(choices.BABBLE, np.random.default_rng(0), rate, mix, {choices.BABBLE: pool})))
    assert both[500] > 0.01 * both.max() and both[1500] > 0.01 * both.max()  # without a voice to avoid: both


@pytest.fixture
def many_voices(tmp_path):
    """A project folder whose speech.voices are the fake English, Colombian and KLettres packages."""
    shas = write_debs(tmp_path / "sources" / "speech")
    kde, prompts = kde_deb(), prompt_deb()
    (tmp_path / "sources/speech/klettres-data_4%3a22.12.3-1_all.deb").write_bytes(kde)
    (tmp_path / "sources/speech/asterisk-prompt-es-co_0.20070403-2.1_all.deb").write_bytes(prompts)
    shas["speech.voices"] += [
        voice_param("klettres-data", "4:22.12.3-1", kde),
        voice_param("asterisk-prompt-es-co", "0.20070403-2.1", prompts),
    ]
    small = {
        "speech.seconds": 0.25,
        "speech.train_segments": 12,
        "speech.test_segments": 6,
        "speech.matrix.segments": 2,
    }
    write_params_copy(tmp_path, **{"speech.source": "sources/speech", "speech.validation_voices": 0.4, **shas, **small})
    return tmp_path


@pytest.mark.slow
def test_the_stages_hold_out_whole_voices(many_voices, stage):
    folder = many_voices
    speech_stages(stage, folder)
    out = folder / "data/speech"
    summary = json.loads((out / "corpus/voices.json").read_text())
    assert sorted(summary) == [
        "asterisk/allison-smith",
        "es-co/july-jimenez",
        "klettres/de",
        "klettres/en_GB",
        "klettres/fr",
    ]
    assert summary["es-co/july-jimenez"]["rates"] == [8000] and summary["klettres/fr"]["utterances"] == 4
    credits = (out / "corpus/ATTRIBUTION.md").read_text()
    for package in ("asterisk-core-sounds-en-g722", "klettres-data", "asterisk-prompt-es-co"):
        assert package in credits and (out / f"corpus/copyright-{package}").is_file()
    assert "GPL-2+" in credits and "July E. Jiménez" in credits and "Allison Smith" in credits
    split = json.loads((out / "split.json").read_text())
    held, trained = set(split["prompts"]["voices"]["test"]), set(split["prompts"]["voices"]["train"])
    assert held and trained and not held & trained and split["about"]["voices"]["test"] == sorted(held)
    voice = lambda name: name.split(":", 1)[0]  # noqa: E731 - corpus names are voice:utterance
    assert {voice(s["prompt"]) for s in split["segments"]["test"]} <= held
    assert {voice(s["prompt"]) for s in split["segments"]["train"]} <= trained
    index = json.loads((out / "matrix/index.json").read_text())
    assert all(voice(s["prompt"]) in held for sets in index["sets"].values() for s in sets["segments"])


@pytest.mark.slow
def test_reserved_and_bench_voices_are_refused_by_the_fetch_stage(many_voices, stage):
    raw = yaml.safe_load((many_voices / "params.yaml").read_text())
    for package in ("asterisk-core-sounds-ru-g722", "asterisk-core-sounds-fr-g722"):
        raw["speech"]["voices"] = [{"package": package, "version": "1.6.1-1", "sha256": "0" * 64}]
        (many_voices / "params.yaml").write_text(yaml.safe_dump(raw))
        proc = stage("speech_fetch", "data/speech/debs", cwd=many_voices)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert package in proc.stderr and "remove it" in proc.stderr
        assert not (many_voices / "data/speech/debs").exists()


# --- the real packages (slow: ~170 MB fetched, ~2 minutes of decoding) -------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """{package: voices_from_deb of it} of params.yaml's speech.voices, fetched as speech_fetch does."""
    s = yaml.safe_load((REPO / "params.yaml").read_text())["speech"]
    folder, out = tmp_path_factory.mktemp("real-debs"), {}
    for v in s["voices"]:
        path = corpus.fetch_deb(v["package"], v["version"], v["sha256"], os.environ.get("VOICES_SOURCE", "apt"), folder)
        out[v["package"]] = (path, voices.voices_from_deb(path, v["package"], 0.5, trim_db=s["trim_db"]))
    return out


EXPECTED = {
    "asterisk-core-sounds-en-g722": {"asterisk/allison-smith"},
    "asterisk-core-sounds-es-wav": {"asterisk/allison-smith"},
    "asterisk-core-sounds-it-wav": {"asterisk/carlo-flora"},
    "asterisk-prompt-es-co": {"es-co/july-jimenez"},
    "asterisk-prompt-fr-armelle": {"fr-armelle/armelle-desjardins"},
    "klettres-data": {f"klettres/{x}" for x in "ar cs da de en en_GB es fr he hu it ml nb nds nl pt_BR ru tn".split()},
    "ktuberling-data": {
        f"ktuberling/{x}" for x in "ca da de el en es fi fr ga gl it nds nl pt ro ru sl sr sv wa".split()
    },
}


def reserved_folder(name: str) -> bool:
    """A file in a reserved language folder of klettres-data or ktuberling-data."""
    for root in (KLETTRES, KTUBERLING):
        if name.startswith(root) and name.endswith((".ogg", ".wav", ".opus")):
            return voices.base_language(name[len(root) :].split("/")[0]) in voices.RESERVED_KDE_LANGUAGES
    return False


@pytest.mark.slow
def test_the_real_packages(real):
    assert set(real) == set(EXPECTED)
    for package, (path, got) in real.items():
        assert set(got) == EXPECTED[package], package
        for voice, clips in got.items():
            for name, clip in clips.items():
                audio = clip["audio"]
                assert audio.dtype == np.float32 and np.all(np.isfinite(audio)) and np.abs(audio).max() <= 1.0
                assert len(audio) >= 0.5 * clip["rate"], (voice, name)
        reserved = list(deb_files(path, reserved_folder))
        assert all(voices.PACKAGES[package]["member"](n) is None for n in reserved)
        assert len(reserved) > 50 or not package.startswith(("klettres", "ktuberling"))  # they are there
    allison = real["asterisk-core-sounds-en-g722"][1]["asterisk/allison-smith"]
    assert "en_US/tt-monkeysintro" in allison and "en_US/tt-monkeys" not in allison
    assert not any(n.startswith("en_US/silence/") for n in allison)
    assert all(n.startswith("es_MX/") for n in real["asterisk-core-sounds-es-wav"][1]["asterisk/allison-smith"])
    fr = real["ktuberling-data"][1]["ktuberling/fr"]
    assert ("cravate" in fr) != ("patate_cravate" in fr)  # byte-identical copies: one utterance


@pytest.mark.slow
def test_the_quick_recipe_runs_on_many_voices(tmp_path):
    """`python -m cnn_denoise.recipes run speech-quick` (what `make recipe NAME=speech-quick` runs)
    end to end on small fake packages of three voices: DVC runs the speech stages with the
    recipe's values (but fewer, shorter segments and one epoch, so a busy machine runs it in
    minutes), trains, scores the matrix, and the model's record names the held-out voices, which
    no training segment speaks."""
    from helpers import make_project, sh

    debs = tmp_path / "project" / "sources" / "speech"
    debs.mkdir(parents=True)
    kde, prompts = kde_deb(), prompt_deb()
    (debs / "klettres-data_4%3a22.12.3-1_all.deb").write_bytes(kde)
    (debs / "asterisk-prompt-es-co_0.20070403-2.1_all.deb").write_bytes(prompts)
    english = write_debs(tmp_path / "english")["speech.voices"]
    extra = [
        voice_param("klettres-data", "4:22.12.3-1", kde),
        voice_param("asterisk-prompt-es-co", "0.20070403-2.1", prompts),
    ]
    repo, env = make_project(
        tmp_path / "project", **{"speech.voices": english + extra, "speech.validation_voices": 0.4}
    )
    small = ["speech.seconds=0.25", "speech.train_segments=32", "speech.test_segments=8", "train.epochs=1"]
    ran = sh(
        ["python", "-m", "cnn_denoise.recipes", "run", "speech-quick", *[a for x in small for a in ("-S", x)]],
        repo,
        env,
    )
    assert "+ dvc exp run" in ran.stderr and "-n speech-quick" in ran.stderr
    split = json.loads((repo / "data/speech/split.json").read_text())
    held = set(split["about"]["voices"]["test"])
    assert held and len(split["segments"]["train"]) == 32
    assert all(s["prompt"].split(":", 1)[0] not in held for s in split["segments"]["train"])
    metrics = json.loads((repo / "metrics/eval.json").read_text())
    bands = yaml.safe_load((repo / "params.yaml").read_text())["speech"]["matrix"]["bands"]
    assert len(metrics["sets"]) == 6 * len(bands)  # six kinds x the SNR bands, each scored on held-out voices
    info = sh(["cnn-denoise", "info", "models/model.pt"], repo, env)
    assert all(v in info.stdout + info.stderr for v in held)

"""mixer.py: seeded, utterance-disjoint mixes at the drawn SNR and level, each noise kind what
it says (checked against its spectrum), and the speech_train / speech_matrix stages."""

import json
import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import torch
from debs import utterance, write_debs
from helpers import set_params, si_sdr_numpy, speech_stages, write_params_copy

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.config import choices
from cnn_denoise.lab.dataset import load_split
from cnn_denoise.speech import mixer

RATE = 32000


def clip(seed, seconds, rate=16000):
    return {"rate": rate, "audio": torch.from_numpy(np.round(utterance(seed, seconds, rate) * 32767).astype(np.int16))}


@pytest.fixture(scope="module")
def corpus():
    speech = {f"p{i:02d}": clip(i, 0.6 + 0.2 * (i % 5)) for i in range(20)}
    t = np.arange(8000 * 4) / 8000
    music = {"m": {"rate": 8000, "audio": torch.from_numpy((0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32))}}
    return {"speech": speech, "music": music, "recorded": {}}


def mix(**kw):
    base = dict(
        kinds=tuple(choices.NOISE_KINDS[:-1]),
        snr_db=(-5.0, 20.0),
        level_db=(-35.0, -15.0),
        babble_talkers=(2, 3),
        seconds=0.5,
        rate=RATE,
    )
    return mixer.Mix(**{**base, **kw})


def test_the_split_is_by_utterance_disjoint_and_seeded():
    names = [f"u{i}" for i in range(50)]
    split = mixer.split_prompts(names, 0.2, 0.2, 0)
    assert {k: len(v) for k, v in split.items()} == {"test": 10, "babble_test": 5, "babble_train": 5, "train": 30}
    together = [n for part in split.values() for n in part]
    assert sorted(together) == sorted(names)  # each prompt in exactly one part
    assert split == mixer.split_prompts(reversed(names), 0.2, 0.2, 0) != mixer.split_prompts(names, 0.2, 0.2, 1)
    with pytest.raises(PipelineError, match=r"the corpus has 3 utterances: too few .*; give more utterances"):
        mixer.split_prompts(["a", "b", "c"], 0.2, 0.2, 0)


def test_segments_hold_the_drawn_snr_and_level_and_the_same_bytes_twice(corpus):
    split = mixer.split_prompts(corpus["speech"], 0.2, 0.2, 0)
    pools = mixer.pools_for(corpus, split, "train", 0.2)
    targets = {k: corpus["speech"][k] for k in split["train"]}
    pairs, meta = mixer.mix_set("train", targets, pools, mix(), 40, 3)
    again, _ = mixer.mix_set("train", targets, pools, mix(), 40, 3)
    assert all(torch.equal(pairs[k], again[k]) for k in "xy")
    x, y = pairs["x"].double(), pairs["y"].double()
    assert pairs["x"].shape == (40, 1, RATE // 2) and pairs["x"].dtype == torch.float32
    assert load_split.__name__ and x.abs().max() <= 0.99 + 1e-6
    snr = 10 * torch.log10(y.square().sum(-1) / (x - y).square().sum(-1)).flatten()
    drawn = torch.tensor([m["snr_db"] for m in meta], dtype=torch.float64)
    assert torch.allclose(snr, drawn, atol=0.01)  # the SNR is the one drawn, to the grid's rounding
    level = 10 * torch.log10(y.square().mean(-1)).flatten()
    unscaled = x.abs().flatten(1).max(1).values < 0.989
    want = torch.tensor([m["level_db"] for m in meta], dtype=torch.float64)
    assert torch.allclose(level[unscaled], want[unscaled], atol=0.01)
    assert {m["prompt"] for m in meta} <= set(split["train"])
    assert {m["kind"] for m in meta} == set(choices.NOISE_KINDS[:-1])


def _slope_db_per_decade(v, rate):
    f = np.fft.rfftfreq(len(v), 1 / rate)
    power = np.abs(np.fft.rfft(v)) ** 2
    lo, hi = (f > 100) & (f < 200), (f > 1000) & (f < 2000)
    return 10 * np.log10(power[hi].mean() / power[lo].mean())


def test_each_noise_kind_has_its_spectrum(corpus):
    rng = np.random.default_rng(0)
    m, n = mix(), RATE
    split = mixer.split_prompts(corpus["speech"], 0.2, 0.2, 0)
    pools = mixer.pools_for(corpus, split, "test", 0.2)
    white = mixer.noise(choices.WHITE, rng, n, m, pools)
    pink, brown = mixer.noise(choices.PINK, rng, n, m, pools), mixer.noise(choices.BROWN, rng, n, m, pools)
    assert abs(_slope_db_per_decade(white, RATE)) < 1
    assert _slope_db_per_decade(pink, RATE) == pytest.approx(-10, abs=1.5)
    assert _slope_db_per_decade(brown, RATE) == pytest.approx(-20, abs=1.5)
    f = np.fft.rfftfreq(n, 1 / RATE)
    band = np.abs(np.fft.rfft(mixer.noise(choices.BAND, rng, n, m, pools))) ** 2
    assert band[(f > 14000) & (f < 15500)].sum() > 0.9 * band.sum()
    hum = np.abs(np.fft.rfft(mixer.noise(choices.HUM, rng, n, m, pools))) ** 2
    peak = f[np.argmax(hum)]
    assert min(abs(peak / 50 - round(peak / 50)), abs(peak / 60 - round(peak / 60))) < 0.05 and peak < 1000
    assert hum[f > 1000].sum() < 1e-3 * hum.sum()  # leakage only: the window holds no whole number of periods
    music = np.abs(np.fft.rfft(mixer.noise(choices.MUSIC, rng, n, m, pools))) ** 2
    assert abs(f[np.argmax(music)] - 330) < 2  # the test part of the track, resampled to 32 kHz
    babble = mixer.noise(choices.BABBLE, rng, n, m, pools)
    assert np.abs(np.fft.rfft(babble))[f > 2000].sum() < 0.05 * np.abs(np.fft.rfft(babble)).sum()  # speech band


def _peak_hz(v: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(v * np.hanning(len(v))))
    return float(np.fft.rfftfreq(len(v), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("speed, heard", [((1.0, 1.0), 200.0), ((1.25, 1.25), 250.0), ((0.8, 0.8), 160.0)])
def test_a_sped_up_utterance_is_higher_and_shorter(speed, heard):
    """A 200 Hz tone of 0.3 s at 16 kHz, mixed (noise 80 dB down) with speech.speed: the clean
    segment's spectral peak (NumPy's FFT) moves to 200 x speed, and its length to 0.3 s / speed."""
    t = np.arange(4800) / 16000
    tone = {"rate": 16000, "audio": torch.from_numpy((0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32))}
    pairs, _ = mixer.mix_set("t", {"a": tone}, {}, mix(kinds=("white",), snr_db=(80.0, 80.0), speed=speed), 1, 0)
    y = pairs["y"][0, 0].double().numpy()
    assert abs(_peak_hz(y, RATE) - heard) < RATE / len(y) * 1.5
    assert abs(np.count_nonzero(np.abs(y) > 1e-4) / RATE - 0.3 / speed[0]) < 0.005


def test_speed_one_draws_nothing():
    """speech.speed [1, 1] (the default) leaves the clip and the generator as they were: the mixes
    of params without it are the same bytes."""
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    one = clip(1, 0.5)
    assert mixer._sped(rng, one, (1.0, 1.0)) is one and rng.bit_generator.state == state
    assert mixer._sped(rng, one, (0.9, 1.1))["rate"] % mixer.SPEED_STEP == 0 and rng.bit_generator.state != state


def _vowel(f0: float, formants, seconds: float, rate: int = 16000) -> np.ndarray:
    """A steady synthetic vowel: a pulse train at f0 through one two-pole resonator per formant."""
    v = np.zeros(int(seconds * rate))
    v[np.arange(0, len(v), rate / f0).astype(int)] = 1.0
    for f, bandwidth in formants:
        r = np.exp(-np.pi * bandwidth / rate)
        v = scipy.signal.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / rate), r * r], v)
    return 0.3 * v / np.abs(v).max()


def _formants(v: np.ndarray, rate: int = 16000, order: int = 8) -> list[float]:
    """Formant frequencies by linear prediction (autocorrelation method, SciPy's Toeplitz solver):
    the angles of the predictor's sharp poles."""
    v = scipy.signal.lfilter([1, -0.9], [1], v) * np.hamming(len(v))
    r = np.correlate(v, v, "full")[len(v) - 1 : len(v) + order]
    poles = np.roots(np.r_[1, -scipy.linalg.solve_toeplitz(r[:order], r[1 : order + 1])])
    poles = poles[np.imag(poles) > 0]
    f, bandwidth = np.angle(poles) * rate / (2 * np.pi), -np.log(np.abs(poles)) * rate / np.pi
    return sorted(f[(bandwidth < 400) & (f > 200)])


def _pitch(v: np.ndarray, rate: int = 16000) -> float:
    """The autocorrelation's strongest period between 60 and 400 Hz."""
    c = np.correlate(v, v, "full")[len(v) - 1 :]
    lo, hi = rate // 400, rate // 60
    return rate / (lo + np.argmax(c[lo:hi]))


@pytest.mark.parametrize("shift", [0.85, 1.0, 1.2])
def test_a_formant_shift_moves_the_vocal_tract_and_keeps_the_pitch(shift):
    """A vowel (140 Hz, formants at 700 and 1800 Hz), mixed (noise 80 dB down) with speech.formant:
    the clean segment's formants (linear prediction) move by the shift, its pitch (autocorrelation)
    and length stay."""
    vowel = _vowel(140.0, [(700.0, 90.0), (1800.0, 120.0)], 0.6)
    talker = {"rate": 16000, "audio": torch.from_numpy(vowel.astype(np.float32))}
    m = mix(kinds=("white",), snr_db=(80.0, 80.0), rate=16000, seconds=1.0, formant=(shift, shift))
    pairs, _ = mixer.mix_set("t", {"a": talker}, {}, m, 1, 0)
    y = pairs["y"][0, 0].double().numpy()
    start = int(np.argmax(np.abs(y) > 1e-4))  # the vowel's start in the segment
    steady = y[start + 2400 : start + 7200]
    before = _formants(vowel[2400:7200])
    after = _formants(steady)
    assert len(before) == len(after) == 2
    assert np.allclose(np.array(after) / np.array(before), shift, rtol=0.02)
    assert abs(_pitch(steady) / _pitch(vowel[2400:7200]) - 1) < 0.02
    assert abs(np.count_nonzero(np.abs(y) > 1e-4) - len(vowel)) < 160  # 10 ms, the whole vowel between zeros
    assert len(mixer._voiced(np.random.default_rng(0), talker, (shift, shift))["audio"]) == len(vowel)


def test_the_clean_speech_loses_the_recordings_rumble_and_keeps_the_voice():
    """A vowel (140 Hz) recorded over 25 Hz rumble that holds a third of the recording's power: in
    the mix's clean speech the rumble (its 25 Hz sine and cosine, by least squares) is at least
    35 dB down, and the vowel is as it was, phase too (SI-SDR against the vowel alone over 30 dB)."""
    rate = 16000
    vowel = _vowel(140.0, [(700.0, 90.0), (1800.0, 120.0)], 1.0)
    ramp = np.sin(np.linspace(0, np.pi / 2, rate // 20)) ** 2  # 50 ms in and out, as a voice starts from silence
    vowel[: len(ramp)] *= ramp
    vowel[-len(ramp) :] *= ramp[::-1]
    vowel -= vowel.mean()
    t = np.arange(len(vowel)) / rate
    basis = np.stack([np.sin(2 * np.pi * 25 * t), np.cos(2 * np.pi * 25 * t)], 1)
    rumble = np.sqrt(np.mean(vowel**2)) * 0.7 * np.sqrt(2) * basis[:, 0]  # 0.49 of the vowel's power
    talker = {"rate": rate, "audio": torch.from_numpy(vowel + rumble)}
    m = mix(kinds=("white",), snr_db=(80.0, 80.0), rate=rate, seconds=1.0)
    pairs, _ = mixer.mix_set("t", {"a": talker}, {}, m, 1, 0)
    y = pairs["y"][0, 0].double().numpy()
    assert si_sdr_numpy(y[None], vowel[None]) > 30
    gain = y @ vowel / (vowel @ vowel)
    left = basis @ np.linalg.lstsq(basis, y, rcond=None)[0]
    assert 10 * np.log10(np.sum((gain * rumble) ** 2) / np.sum(left**2)) > 35


def test_formant_one_draws_nothing():
    """speech.formant [1, 1] (the default) leaves the clip and the generator as they were: the
    mixes of params without it are the same bytes; another range draws, and keeps the length."""
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    one = clip(1, 0.5)
    assert mixer._voiced(rng, one, (1.0, 1.0)) is one and rng.bit_generator.state == state
    moved = mixer._voiced(rng, one, (0.9, 1.1))
    assert rng.bit_generator.state != state and len(moved["audio"]) == len(one["audio"])
    assert not np.allclose(moved["audio"].numpy(), one["audio"].numpy() / 32768, atol=1e-3)


def test_a_formant_shift_of_an_unvoiced_clip_is_quiet():
    """A clip with no voiced frames (silence, a whisper) is only resampled: Praat's warning about
    it does not reach the stage's output."""
    hush = {"rate": 16000, "audio": torch.zeros(8000)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        moved = mixer._voiced(np.random.default_rng(0), hush, (0.9, 1.1))
    assert len(moved["audio"]) == 8000 and not moved["audio"].any()


def test_eq_filters_are_stable_minimum_phase_and_bounded():
    """speech.eq's random filters at the bound: each impulse response dies out (stable), its
    magnitude (NumPy's FFT) stays within (1 - 2 eq) / (1 + 2 eq) .. (1 + 2 eq) / (1 - 2 eq), and
    its minimum-phase part (the real cepstrum folded, Oppenheim and Schafer) is the response itself."""
    rng = np.random.default_rng(1)
    impulse = np.zeros(4096)
    impulse[0] = 1.0
    eq = choices.EQ_MAX
    bound = (1 + 2 * eq) / (1 - 2 * eq)
    tilts = []
    for _ in range(300):
        h = mixer.shaped(rng, impulse, eq)
        assert np.sum(h[2048:] ** 2) < 1e-20 * np.sum(h**2)
        H = np.abs(np.fft.rfft(h))
        assert 1 / bound < H.min() and H.max() < bound
        cepstrum = np.fft.ifft(np.log(np.abs(np.fft.fft(h)))).real
        fold = np.concatenate([[cepstrum[0]], 2 * cepstrum[1:2048], [cepstrum[2048]], np.zeros(2047)])
        minimum = np.fft.ifft(np.exp(np.fft.fft(fold))).real
        assert np.max(np.abs(minimum - h)) < 1e-6
        tilts.append(20 * np.log10(H[:1024].mean() / H[1024:].mean()))
    assert np.std(tilts) > 3  # dB: a colour that differs from draw to draw


def _tilts(pairs, which) -> np.ndarray:
    """Each segment's power below a quarter of the rate over the power above it, dB."""
    v = pairs["y"] if which == "y" else pairs["x"] - pairs["y"]
    power = np.abs(np.fft.rfft(v[:, 0].double().numpy(), axis=-1)) ** 2
    half = power.shape[-1] // 2
    return 10 * np.log10(power[:, :half].sum(-1) / power[:, half:].sum(-1))


def test_eq_colours_each_target_and_noise_on_its_own_and_keeps_the_snr():
    """A white-noise 'utterance' in white noise: with speech.eq the clean target's and the noise's
    spectral tilts spread from segment to segment, each drawn apart from the other, and the SNR
    between them is still the drawn one; with eq 0 both stay flat and the bytes are those of a Mix
    without eq."""
    rng = np.random.default_rng(0)
    hiss = {"rate": RATE, "audio": torch.from_numpy((0.1 * rng.standard_normal(RATE)).astype(np.float32))}
    plain, _ = mixer.mix_set("t", {"a": hiss}, {}, mix(kinds=("white",)), 40, 0)
    zero, _ = mixer.mix_set("t", {"a": hiss}, {}, mix(kinds=("white",), eq=0.0), 40, 0)
    assert all(torch.equal(plain[k], zero[k]) for k in "xy")
    coloured, meta = mixer.mix_set("t", {"a": hiss}, {}, mix(kinds=("white",), eq=0.375), 40, 0)
    assert np.std(_tilts(plain, "y")) < 0.5 and np.std(_tilts(plain, "noise")) < 0.5
    assert np.std(_tilts(coloured, "y")) > 2 and np.std(_tilts(coloured, "noise")) > 2
    assert abs(np.corrcoef(_tilts(coloured, "y"), _tilts(coloured, "noise"))[0, 1]) < 0.5
    y, n = coloured["y"][:, 0].double(), (coloured["x"] - coloured["y"])[:, 0].double()
    snr = 10 * torch.log10((y**2).sum(-1) / (n**2).sum(-1)).numpy()
    assert np.allclose(snr, [m["snr_db"] for m in meta], atol=0.01)


@pytest.mark.slow
def test_kind_weights_draw_kinds_as_often_as_they_say():
    """speech.kind_weights: pink at 3 to white's 1 is drawn in about 3 segments of 4 (a binomial
    count within 4 standard deviations); weights all alike draw as no weights do, the same bytes."""
    targets = {"a": clip(1, 0.6)}
    _, meta = mixer.mix_set("t", targets, {}, mix(kinds=("white", "pink"), weights=(1.0, 3.0), seconds=0.05), 400, 0)
    pinks = sum(m["kind"] == "pink" for m in meta)
    assert abs(pinks - 300) < 4 * (400 * 0.75 * 0.25) ** 0.5
    alike, meta_alike = mixer.mix_set("t", targets, {}, mix(kinds=("white", "pink"), weights=(2.0, 2.0)), 30, 0)
    plain, meta_plain = mixer.mix_set("t", targets, {}, mix(kinds=("white", "pink")), 30, 0)
    assert meta_alike == meta_plain and all(torch.equal(alike[k], plain[k]) for k in "xy")


def test_music_is_split_in_time(corpus):
    train, test = mixer.regions(corpus["music"], "train", 0.25), mixer.regions(corpus["music"], "test", 0.25)
    assert [(a, b) for _, a, b in train] == [(0, 24000)] and [(a, b) for _, a, b in test] == [(24000, 32000)]


@pytest.mark.slow
def test_the_speech_mix_stages(tmp_path, stage):
    shas = write_debs(tmp_path / "sources" / "speech")
    write_params_copy(
        tmp_path,
        **{
            "speech.source": "sources/speech",
            **shas,
            "speech.seconds": 0.25,
            "speech.train_segments": 6,
            "speech.test_segments": 3,
            "speech.matrix.segments": 2,
        },
    )
    speech_stages(stage, tmp_path)
    speech = tmp_path / "data/speech"
    train, test = load_split(speech / "train.pt"), load_split(speech / "test.pt")
    assert train["x"].shape == (6, 1, 8000) and test["x"].shape == (3, 1, 8000)
    split = json.loads((speech / "split.json").read_text())
    assert not set(split["prompts"]["train"]) & set(split["prompts"]["test"])
    assert {s["prompt"] for s in split["segments"]["test"]} <= set(split["prompts"]["test"])
    index = json.loads((speech / "matrix/index.json").read_text())
    kinds = ["band", "white", "pink", "brown", "hum", "babble", "music"]
    assert sorted(index["sets"]) == sorted(f"{k}_{lo}to{hi}dB" for k in kinds for lo, hi in ((-5, 5), (5, 20)))
    assert index["rate"] == 32000 and index["sets"]["hum_-5to5dB"]["snr_db"] == [-5.0, 5.0]
    one = load_split(speech / "matrix" / index["sets"]["hum_-5to5dB"]["file"])
    assert one["x"].shape == (2, 1, 8000)
    before = (speech / "train.pt").read_bytes()
    assert (
        stage(
            "speech_mix",
            "train",
            "data/speech/corpus",
            *(f"data/speech/{n}" for n in ("train.pt", "test.pt", "split.json")),
            cwd=tmp_path,
        ).returncode
        == 0
    )
    assert (speech / "train.pt").read_bytes() == before  # seeded: the same bytes
    # speech.speed, .formant, .kind_weights and .eq change the training mix only: the test set and the matrix stay
    sets = {p.name: p.read_bytes() for p in (speech / "matrix").iterdir()}
    test_before = (speech / "test.pt").read_bytes()
    set_params(tmp_path, **{"speech.speed": [0.8, 1.2], "speech.formant": [0.9, 1.1], "speech.eq": 0.3})
    set_params(tmp_path, **{"speech.kind_weights.hum": 50.0})
    for args in (
        ("train", *(f"data/speech/{n}" for n in ("train.pt", "test.pt", "split.json"))),
        ("matrix", "data/speech/matrix"),
    ):
        assert stage("speech_mix", args[0], "data/speech/corpus", *args[1:], cwd=tmp_path).returncode == 0
    assert (speech / "train.pt").read_bytes() != before and (speech / "test.pt").read_bytes() == test_before
    assert {p.name: p.read_bytes() for p in (speech / "matrix").iterdir()} == sets
    split = json.loads((speech / "split.json").read_text())
    assert split["about"]["speed"] == [0.8, 1.2] and split["about"]["eq"] == 0.3
    assert split["about"]["formant"] == [0.9, 1.1]
    assert split["about"]["kind_weights"] == {k: 50.0 if k == "hum" else 1.0 for k in kinds}
    hums = [s["kind"] for s in split["segments"]["train"]].count("hum")
    assert hums >= 5  # of 6, at 50 to 1 (all alike: one in seven)

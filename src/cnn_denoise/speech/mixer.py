"""Noisy speech from a corpus (corpus.py, voices.py): fixed-length segments of clean utterances
at a drawn level, plus noise of a kind at a drawn SNR, in the layout the lab's stages take
({"x", "y"} float32 [Q, 1, N]).

Splits are by voice where the corpus has several (split_corpus): whole speaker groups are held out
(speech.validation_voices, speech.split_seed), test sets speak only those, and babble draws from
the other voices of the same side, never the utterance's own. A corpus of one voice (a folder of
the user's) is split by utterance: the prompts are dealt once into training targets, test targets
and two babble pools, so no prompt is both heard clean in training and scored in testing, and
babble never speaks a target.

Bands: every segment is made at data.sample_rate (16 kHz for the speech recipes). A voice recorded
at 8 kHz is upsampled and so holds nothing above 4 kHz, and its clean target holds nothing there
either; the noise is full band whatever the voice. So the model learns to remove everything above
4 kHz under a narrow-band voice, and to keep a wide-band voice's highs: it tells them apart by
what it hears, as it must for a user's telephone recording.

Music and the user's noise recordings are split in time: the first part of each recording
feeds training, the last part testing.

Every random choice comes from one NumPy generator per set, seeded by the set's seed and name,
in a fixed order, so the same params give the same bytes; values are rounded to a 2^-32 grid
(as synth.py does) so the last bit of the machine's arithmetic does not reach them.
"""

import math
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
import scipy.signal
import torch

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.config import choices
from cnn_denoise.lab import synth
from cnn_denoise.speech.corpus import as_float

PAD = 64  # samples of context either side of a crop, so resampling's filter has what it needs
PEAK = 0.99  # mixtures louder than this (full scale 1) are scaled down, x and y alike
TRIES = 16  # crops drawn before giving up on finding speech (or noise) in one
ACTIVE = 0.25  # a crop of an utterance must hold this share of the utterance's mean power
HUM_TOP = 1000.0  # Hz: hum's harmonics stop below this (a mains buzz, not a tone)
COLOUR_FLOOR = 20.0  # Hz: pink and brown noise are flat below this (no infinite power at DC)
SPEED_STEP = 50  # Hz: a sped-up clip's rate is a multiple of this, so resampling's up/down stay small
RUMBLE_HZ = 50.0  # Hz: below the lowest voice's fundamental (~70 Hz); a recording's content there is rumble
PITCH_RANGE = (75.0, 600.0)  # Hz: where Praat looks for the voice's pitch periods (its defaults for any voice)


@dataclass(frozen=True)
class Mix:
    """What one set's mixing draws from (the speech section of params.yaml)."""

    kinds: tuple
    snr_db: tuple
    level_db: tuple
    babble_talkers: tuple
    seconds: float
    rate: int
    speed: tuple = (1.0, 1.0)  # [low, high] of each utterance's speed (pitch and tempo); 1: as recorded
    weights: tuple = ()  # how often each of kinds is drawn, relative; (): all alike
    eq: float = 0.0  # largest |coefficient| of the random filter on each target and noise (`shaped`); 0: none
    formant: tuple = (1.0, 1.0)  # [low, high] of each utterance's formant shift (pitch and tempo kept); 1: as recorded


def uneven(weights) -> tuple:
    """The kind weights as a tuple, or () when they are all alike: then kinds draw as before
    weights existed, and those mixes keep their bytes."""
    weights = tuple(float(w) for w in weights)
    return weights if len(set(weights)) > 1 else ()


def _kind(rng, mix: Mix) -> str:
    """A noise kind drawn from mix.kinds, as often as mix.weights say (`uneven`)."""
    weights = uneven(mix.weights)
    if not weights:
        return mix.kinds[int(rng.integers(len(mix.kinds)))]
    p = np.asarray(weights)
    return mix.kinds[int(rng.choice(len(mix.kinds), p=p / p.sum()))]


def _sped(rng, clip: dict, speed: tuple) -> dict:
    """The clip played `s` times as fast (s drawn from speed): its pitch and formants move by s, as
    another voice's would, and its length by 1/s (Ko et al., 2015, "Audio augmentation for speech
    recognition"); read at a rate of s x its own. With speed (1, 1) nothing is drawn: the mix is
    the same bytes as without it."""
    if speed[0] == speed[1] == 1.0:
        return clip
    s = rng.uniform(*speed)
    return {**clip, "rate": max(SPEED_STEP, round(clip["rate"] * s / SPEED_STEP) * SPEED_STEP)}


def _voiced(rng, clip: dict, formant: tuple) -> dict:
    """The clip with its formants moved by f (drawn from formant) and its pitch and length kept:
    the vocal tract of a shorter (f > 1) or longer (f < 1) talker, which speed alone moves only
    together with the pitch. Praat's "Change gender" (through parselmouth) resamples the clip by f,
    which moves every frequency, then puts the pitch and duration back by PSOLA. With formant
    (1, 1) nothing is drawn: the mix is the same bytes as without it."""
    if formant[0] == formant[1] == 1.0:
        return clip
    import parselmouth  # only where formants move: its import is not every stage's cost

    f = rng.uniform(*formant)
    sound = parselmouth.Sound(as_float(clip["audio"].numpy()), clip["rate"])
    with warnings.catch_warnings():  # a clip without voiced frames (a whisper) is only resampled: as it should be
        warnings.simplefilter("ignore", parselmouth.PraatWarning)
        moved = parselmouth.praat.call(sound, "Change gender", *PITCH_RANGE, f, 0.0, 1.0, 1.0)
    return {**clip, "audio": torch.from_numpy(moved.values[0].astype(np.float32))}


def voice(rng, clip: dict, mix: Mix) -> dict:
    """An utterance as one training talker says it: its formants moved, then its speed."""
    return _sped(rng, _voiced(rng, clip, mix.formant), mix.speed)


def shaped(rng, v: np.ndarray, eq: float) -> np.ndarray:
    """v through a random second-order filter (1 + r1 z^-1 + r2 z^-2) / (1 + r3 z^-1 + r4 z^-2),
    each r uniform in [-eq, eq]: a tilt, a bump or a dip (at most (1 + 2 eq) / (1 - 2 eq) up or
    down), as another voice, room or microphone would colour it. RNNoise draws its targets and
    noises so (Valin, 2018, "A hybrid DSP/deep learning approach to real-time full-band speech
    enhancement") to hear more than its corpus holds. Below choices.EQ_MAX both quadratics keep
    their roots inside the unit circle (|c2| < 1 and |c1| < 1 + c2), so the filter is stable and
    minimum-phase: nothing blows up and no frequency is lost. With eq 0 nothing is drawn: the mix
    is the same bytes as without it."""
    if eq == 0:
        return v
    r = rng.uniform(-eq, eq, 4)
    return scipy.signal.lfilter([1.0, r[0], r[1]], [1.0, r[2], r[3]], v)


def split_prompts(names, test_fraction: float, babble_fraction: float, seed: int) -> dict[str, list[str]]:
    """Deal the prompts into train, test, babble_train and babble_test (disjoint, seeded)."""
    names = sorted(names)
    q = len(names)
    n_test, n_babble = max(1, round(test_fraction * q)), max(2, round(babble_fraction * q))
    if q - n_test - n_babble < 1:
        raise PipelineError(
            f"the corpus has {q} utterances: too few for {n_test} test, {n_babble} babble and any training ones; "
            "give more utterances or lower speech.test_fraction and speech.babble_fraction"
        )
    order = np.random.default_rng(seed).permutation(q)
    picked = [names[i] for i in order]
    half = n_babble // 2
    return {
        "test": sorted(picked[:n_test]),
        "babble_test": sorted(picked[n_test : n_test + half]),
        "babble_train": sorted(picked[n_test + half : n_test + n_babble]),
        "train": sorted(picked[n_test + n_babble :]),
    }


def split_corpus(clips: dict, held_out: float, test_fraction: float, babble_fraction: float, seed: int) -> dict:
    """The split of a corpus {name: clip}: by voice (voices.split_voices on the clips' "voice") when
    they come from two or more speaker groups and held_out > 0, then both sides babble in their own
    voices ("voices" lists each side's); else by utterance (split_prompts)."""
    from cnn_denoise.speech import voices

    voice_of = {name: clip.get("voice") for name, clip in clips.items()}
    ids = set(voice_of.values())
    if held_out == 0 or None in ids or len({voices.speaker_group(v) for v in ids}) < 2:
        return split_prompts(clips, test_fraction, babble_fraction, seed)
    train_voices, test_voices = voices.split_voices(ids, held_out, seed)
    train = sorted(n for n, v in voice_of.items() if v in train_voices)
    test = sorted(n for n, v in voice_of.items() if v in test_voices)
    return {
        "train": train,
        "test": test,
        "babble_train": train,
        "babble_test": test,
        "voices": {"train": train_voices, "test": test_voices},
    }


def _resampled(clip: dict, start: int, n_out: int, rate: int) -> np.ndarray:
    """n_out samples at `rate` of the clip from its native sample `start` (zeros past its ends)."""
    audio, native = clip["audio"].numpy(), clip["rate"]
    if native == rate:
        piece = as_float(audio[max(start, 0) : max(start + n_out, 0)])
        return np.pad(piece, (max(-start, 0), n_out - len(piece) - max(-start, 0)))
    g = math.gcd(rate, native)
    up, down = rate // g, native // g
    need = math.ceil(n_out * native / rate) + 2 * PAD
    lo = start - PAD
    piece = as_float(audio[max(lo, 0) : max(lo + need, 0)])
    piece = np.pad(piece, (max(-lo, 0), need - len(piece) - max(-lo, 0)))
    out = scipy.signal.resample_poly(piece, up, down)
    skip = PAD * up // down
    return out[skip : skip + n_out]


def _rms(v: np.ndarray) -> float:
    return float(np.sqrt(np.mean(v**2)))


def without_rumble(clip: dict) -> dict:
    """The clip high-passed at RUMBLE_HZ (Butterworth, 4th order, forward and back: no phase
    shift, 0.1 dB down at 85 Hz, 36 dB at 30 Hz). What a recording holds below any voice is the
    room's or the microphone's rumble, a noise the models learn to remove; left in the clean
    speech it would be scored as voice the model damaged (bench/README.md has how much of it the
    French-Canadian prompts of bench/unseen.py hold)."""
    sos = scipy.signal.butter(4, RUMBLE_HZ, "highpass", fs=clip["rate"], output="sos")
    audio = scipy.signal.sosfiltfilt(sos, as_float(clip["audio"].numpy()))
    return {"rate": clip["rate"], "audio": torch.from_numpy(np.ascontiguousarray(audio))}


def _target(rng, clip: dict, n: int, rate: int) -> np.ndarray:
    """A segment of n samples holding the utterance without its rumble: a crop where it is longer
    (with speech in it), the whole of it at a random offset, zeros around it, where it is shorter."""
    clip = without_rumble(clip)
    native = clip["rate"]
    length = len(clip["audio"])
    span = math.ceil(n * native / rate)
    if length <= span:
        offset = int(rng.integers(0, n - math.floor(length * rate / native) + 1))
        return np.roll(_resampled(clip, 0, n, rate), offset)
    whole = _rms(as_float(clip["audio"].numpy()))
    for _ in range(TRIES):
        seg = _resampled(clip, int(rng.integers(0, length - span + 1)), n, rate)
        if _rms(seg) >= math.sqrt(ACTIVE) * whole:
            return seg
    return seg  # a crop quieter than most: still speech, kept rather than loop for ever


def _coloured(rng, n: int, rate: int, exponent: float) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f^exponent (1: pink, 2: brown) above COLOUR_FLOOR."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1.0 / rate), COLOUR_FLOOR)
    spectrum *= f ** (-exponent / 2)
    spectrum[0] = 0
    return np.fft.irfft(spectrum, n)


def _hum(rng, n: int, rate: int) -> np.ndarray:
    """Mains hum: 50 or 60 Hz (a little off, as grids drift) and its harmonics below HUM_TOP,
    odd ones louder (a transformer's buzz), random phases."""
    f0 = float(rng.choice([50.0, 60.0])) * (1 + rng.uniform(-0.002, 0.002))
    k = np.arange(1, int(min(HUM_TOP, rate / 2) // f0) + 1)
    amp = rng.uniform(0.3, 1.0, len(k)) * np.where(k % 2 == 1, 1.0, 0.4) / k ** rng.uniform(0.5, 1.2)
    phase = rng.uniform(0, 2 * np.pi, len(k))
    t = np.arange(n) / rate
    return (amp[:, None] * np.sin(2 * np.pi * f0 * k[:, None] * t[None, :] + phase[:, None])).sum(0)


def _babble(rng, n: int, pool: list[dict], mix: Mix, own=None) -> np.ndarray:
    """Several other utterances at once: each talker a stream of random utterances from the pool
    (one after the other, from a random point, each as `voice` draws it), at equal RMS, summed.
    own: the target's voice, which babble never speaks (unless the pool holds no other)."""
    rate, talkers = mix.rate, mix.babble_talkers
    if own is not None:
        pool = [c for c in pool if c.get("voice") != own] or pool
    total = np.zeros(n)
    for _ in range(int(rng.integers(talkers[0], talkers[1] + 1))):
        stream, filled = np.zeros(n), -int(rng.integers(0, n))  # the talker may be mid-sentence at 0
        while filled < n:
            clip = voice(rng, pool[int(rng.integers(len(pool)))], mix)
            piece = _resampled(clip, 0, math.floor(len(clip["audio"]) * rate / clip["rate"]), rate)
            lo, hi = max(filled, 0), min(filled + len(piece), n)
            if hi > lo:
                stream[lo:hi] += piece[lo - filled : hi - filled]
            filled += len(piece)
        if (level := _rms(stream)) > 0:
            total += stream / level
    return total


def _excerpt(rng, n: int, rate: int, regions: list) -> np.ndarray:
    """n samples from a random point of a random region (clip, first, last native sample)."""
    clip, first, last = regions[int(rng.integers(len(regions)))]
    span = math.ceil(n * clip["rate"] / rate)
    return _resampled(clip, int(rng.integers(first, max(last - span, first) + 1)), n, rate)


def regions(clips: dict, part: str, test_fraction: float) -> list:
    """Each recording's training part (its first 1 - test_fraction) or test part (the rest)."""
    out = []
    for name in sorted(clips):
        clip = clips[name]
        cut = int(len(clip["audio"]) * (1 - test_fraction))
        out.append((clip, 0, cut) if part == "train" else (clip, cut, len(clip["audio"])))
    return out


def noise(kind: str, rng, n: int, mix: Mix, pools: dict, own=None) -> np.ndarray:
    """n samples of noise of a kind (unscaled); pools holds the babble and recording sources; own:
    the target's voice, which babble leaves out."""
    for _ in range(TRIES):
        if kind == choices.BAND:
            v = synth.band_noise(rng, n, mix.rate)
        elif kind == choices.WHITE:
            v = rng.standard_normal(n)
        elif kind == choices.PINK:
            v = _coloured(rng, n, mix.rate, 1.0)
        elif kind == choices.BROWN:
            v = _coloured(rng, n, mix.rate, 2.0)
        elif kind == choices.HUM:
            v = _hum(rng, n, mix.rate)
        elif kind == choices.BABBLE:
            v = _babble(rng, n, pools[choices.BABBLE], mix, own)
        elif kind in (choices.MUSIC, choices.RECORDED):
            v = _excerpt(rng, n, mix.rate, pools[kind])
        else:
            raise ValueError(f"unknown noise kind {kind!r}")
        if _rms(v) > 1e-9:
            return v
    raise PipelineError(
        f"{kind} noise: {TRIES} excerpts in a row were silent; give noise recordings with sound in them"
    )


def _grid(v: np.ndarray) -> np.ndarray:
    return np.round(v * synth._GRID) / synth._GRID


def mix_set(name: str, targets: dict, pools: dict, mix: Mix, count: int, seed: int) -> tuple[dict, list]:
    """count segments ({"x", "y"} float32 [count, 1, N]) and what each holds (prompt, kind,
    SNR, level): targets {prompt: clip}, noise kinds drawn from mix.kinds (as often as
    mix.weights say), SNR and level uniformly from their ranges (dB), the target and the noise
    each through its own random filter when mix.eq is set (the target as filtered is the clean y)."""
    n = round(mix.seconds * mix.rate)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    names = sorted(targets)
    x = np.zeros((count, 1, n), np.float32)
    y = np.zeros((count, 1, n), np.float32)
    meta = []
    for q in range(count):
        prompt = names[int(rng.integers(len(names)))]
        kind = _kind(rng, mix)
        snr, level = rng.uniform(*mix.snr_db), rng.uniform(*mix.level_db)
        clean = shaped(rng, _target(rng, voice(rng, targets[prompt], mix), n, mix.rate), mix.eq)
        clean *= 10 ** (level / 20) / max(_rms(clean), 1e-12)
        hiss = shaped(rng, noise(kind, rng, n, mix, pools, targets[prompt].get("voice")), mix.eq)
        hiss *= _rms(clean) / 10 ** (snr / 20) / _rms(hiss)
        noisy = clean + hiss
        if (peak := np.max(np.abs(noisy))) > PEAK:  # never past full scale: both scaled, the SNR kept
            clean, noisy = clean * (PEAK / peak), noisy * (PEAK / peak)
        y[q, 0], x[q, 0] = _grid(clean), _grid(noisy)
        meta.append({"prompt": prompt, "kind": kind, "snr_db": round(snr, 3), "level_db": round(level, 3)})
    return {"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, meta


def pools_for(corpus: dict, split: dict, part: str, test_fraction: float) -> dict:
    """The noise sources of one part (train or test): babble utterances and recording regions."""
    return {
        choices.BABBLE: [corpus["speech"][p] for p in split[f"babble_{part}"]],
        choices.MUSIC: regions(corpus.get("music", {}), part, test_fraction),
        choices.RECORDED: regions(corpus.get("recorded", {}), part, test_fraction),
    }


def set_name(kind: str, band) -> str:
    """A matrix set's stable name: its noise kind and SNR band, e.g. babble_-5to5dB."""
    return f"{kind}_{band[0]:g}to{band[1]:g}dB"

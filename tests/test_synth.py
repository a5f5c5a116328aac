"""The synthetic dataset has the course's layout and statistics, and is byte-for-byte reproducible."""

import hashlib
import io
import zipfile

import numpy as np
import pytest
import torch

from cnn_denoise.lab import synth


@pytest.fixture(scope="module")
def pairs():
    return synth.make_pairs(6, 32000, seed=1)


def spectrum(v):
    v = np.asarray(v, dtype=np.float64).ravel()
    return np.fft.rfftfreq(len(v), 1 / synth.SAMPLE_RATE), np.abs(np.fft.rfft(v)) ** 2


def test_layout_is_the_courses(pairs):
    assert len(pairs) == 6
    for x, y in pairs:
        assert x.dtype == y.dtype == torch.float32
        assert x.shape == y.shape == (1, 32000)


def test_clean_speech_lies_below_2khz(pairs):
    for _, y in pairs:
        f, p = spectrum(y)
        assert p[f < 2000].sum() / p.sum() > 0.9999


def test_noise_is_band_passed_14_to_15_5_khz(pairs):
    for x, y in pairs:
        f, p = spectrum(x.double() - 0.5 * y.double())
        assert p[(f > 13800) & (f < 15700)].sum() / p.sum() > 0.97
        assert p[f < 12000].sum() / p.sum() < 0.005


def test_mixture_and_amplitudes(pairs):
    for x, y in pairs:
        n = (x.double() - 0.5 * y.double()).numpy()
        assert 0.8e-3 <= y.abs().max() <= 1.2e-3
        assert 0.3e-3 < x.abs().max() < 1.5e-3
        assert np.sqrt(np.mean(n**2)) == pytest.approx(synth.NOISE_RMS, rel=0.01)
        assert abs(np.mean(n)) < 1e-5  # zero-mean noise


def test_speech_has_pauses_and_pitch(pairs):
    for _, y in pairs:
        frames = y.double().numpy().reshape(-1, 320)  # 10 ms frames
        energy = (frames**2).mean(1)
        silent = energy < 1e-3 * energy.max()
        assert 0.05 < silent.mean() < 0.8, "speech alternates syllables and pauses"
        f, p = spectrum(y)
        peak = f[np.argmax(p)]
        assert 80 < peak < 1900  # the energy sits at voice harmonics, not at DC


def test_same_seed_same_bytes_other_seed_other_bytes():
    a, b, c = synth.make_zip(3, 4000, 5), synth.make_zip(3, 4000, 5), synth.make_zip(3, 4000, 6)
    assert a == b and a != c


def test_zip_holds_one_torch_file():
    with zipfile.ZipFile(io.BytesIO(synth.make_zip(2, 1000, 0))) as zf:
        assert zf.namelist() == [synth.MEMBER]
        data = torch.load(io.BytesIO(zf.read(synth.MEMBER)), weights_only=True)
    assert isinstance(data, list) and len(data) == 2 and data[0][0].shape == (1, 1000)


# Changing the generator changes every result downstream: do it on purpose, then update these.
# (Deflate level 1 since 2026-11-29: the zips changed, the torch files in them did not.)
PINNED_SMALL = "81b13928706af643fd589a94494f3fc4ba6f9791816ec42a87f04d8a47fe64e7"  # 4 x 8000, seed 0
PINNED_DEFAULT = "60fa37982240f4037440f7e7d8d82362238c2c257347b6346811912ef232f413"  # params.yaml's default


def test_small_dataset_hash_is_pinned():
    assert hashlib.sha256(synth.make_zip(4, 8000, 0)).hexdigest() == PINNED_SMALL


@pytest.mark.slow
def test_default_dataset_hash_is_pinned():
    assert hashlib.sha256(synth.make_zip(300, 32000, 0)).hexdigest() == PINNED_DEFAULT

"""The peer denoisers (RNNoise, DTLN, DeepFilterNet3): shape, rate and dtype kept, delay removed to within
one sample, silence kept silent, short inputs handled, bad input refused with ValueError."""

import numpy as np
import pytest

from cnn_denoise import peers
from cnn_denoise.peers.align import measure_delay, noisy, speechlike

NAMES = sorted(peers.PEERS)


def need(name):
    why = peers.available()[name]
    if why:
        pytest.skip(why)


@pytest.mark.parametrize("name", NAMES)
def test_delay_constant_matches_measurement(name):
    need(name)
    mod = peers.PEERS[name]
    x = noisy(speechlike(mod.RATE, 1.0))
    assert measure_delay(x, mod.raw(x, mod.RATE // 10), mod.RATE // 10) == mod.DELAY == peers.delay(name)
    assert peers.latency_ms(name) == pytest.approx(1000 * mod.DELAY / mod.RATE)


@pytest.mark.parametrize("name", NAMES)
def test_mono_16k_lines_up(name):
    need(name)
    x = noisy(speechlike(16000, 2.0))
    y = peers.run(name, x, 16000)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert np.sqrt(np.mean(y**2)) > 0.1 * np.sqrt(np.mean(x**2))  # speech is kept, not muted
    assert measure_delay(x, y, 2000) in (-1, 0, 1)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_stereo_48k_lines_up(name):
    need(name)
    clean = speechlike(48000, 2.0)
    x = np.stack([noisy(clean, 10, seed=1), noisy(0.5 * clean, 5, seed=2)])
    y = peers.run(name, x, 48000)
    assert y.shape == x.shape and y.dtype == x.dtype
    for xc, yc in zip(x, y, strict=True):
        assert measure_delay(xc, yc, 6000) in (-1, 0, 1)


@pytest.mark.parametrize("name", NAMES)
def test_silence_stays_quiet(name):
    need(name)
    y = peers.run(name, np.zeros((2, 8000), np.float32), 16000)
    assert y.shape == (2, 8000) and np.max(np.abs(y)) < 1e-3


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [1, 100])
def test_shorter_than_a_frame(name, n):
    need(name)
    x = noisy(speechlike(16000, 0.1))[:n]
    y = peers.run(name, x, 16000)
    assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))
    assert peers.run(name, np.zeros((2, 0), np.float32), 44100).shape == (2, 0)


@pytest.mark.parametrize(
    "args",
    [
        ("nope", np.zeros(10, np.float32), 16000),
        ("dtln", np.zeros(10, np.int16), 16000),
        ("dtln", np.zeros((1, 2, 10), np.float32), 16000),
        ("dtln", np.zeros((1000, 2), np.float32), 16000),
        ("dtln", np.zeros(10, np.float32), 0),
        ("dtln", np.zeros(10, np.float32), 16000.0),
        ("dtln", np.full(10, np.nan, np.float32), 16000),
    ],
)
def test_bad_input_is_refused(args):
    with pytest.raises(ValueError):
        peers.run(*args)


@pytest.mark.parametrize("lag", [-37, 0, 5, 400])
def test_measure_delay_finds_a_known_shift(lag):
    x = noisy(speechlike(16000, 1.0))
    y = np.roll(x, lag)
    assert measure_delay(x, y, 500) == lag


def test_available_names_every_peer():
    got = peers.available()
    assert set(got) == set(peers.PEERS)
    assert all(v is None or "pip install '.[peers]'" in v for v in got.values())


def test_missing_peer_says_how_to_install(monkeypatch):
    import importlib.metadata
    import importlib.util

    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    got = peers.available()
    assert all(v and "\n" not in v and "pip install '.[peers]'" in v for v in got.values())
    for name in NAMES:
        with pytest.raises(ImportError, match="pip install"):
            peers.run(name, np.zeros(10, np.float32), 16000)


def test_no_livekit_or_audiolab_is_imported():
    import sys

    for name in NAMES:
        if peers.available()[name] is None:
            peers.run(name, np.zeros(480, np.float32), 48000)
    assert not any(m == "livekit" or m.startswith(("livekit.", "audiolab", "pyrnnoise")) for m in sys.modules)

"""WAVs and figures of the evaluate stage are real, readable files."""

import numpy as np
import scipy.io.wavfile

from cnn_denoise.scoring import figures


def test_wavs_share_one_gain(tmp_path):
    signals = {"noisy": np.array([0.0, 1e-3, -2e-3]), "clean": np.array([0.0, 5e-4, -1e-3])}
    paths = figures.write_wavs(tmp_path, "ex", signals, 32000)
    rates, data = zip(*(scipy.io.wavfile.read(p) for p in paths), strict=True)
    assert rates == (32000, 32000) and all(d.dtype == np.int16 for d in data)
    assert abs(int(data[0][2])) == round(0.9 * 32767) and abs(int(data[1][2])) == round(0.45 * 32767)


def test_figures_are_pngs(tmp_path):
    s = np.sin(np.arange(4000) / 5)
    a = figures.example_figure(tmp_path / "a.png", {"noisy": s, "clean": s * 0}, 32000, "t")
    b = figures.response_figure(
        tmp_path / "b.png", np.random.default_rng(0).standard_normal((40, 1, 5)), np.ones(79) / 79, 32000
    )
    for p in (a, b):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_envelope_keeps_each_blocks_extremes_in_time_order():
    rng = np.random.default_rng(1)
    s = rng.standard_normal(32003)
    t = np.arange(s.size) / 32000.0
    te, se = figures.envelope(t, s, columns=1000)
    blocks = s[:32000].reshape(1000, 32)
    assert np.all(np.diff(te) > 0)  # time order, no sample twice
    assert np.array_equal(se, s[np.rint(te * 32000).astype(int)])  # every point is a real sample
    pairs = se[:2000].reshape(1000, 2)
    assert np.array_equal(pairs.min(1), blocks.min(1)) and np.array_equal(pairs.max(1), blocks.max(1))
    assert np.array_equal(se[2000:], s[32000:])  # the tail whole
    short = s[:1500]
    assert figures.envelope(t[:1500], short, columns=1000)[1] is short

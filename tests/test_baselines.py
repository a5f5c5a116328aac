"""The closed-form baselines against NumPy's least squares and SciPy's lfilter."""

import numpy as np
import pytest
import scipy.signal
import torch

from cnn_denoise.lab import baselines


def test_fit_fir_recovers_a_known_filter_and_matches_lstsq():
    rng = np.random.default_rng(0)
    h_true = rng.standard_normal(7)
    x = rng.standard_normal((5, 1, 300))
    y = scipy.signal.lfilter(h_true, [1.0], x, axis=-1)
    h = baselines.fit_fir(torch.from_numpy(x).float(), torch.from_numpy(y).float(), 7).numpy()
    np.testing.assert_allclose(h, h_true, atol=1e-4)
    noisy_y = y + 0.3 * rng.standard_normal(y.shape)
    A = np.concatenate(
        [np.stack([np.concatenate([np.zeros(k), r[: len(r) - k]]) for k in range(7)], 1) for r in x[:, 0]]
    )
    expected = np.linalg.lstsq(A, noisy_y[:, 0].reshape(-1), rcond=None)[0]
    got = baselines.fit_fir(torch.from_numpy(x), torch.from_numpy(noisy_y), 7).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("n, taps", [(5, 9), (9, 9), (1000, 3), (2049, 64)])
def test_normal_equations_are_the_explicit_matrix_products(n, taps):
    """The FFT form (autocorrelation less the products past the end) against A^T A built row by row."""
    rng = np.random.default_rng(n + taps)
    x, y = rng.standard_normal((3, 1, n)), rng.standard_normal((3, 1, n))
    A = np.concatenate(
        [
            np.stack([np.concatenate([np.zeros(k), r[: max(len(r) - k, 0)]])[:n] for k in range(taps)], 1)
            for r in x[:, 0]
        ]
    )
    R, p = baselines.normal_equations(torch.from_numpy(x), torch.from_numpy(y), taps)
    np.testing.assert_allclose(R.numpy(), A.T @ A, rtol=1e-10, atol=1e-10 * n)
    np.testing.assert_allclose(p.numpy(), A.T @ y[:, 0].reshape(-1), rtol=1e-10, atol=1e-10 * n)


def test_apply_fir_is_causal_filtering():
    rng = np.random.default_rng(1)
    h, x = rng.standard_normal(5), rng.standard_normal((baselines.BATCH + 3, 1, 50)).astype(np.float32)  # two batches
    got = baselines.apply_fir(torch.from_numpy(h), torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, scipy.signal.lfilter(h, [1.0], x, axis=-1), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_ideal_lowpass_keeps_low_tones_and_removes_high_ones():
    fs, n = 32000, 3200
    t = torch.arange(n, dtype=torch.float64) / fs
    low, high = torch.sin(2 * torch.pi * 500 * t), torch.sin(2 * torch.pi * 14500 * t)
    out = baselines.ideal_lowpass((low + high)[None, None], 2000.0, fs)[0, 0]
    torch.testing.assert_close(out, low.float(), atol=1e-5, rtol=0)


def test_fit_gain():
    y = torch.randn(3, 1, 100, dtype=torch.float64)
    assert baselines.fit_gain(0.5 * y, y) == pytest.approx(2.0)

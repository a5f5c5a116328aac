"""MIMOFilter against independent oracles: SciPy's lfilter and PyTorch's conv1d."""

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from cnn_denoise import MIMOFilter
from cnn_denoise.config.choices import BACKENDS
from cnn_denoise.lab.filters import mimo_shift, shift


def randn(*shape, **kw):
    return torch.randn(*shape, dtype=torch.float64, **kw)


def scipy_mimo(X: np.ndarray, H: np.ndarray) -> np.ndarray:
    """y^g = sum_f lfilter(h^{fg}, 1, x^f): the lab's equation (10), one FIR filter at a time."""
    B, Fin, N = X.shape
    K, _, G = H.shape
    Y = np.zeros((B, G, N))
    for b in range(B):
        for g in range(G):
            for f in range(Fin):
                Y[b, g] += scipy.signal.lfilter(H[:, f, g], [1.0], X[b, f])
    return Y


def conv1d_oracle(X: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """Written from conv1d's definition, independently of the module: a causal convolution."""
    K = H.shape[0]
    w = torch.stack([torch.stack([H[:, f, g].flip(0) for f in range(H.shape[1])]) for g in range(H.shape[2])])
    return F.conv1d(torch.cat([torch.zeros(X.shape[0], X.shape[1], K - 1, dtype=X.dtype), X], dim=-1), w)


def test_shift_is_zero_padded_delay():
    x = torch.arange(1.0, 6.0)
    assert shift(x).tolist() == [0, 1, 2, 3, 4]
    assert shift(x, 3).tolist() == [0, 0, 0, 1, 2]
    assert shift(x, 5).tolist() == [0] * 5
    assert shift(x, 0).tolist() == x.tolist()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(6))
def test_matches_scipy_lfilter_on_random_shapes(backend, seed):
    rng = np.random.default_rng(seed)
    B, Fin, G, K = (int(v) for v in rng.integers(1, 5, size=4))
    K = int(rng.integers(1, 12))
    N = int(rng.integers(1, 60))
    layer = MIMOFilter(K, Fin, G, backend=backend).double()
    X = torch.from_numpy(rng.standard_normal((B, Fin, N)))
    got = layer(X).detach().numpy()
    np.testing.assert_allclose(got, scipy_mimo(X.numpy(), layer.H.detach().numpy()), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matrix_form_of_the_lab(backend):
    """Y = sum_k S^k X H_k with X as the lab's N x F matrix and an explicit shift matrix S."""
    N, Fin, G, K = 9, 3, 2, 4
    layer = MIMOFilter(K, Fin, G, backend=backend).double()
    Xm = randn(N, Fin)  # the lab's N x F
    S = torch.diag(torch.ones(N - 1, dtype=torch.float64), -1)  # zero-padded delay, not circular
    expected = sum(torch.linalg.matrix_power(S, k) @ Xm @ layer.H[k] for k in range(K))
    torch.testing.assert_close(layer(Xm.T).T, expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "K, Fin, G", [(7, 3, 4), (1, 4, 1), (1, 1, 3)]
)  # one tap: a pointwise mix (linear-gate's last layer)
def test_gradients_match_conv1d_oracle(backend, K, Fin, G):
    torch.manual_seed(1)
    layer = MIMOFilter(K, Fin, G, backend=backend).double()
    X = randn(2, Fin, 30, requires_grad=True)
    W = randn(2, G, 30)
    (layer(X) * W).sum().backward()
    H = layer.H.detach().clone().requires_grad_(True)
    X2 = X.detach().clone().requires_grad_(True)
    (conv1d_oracle(X2, H) * W).sum().backward()
    torch.testing.assert_close(layer.H.grad, H.grad)
    torch.testing.assert_close(X.grad, X2.grad)


def test_gradcheck_shift_backend():
    layer = MIMOFilter(3, 2, 2, backend="shift").double()
    X = randn(1, 2, 8, requires_grad=True)
    assert torch.autograd.gradcheck(mimo_shift, (X, layer.H))


def test_backends_agree_in_float32():
    torch.manual_seed(0)
    a = MIMOFilter(40, 1, 5, backend="conv1d").float()
    b = MIMOFilter(40, 1, 5, backend="shift").float()
    b.load_state_dict(a.state_dict())
    X = torch.randn(3, 1, 1000, dtype=torch.float32)
    torch.testing.assert_close(a(X), b(X), rtol=1e-5, atol=1e-6)


def test_unbatched_input_and_shapes():
    layer = MIMOFilter(5, 2, 3)
    assert layer.H.shape == (5, 2, 3)
    X = torch.randn(2, 50)
    torch.testing.assert_close(layer(X), layer(X.unsqueeze(0)).squeeze(0))
    assert layer(X).shape == (3, 50)


def test_no_bias_linear():
    layer = MIMOFilter(4, 2, 2)
    assert [name for name, _ in layer.named_parameters()] == ["H"]
    assert torch.count_nonzero(layer(torch.zeros(1, 2, 10))) == 0


def test_init_is_xavier_normal_on_K_G_F_like_the_course():
    torch.manual_seed(123)
    layer = MIMOFilter(40, 5, 1)
    torch.manual_seed(123)
    ref = torch.empty(40, 1, 5)
    torch.nn.init.xavier_normal_(ref)
    torch.testing.assert_close(layer.H.detach(), ref.transpose(1, 2))
    big = MIMOFilter(40, 50, 60)  # std = sqrt(2 / (F * (G + K)))
    assert big.H.std().item() == pytest.approx((2 / (50 * (60 + 40))) ** 0.5, rel=0.02)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"taps": 0, "in_features": 1, "out_features": 1}, "taps"),
        ({"taps": 3, "in_features": 0, "out_features": 1}, "in_features"),
        ({"taps": 3, "in_features": 1, "out_features": -2}, "out_features"),
        ({"taps": 3, "in_features": 1, "out_features": 1, "backend": "fft9"}, "backend"),
    ],
)
def test_bad_specs_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MIMOFilter(**kwargs)


def test_wrong_input_features_raise_value_error():
    with pytest.raises(ValueError, match=r"expected input \(batch, 3, N\)"):
        MIMOFilter(4, 3, 2)(torch.randn(2, 2, 10))


@pytest.mark.parametrize("block", [1, 3, 7, 8, 9, 40, 200])
@pytest.mark.parametrize("features", [1, 2])
def test_toeplitz_any_block_length(block, features):
    """Windows (one feature, or blocks shorter than K-1) and non-overlapping blocks alike."""
    torch.manual_seed(block)
    H = randn(9, features, 3)
    X = randn(2, features, 97)  # 97 is no multiple of any block
    from cnn_denoise.lab.filters import mimo_toeplitz

    torch.testing.assert_close(mimo_toeplitz(X, H, block=block), mimo_shift(X, H))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["toeplitz", "fft"])
def test_fast_backends_equal_reference_in_float32_with_gradients(backend):
    """The lab's shapes at float32: values and gradients within float32 rounding of the reference."""
    torch.manual_seed(0)
    ref, fast = MIMOFilter(40, 5, 3, backend="shift"), MIMOFilter(40, 5, 3, backend=backend)
    fast.load_state_dict(ref.state_dict())
    X = (torch.randn(4, 5, 3000) * 1e-3).requires_grad_(True)
    X2 = X.detach().clone().requires_grad_(True)
    W = torch.randn(4, 3, 3000)
    a, b = ref(X), fast(X2)
    scale = a.abs().max().item()
    torch.testing.assert_close(b, a, rtol=0, atol=1e-5 * scale)
    (a * W).sum().backward()
    (b * W).sum().backward()
    for g_ref, g_fast in ((ref.H.grad, fast.H.grad), (X.grad, X2.grad)):
        torch.testing.assert_close(g_fast, g_ref, rtol=0, atol=1e-5 * g_ref.abs().max().item())


def test_auto_picks_by_device_and_taps():
    from cnn_denoise.lab.filters import choose_backend

    # the lab's layers (1 -> 5, 5 -> 1 at 40 taps) keep the GEMMs;
    # linear-gate's first layer (1 -> 4 at 79) takes the FFT
    assert choose_backend(40, 1, 5) == choose_backend(40, 5, 1) == choose_backend(40, 5, 5) == "toeplitz"
    assert choose_backend(79, 1, 4) == choose_backend(60, 1, 5) == "fft"
    assert (
        choose_backend(120, 5, 1) == "toeplitz" and choose_backend(200, 5, 1) == "fft"
    )  # a last layer keeps the GEMMs longer
    assert (
        choose_backend(80, 1, 1) == choose_backend(80, 5, 5) == choose_backend(40, 32, 32) == "toeplitz"
    )  # deep-3's 5 -> 5 at 40 too
    assert choose_backend(81, 1, 1) == choose_backend(120, 5, 5) == choose_backend(64, 32, 32) == "fft"
    assert choose_backend(400, 1, 4, "cuda") == "conv1d"
    layer = MIMOFilter(40, 1, 2)
    assert layer.backend == "auto"
    ref = MIMOFilter(40, 1, 2, backend="shift")
    ref.load_state_dict(layer.state_dict())
    X = torch.randn(2, 1, 500)
    torch.testing.assert_close(layer(X), ref(X), rtol=1e-5, atol=1e-6)

"""CNN and MIMOCNN against a composition of SciPy filters; Proposition 1 as a property test."""

import numpy as np
import pytest
import scipy.signal
import torch
from helpers import model_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn_denoise import CNN, MIMOCNN, MIMOFilter
from cnn_denoise.config.choices import BACKENDS
from cnn_denoise.lab.filters import shift
from cnn_denoise.models import checkpoint as ckpt
from cnn_denoise.models import model as cnn


def scipy_cnn(X: np.ndarray, model: MIMOCNN) -> np.ndarray:
    """The lab's recursion (11), each MIMO filter as a sum of lfilter calls, tanh per layer."""
    last = len(model.layers) - 1
    for i, layer in enumerate(model.layers):
        H = layer.H.detach().double().numpy()
        Y = np.zeros((X.shape[0], H.shape[2], X.shape[2]))
        for g in range(H.shape[2]):
            for f in range(H.shape[1]):
                Y[:, g] += scipy.signal.lfilter(H[:, f, g], [1.0], X[:, f], axis=-1)
        X = np.tanh(Y) if (i < last or model.last_activation == "tanh") else Y
    return X


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("last", ["tanh", "linear"])
def test_mimocnn_matches_scipy(backend, last):
    torch.manual_seed(3)
    model = MIMOCNN([5, 3, 7], [2, 4, 3, 1], last_activation=last, backend=backend).double()
    X = torch.randn(3, 2, 40, dtype=torch.float64)
    np.testing.assert_allclose(model(X).detach().numpy(), scipy_cnn(X.numpy(), model), rtol=1e-10, atol=1e-12)


def test_layers_are_mimo_filters_with_lab_shapes():
    model = MIMOCNN([40, 40], [1, 5, 1])
    assert isinstance(model.layers, torch.nn.ModuleList)
    assert all(isinstance(layer, MIMOFilter) for layer in model.layers)
    assert [tuple(layer.H.shape) for layer in model.layers] == [(40, 1, 5), (40, 5, 1)]
    assert model.receptive_field == 79


def test_tanh_on_every_layer_is_the_default():
    torch.manual_seed(0)
    model = MIMOCNN([3], [1, 1])
    with torch.no_grad():
        model.layers[0].H.fill_(10.0)
    assert model(torch.ones(1, 1, 5)).abs().max() <= 1.0  # tanh bounds the output
    linear = MIMOCNN([3], [1, 1], last_activation="linear")
    linear.load_state_dict(model.state_dict())
    assert linear(torch.ones(1, 1, 5)).max().item() == pytest.approx(30.0)


def test_cnn_is_single_feature_mimocnn():
    torch.manual_seed(5)
    net = CNN([4, 6, 3])
    assert [tuple(layer.H.shape) for layer in net.layers] == [(4, 1, 1), (6, 1, 1), (3, 1, 1)]
    x = torch.randn(2, 30)
    ref = MIMOCNN([4, 6, 3], [1, 1, 1, 1])
    ref.load_state_dict(net.state_dict())
    torch.testing.assert_close(net(x), ref(x.unsqueeze(1)).squeeze(1))
    assert net(x[0]).shape == (30,)
    torch.testing.assert_close(net(x[0]), net(x)[0])


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(
    taps=st.lists(st.integers(1, 8), min_size=1, max_size=3),
    width=st.integers(1, 4),
    n=st.integers(2, 40),
    k=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    backend=st.sampled_from(BACKENDS),
)
def test_proposition_1_shift_equivariance(taps, width, n, k, seed, backend):
    """Phi(S^k x) = S^k Phi(x) for the zero-padded shift (tanh(0) = 0 keeps the zeros)."""
    torch.manual_seed(seed)
    features = [1] + [width] * (len(taps) - 1) + [1]
    model = MIMOCNN(taps, features, backend=backend).double()
    x = torch.randn(2, 1, n, dtype=torch.float64)
    torch.testing.assert_close(model(shift(x, k)), shift(model(x), k))


@pytest.mark.parametrize(
    "taps, features, message",
    [
        ([40, 40], [1, 5], "len\\(taps\\) \\+ 1"),
        ([40, 40], [1, 5, 1, 1], "len\\(taps\\) \\+ 1"),
        ([], [1], "at least one layer"),
        ([40, 0], [1, 5, 1], "integers >= 1, got taps \\[40, 0\\]"),
        ([3], [1, 0], "integers >= 1, got taps \\[3\\], features \\[1, 0\\]"),
        ([3], [1, 1], "unknown MIMOCNN last_activation 'relu'; choose one of tanh, linear"),
    ],
)
def test_bad_specs(taps, features, message):
    with pytest.raises(ValueError, match=message):
        MIMOCNN(taps, features, last_activation="relu" if "relu" in message else "tanh")


@pytest.mark.parametrize(
    "taps, features, message",
    [([3], [1, 0], "in_features must be an integer >= 1"), ([0], [1, 1], "taps must be an integer >= 1")],
)
def test_bad_filter_specs(taps, features, message):
    with pytest.raises(ValueError, match=message):
        MIMOFilter(taps[0], features[0] if features[1] else 0, 1)


def test_wrong_input_feature_count():
    with pytest.raises(ValueError, match="expected input"):
        MIMOCNN([3, 3], [2, 4, 1])(torch.randn(1, 1, 20))
    with pytest.raises(ValueError, match="CNN: expected input"):
        CNN([3])(torch.randn(1, 1, 20))
    with pytest.raises(ValueError, match="last_activation"):
        MIMOCNN([3], [1, 1], last_activation="relu")


def test_checkpoint_round_trip(tmp_path):
    model = cnn.build(model_settings([5, 3], [1, 2, 1], "linear"), seed=7)
    ckpt.save(model, tmp_path / "m.pt")
    again = ckpt.load(tmp_path / "m.pt")
    assert (again.taps, again.features, again.last_activation) == ([5, 3], [1, 2, 1], "linear")
    x = torch.randn(2, 1, 50)
    torch.testing.assert_close(again(x), model(x))
    assert (
        cnn.build(model_settings([5, 3], [1, 2, 1]), seed=7)
        .state_dict()["layers.0.H"]
        .equal(model.state_dict()["layers.0.H"])
    )


def test_input_scale_round_trips_through_the_checkpoint(tmp_path):
    model = cnn.build(model_settings([3], [1, 2, 1][:2], "linear", input_scale=250.0), seed=1)
    ckpt.save(model, tmp_path / "m.pt")
    assert ckpt.load(tmp_path / "m.pt").input_scale == 250.0
    with pytest.raises(ValueError, match="input_scale"):
        MIMOCNN([3], [1, 1], input_scale=0.0)


@pytest.mark.parametrize(
    "taps, features, n, last, scale",
    [
        ([40, 40], [1, 5, 1], 1000, "tanh", 1.0),  # the lab's CNN; N not a multiple of the block
        ([7, 9, 12], [2, 3, 4, 1], 37, "linear", 100.0),  # several input features first, three layers, a scale
        ([20, 30], [1, 4, 2], 15, "tanh", 1.0),  # a signal shorter than one block
    ],
)
def test_layers_chained_in_one_layout_equal_the_reference(taps, features, n, last, scale):
    """toeplitz_chain (the Toeplitz layers in one blocked layout) against the shift register,
    outputs and every gradient."""
    from cnn_denoise.lab.filters import chains

    torch.manual_seed(0)
    models = [
        MIMOCNN(taps, features, last_activation=last, backend=b, input_scale=scale).double()
        for b in ("toeplitz", "shift")
    ]
    models[1].load_state_dict(models[0].state_dict())
    assert chains(["toeplitz"] * len(taps), taps)
    X = torch.randn(3, features[0], n, dtype=torch.float64)
    W = torch.randn(3, features[-1], n, dtype=torch.float64)
    inputs = [X.clone().requires_grad_(True) for _ in models]
    outs = [m(x) for m, x in zip(models, inputs, strict=True)]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    for out in outs:
        (out * W).sum().backward()
    torch.testing.assert_close(inputs[0].grad, inputs[1].grad)
    for a, b in zip(models[0].layers, models[1].layers, strict=True):
        torch.testing.assert_close(a.H.grad, b.H.grad)


def test_which_layers_chain():
    from cnn_denoise.lab.filters import chains

    assert chains(["toeplitz", "toeplitz"], [40, 40])
    assert not chains(["toeplitz"], [40])  # one layer: nothing to keep
    assert not chains(["toeplitz", "fft"], [40, 40])  # another backend in between
    assert not chains(["toeplitz", "toeplitz"], [10, 100])  # one block length would waste 5x on the short one
    assert not chains(["toeplitz", "toeplitz"], [79, 1])  # a one-tap layer is one bmm of its own

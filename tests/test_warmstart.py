"""A CNN started as the least-squares FIR filter: checked against NumPy's least squares and
SciPy's lfilter, and shown to learn a noise gate that the linear filter cannot be."""

import numpy as np
import pytest
import scipy.signal
import torch
from helpers import model_settings, train_settings

from cnn_denoise.config.choices import linear_start_problem as problem
from cnn_denoise.lab.warmstart import linear_start
from cnn_denoise.models import model as cnn
from cnn_denoise.scoring.sets import predict
from cnn_denoise.training.fit import fit


def bursts(q=6, n=3000, seed=0):
    """Low-frequency tone bursts with silences between them, plus high-frequency noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = np.zeros((q, n))
    for i in range(q):
        for start in range(0, n, 1000):
            length = int(rng.integers(300, 600))
            y[i, start : start + length] = (
                np.sin(2 * np.pi * rng.uniform(0.01, 0.03) * t[:length]) * np.hanning(length) * 1e-3
            )
    noise = (
        scipy.signal.lfilter(*scipy.signal.butter(4, [0.8, 0.95], btype="bandpass"), rng.standard_normal((q, n))) * 2e-4
    )
    x = 0.5 * y + noise
    return {"x": torch.tensor(x, dtype=torch.float32)[:, None], "y": torch.tensor(y, dtype=torch.float32)[:, None]}


def lstsq_fir(x, y, taps):
    """The same filter by NumPy: least squares on the explicit convolution matrix."""
    rows = [np.stack([np.concatenate([np.zeros(k), xi[: len(xi) - k]]) for k in range(taps)], 1) for xi in x]
    return np.linalg.lstsq(np.concatenate(rows), np.concatenate(list(y)), rcond=None)[0]


def test_starts_as_the_least_squares_filter():
    data = bursts()
    model = cnn.build(model_settings([15, 1], [1, 4, 1], "linear", input_scale=1000.0), seed=0)
    info = linear_start(model, data["x"], data["y"])
    x, y = data["x"][:, 0].double().numpy(), data["y"][:, 0].double().numpy()
    h = lstsq_fir(x, y, 15)
    expected = scipy.signal.lfilter(h, [1.0], x, axis=-1)
    got = predict(model, data["x"])[:, 0].double().numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    assert info["taps"] == 15
    residual = np.sqrt(np.mean((expected - y) ** 2))
    assert info["residual_rms"] == pytest.approx(residual, rel=1e-3)
    # the gate's units: the same filter, knees at r/2, r, 2r of the residual; output weights 0
    H1, H2 = model.layers[0].H.detach().double(), model.layers[1].H.detach().double()
    for g, knee in zip(range(1, 4), (0.5, 1.0, 2.0), strict=True):
        np.testing.assert_allclose(
            H1[:, 0, g].numpy() * 1000 * residual * knee, h, rtol=1e-3, atol=1e-6 * np.abs(h).max()
        )
    assert H2[0, 1:, 0].abs().max() == 0 and H2[0, 0, 0] == pytest.approx(1 / info["gains"][0])


@pytest.mark.slow
def test_training_from_it_learns_a_gate_that_beats_the_linear_filter():
    train, test = bursts(seed=0), bursts(seed=1)
    model = cnn.build(model_settings([15, 1], [1, 4, 1], "linear", input_scale=1000.0), seed=0)
    linear_start(model, train["x"], train["y"])
    linear = predict(model, test["x"])
    history = fit(
        model,
        train,
        test,
        train_settings(lr=1.0, batch_size=len(train["x"]), epochs=8, seed=0, optimizer="lbfgs", loss="snr"),
        progress=False,
    )
    gated = predict(model, test["x"])
    err = {name: (p - test["y"]).double() for name, p in (("linear", linear), ("gated", gated))}
    assert err["gated"].abs().mean() < 0.9 * err["linear"].abs().mean()  # L1
    assert err["gated"].square().sum() < 0.9 * err["linear"].square().sum()  # SNR
    silent = test["y"] == 0
    assert err["gated"][silent].abs().mean() < 0.5 * err["linear"][silent].abs().mean()  # quieter in the pauses
    assert history[-1]["test_l1"] < history[0]["test_l1"]


@pytest.mark.parametrize(
    "taps, features, last",
    [
        ([40, 40], [1, 5, 1], "linear"),
        ([79, 1], [1, 1, 1], "linear"),
        ([79, 1], [1, 4, 1], "tanh"),
        ([79], [1, 1], "linear"),
    ],
)
def test_refuses_shapes_it_cannot_start(taps, features, last):
    assert "train.init linear needs model.taps [K, 1]" in problem(taps, features, last)
    model = cnn.build(model_settings(taps, features, last), seed=0)
    with pytest.raises(ValueError, match="set those or train.init xavier"):
        linear_start(model, torch.zeros(2, 1, 100), torch.zeros(2, 1, 100))
    assert problem([79, 1], [1, 4, 1], "linear") is None

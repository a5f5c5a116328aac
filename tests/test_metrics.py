"""The lab's L1 (sum per recording), the mean L1 and the MSE against NumPy."""

import numpy as np
import pytest
import torch

from cnn_denoise.scoring.sets import model_scores, scores


def test_against_numpy_with_uneven_batches():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 1, 50, generator=g), torch.randn(7, 1, 50, generator=g)
    got = scores(2 * x, y, batch=3)
    assert model_scores(lambda v: 2 * v, x, y) == scores(2 * x, y)
    err = (2 * x - y).numpy().astype(np.float64)
    assert got["l1"] == pytest.approx(np.abs(err).mean(), rel=1e-12)
    assert got["l1_sum"] == pytest.approx(np.abs(err).sum(axis=(1, 2)).mean(), rel=1e-12)
    assert got["mse"] == pytest.approx((err**2).mean(), rel=1e-12)
    assert got["l1"] == pytest.approx(torch.nn.L1Loss()(2 * x, y).item(), rel=1e-6)
    assert got["l1_sum"] == pytest.approx(got["l1"] * 50)

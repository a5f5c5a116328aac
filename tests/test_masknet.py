"""The speech recipe's masking CNN: its dilated layers against the lab's shift register, causal,
a receptive field and latency that bound what reaches an output sample, in step with x."""

import pytest
import torch

from cnn_denoise.filters import mimo_shift
from cnn_denoise.masknet import MaskNet, dilated


@pytest.mark.parametrize("d", [1, 2, 5])
def test_dilated_is_the_lab_filter_with_zeros_between_its_taps(d):
    g = torch.Generator().manual_seed(d)
    X, H = (
        torch.randn(2, 3, 50, generator=g, dtype=torch.float64),
        torch.randn(4, 3, 2, generator=g, dtype=torch.float64),
    )
    stuffed = torch.zeros((4 - 1) * d + 1, 3, 2, dtype=torch.float64)
    stuffed[::d] = H  # H_k at delay k d
    torch.testing.assert_close(dilated(X, H, d), mimo_shift(X, stuffed))


def small(scale=1.0):
    torch.manual_seed(0)
    return MaskNet(stride=4, filters=6, width=5, taps=3, dilations=[1, 2, 4], input_scale=scale).double()


def test_causal_output_depends_only_on_the_past_and_within_the_receptive_field():
    net, n, j = small(), 200, 97
    x = torch.randn(1, 1, n, dtype=torch.float64)
    bumped = x.clone()
    bumped[..., j] += 1.0
    changed = (net.causal(bumped) - net.causal(x)).abs()[0, 0] > 1e-12
    where = changed.nonzero().flatten()
    assert where.min() > j  # nothing before the change moves (frames write after what they saw)
    assert where.max() < j + net.receptive_field  # and nothing past the receptive field


def test_forward_is_causal_shifted_back_by_the_latency():
    net = small(scale=30.0)
    x = torch.randn(3, 1, 160, dtype=torch.float64) * 0.01
    L = net.latency
    longer = torch.nn.functional.pad(x, (0, L))
    torch.testing.assert_close(net(x), net.causal(longer)[..., L:])


def test_zeros_map_to_zeros_and_scale_passes_through():
    net = small(scale=30.0)
    assert net(torch.zeros(1, 1, 64, dtype=torch.float64)).abs().max() == 0  # no bias anywhere
    x = torch.randn(1, 1, 64, dtype=torch.float64)
    net_unscaled = small(scale=1.0)
    torch.testing.assert_close(net(x / 30.0) * 30.0, net_unscaled(x))  # Phi(x) = CNN(s x) / s


def test_calibrate_gain_brings_the_output_to_the_speechs_level():
    """After the si_sdr loss the output level is free: the least-squares gain folded into the
    synthesis filters makes the output's projection on y equal to y's level."""
    from cnn_denoise.train import calibrate_gain

    net = small().float()
    x = torch.randn(8, 1, 200) * 0.1
    y = 0.37 * net(x).detach() + 0.01 * torch.randn(8, 1, 200)  # speech the net finds at the wrong level
    gain = calibrate_gain(net, x, y)
    assert gain == pytest.approx(0.37, rel=0.05)
    out = net(x).detach()
    assert (out * y).sum() / out.square().sum() == pytest.approx(1.0, rel=1e-4)  # no gain left to take

"""The speech recipe's masking CNN: its dilated layers against the lab's shift register, causal,
a receptive field and latency that bound what reaches an output sample, in step with x."""

import pytest
import torch
import torch.nn.functional as F

from cnn_denoise.lab.filters import mimo_shift
from cnn_denoise.models.masknet import MaskNet, dilated


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


def small(scale=1.0, centred=0):
    torch.manual_seed(0)
    return MaskNet(
        stride=4, filters=6, width=5, taps=3, dilations=[1, 2, 4], input_scale=scale, centred=centred
    ).double()


@pytest.mark.parametrize("centred", [0, 2, 4])
def test_causal_output_depends_only_on_the_past_and_within_the_receptive_field(centred):
    net, n, j = small(centred=centred), 200, 97
    x = torch.randn(1, 1, n, dtype=torch.float64)
    bumped = x.clone()
    bumped[..., j] += 1.0
    changed = (net.causal(bumped) - net.causal(x)).abs()[0, 0] > 1e-12
    where = changed.nonzero().flatten()
    assert where.min() > j  # nothing before the change moves (frames write after what they saw)
    assert where.max() < j + net.receptive_field  # and nothing past the receptive field


@pytest.mark.parametrize("centred", [0, 2])
def test_forward_is_causal_shifted_back_by_the_latency(centred):
    net = small(scale=30.0, centred=centred)
    x = torch.randn(3, 1, 160, dtype=torch.float64) * 0.01
    L = net.latency
    longer = torch.nn.functional.pad(x, (0, L))
    torch.testing.assert_close(net(x), net.causal(longer)[..., L:])


def centred_by_padding(net: MaskNet, x: torch.Tensor) -> torch.Tensor:
    """The in-step output written out directly: each centred layer pads its input with d zeros
    after the end and (K - 1) d - d before, as a non-causal convolution does; nothing delayed.
    The signal is preceded by silence (zeros, whole frames, enough for every layer's reach)."""
    S, L, n, before = net.stride, 2 * net.stride, x.shape[-1], 64 * net.stride
    xs = F.pad(x * net.input_scale, (before + L - S, (-n) % S + L))  # and whole frames past the end
    E = torch.relu(F.conv1d(xs, net.enc.permute(2, 1, 0).flip(-1), stride=S))
    Z = torch.einsum("bft,fg->bgt", E, net.inp)
    for H, d in zip(net.H, net.dilations, strict=True):
        K, a = H.shape[0], ((H.shape[0] - 1) // 2) * d if d <= net.centred else 0
        Z = Z + torch.tanh(F.conv1d(F.pad(Z, ((K - 1) * d - a, a)), H.permute(2, 1, 0).flip(-1), dilation=d))
    M = torch.sigmoid(torch.einsum("bgt,gf->bft", Z, net.mask))
    frames = torch.einsum("bft,fl->blt", E * M, net.dec)
    y = F.fold(frames, (1, frames.shape[-1] * S + L - S), (1, L), stride=(1, S)).flatten(1)[:, None]
    y = F.pad(y, (S, 0))[..., before + 2 * S :]  # the silence and the analysis frame's lag taken off
    return y[..., :n] / net.input_scale


@pytest.mark.parametrize("centred", [0, 1, 2, 4])
def test_centred_layers_are_non_causal_convolutions_in_step(centred):
    """Computed causally with delays (what a stream needs), the centred network equals the one
    whose centred layers see the future directly after silence, but for the last frames, whose
    future the padded zeros stand in for differently."""
    net = small(scale=30.0, centred=centred)
    assert net.lookahead == {0: 0, 1: 1, 2: 3, 4: 7}[centred]  # dilations [1, 2, 4], one tap ahead each
    x = torch.randn(2, 1, 240, dtype=torch.float64) * 0.03
    keep = 240 - (net.lookahead + 3) * net.stride
    torch.testing.assert_close(net(x)[..., :keep], centred_by_padding(net, x)[..., :keep])


def test_centred_layers_let_a_frame_hear_what_follows_it():
    """Centred, the in-step output moves lookahead frames (x stride samples) before a change of
    the input; causal, it moves less than one analysis window early."""
    x = torch.randn(1, 1, 200, dtype=torch.float64)
    bumped = x.clone()
    bumped[..., 120] += 1.0
    first = {}
    for c in (0, 4):
        net = small(centred=c)
        first[c] = ((net(bumped) - net(x)).abs()[0, 0] > 1e-12).nonzero().min().item()
        assert net.latency == (2 + net.lookahead) * net.stride
    assert first[0] >= 120 - 2 * 4  # the analysis window (2 x stride samples) reaches back
    assert 120 - (7 + 2) * 4 <= first[4] <= 120 - 7 * 4


def test_zeros_map_to_zeros_and_scale_passes_through():
    net = small(scale=30.0)
    assert net(torch.zeros(1, 1, 64, dtype=torch.float64)).abs().max() == 0  # no bias anywhere
    x = torch.randn(1, 1, 64, dtype=torch.float64)
    net_unscaled = small(scale=1.0)
    torch.testing.assert_close(net(x / 30.0) * 30.0, net_unscaled(x))  # Phi(x) = CNN(s x) / s


def test_calibrate_gain_brings_the_output_to_the_speechs_level():
    """After the si_sdr loss the output level is free: the least-squares gain folded into the
    synthesis filters makes the output's projection on y equal to y's level."""
    from cnn_denoise.training.fit import calibrate_gain

    net = small().float()
    x = torch.randn(8, 1, 200) * 0.1
    y = 0.37 * net(x).detach() + 0.01 * torch.randn(8, 1, 200)  # speech the net finds at the wrong level
    gain = calibrate_gain(net, x, y)
    assert gain == pytest.approx(0.37, rel=0.05)
    out = net(x).detach()
    assert (out * y).sum() / out.square().sum() == pytest.approx(1.0, rel=1e-4)  # no gain left to take


def test_filterbank_start_passes_the_input_through_at_half_gain():
    """train.init filterbank: analysis then synthesis reconstruct the input exactly, so with the
    mask at 1/2 (its weights zero) the untrained network is x / 2, lagged or not."""
    torch.manual_seed(0)
    net = MaskNet(stride=8, filters=32, width=5, taps=3, dilations=[1, 2], input_scale=30.0).double()
    net.start_as_filterbank()
    with torch.no_grad():
        net.mask.zero_()
    x = torch.randn(2, 1, 333, dtype=torch.float64)  # not a whole number of frames
    torch.testing.assert_close(net(x), x / 2)
    lagged = net.causal(x)
    torch.testing.assert_close(lagged[..., net.latency :], x[..., : -net.latency] / 2)
    assert lagged[..., : net.latency].abs().max() < 1e-12  # before its first frame: nothing


def test_filterbank_start_analyses_with_the_dct_of_windowed_frames():
    """Its features are the positive and negative parts of SciPy's orthonormal DCT-II of each
    frame under a square-root Hann window."""
    import numpy as np
    import scipy.fft

    net = MaskNet(stride=4, filters=16, width=3, taps=2, dilations=[1]).double()
    net.start_as_filterbank()
    L, x = 8, np.random.default_rng(0).standard_normal(40)
    window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(L) / L))
    padded = np.pad(x, (L - 4, 0))
    frames = np.stack([padded[t * 4 : t * 4 + L] for t in range(10)])
    coefficients = scipy.fft.dct(frames * window, norm="ortho", axis=1)
    E = (
        torch.relu(
            torch.nn.functional.conv1d(torch.tensor(padded)[None, None], net.enc.permute(2, 1, 0).flip(-1), stride=4)
        )[0]
        .T.detach()
        .numpy()
    )
    np.testing.assert_allclose(E, np.maximum(np.concatenate([coefficients, -coefficients], 1), 0), atol=1e-12)


def test_filterbank_start_needs_four_filters_per_sample_of_stride():
    with pytest.raises(ValueError, match="filters = 4 x stride = 16"):
        MaskNet(stride=4, filters=6, width=3, taps=2, dilations=[1]).start_as_filterbank()


def test_dropout_acts_in_training_steps_only_and_is_seeded():
    """model.masknet.dropout: in evaluation (enhance, streaming) the network gives exactly what the
    same weights give without it; in a training step it draws from torch's generator (two steps
    differ, the same seed gives the same output); the spec keeps it only when set, so a
    checkpoint without it is as before."""
    from cnn_denoise.models.model import from_spec

    net, x = small(), torch.randn(2, 1, 120, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.manual_seed(0)
    dropped = MaskNet(stride=4, filters=6, width=5, taps=3, dilations=[1, 2, 4], dropout=0.3).double()
    dropped.load_state_dict(net.state_dict())
    net.eval(), dropped.eval()
    torch.testing.assert_close(dropped(x), net(x), rtol=0, atol=0)
    dropped.train()
    torch.manual_seed(7)
    first = dropped(x)
    assert not torch.equal(first, dropped(x)) and not torch.equal(first, net(x))
    torch.manual_seed(7)
    assert torch.equal(first, dropped(x))
    assert "dropout" not in net.spec() and dropped.spec()["dropout"] == 0.3
    assert from_spec(dropped.spec()).dropout == 0.3


def test_a_dropout_checkpoint_loads_and_a_bad_dropout_is_refused(tmp_path):
    """A network trained with dropout saves and loads through the checkpoint (its evaluation output
    the same); a spec whose dropout is no share of 1 is refused in one line naming it."""
    from cnn_denoise.common.errors import PipelineError
    from cnn_denoise.models import checkpoint as ckpt

    torch.manual_seed(0)
    net = MaskNet(stride=4, filters=6, width=5, taps=3, dilations=[1, 2, 4], dropout=0.25).eval()
    ckpt.save(net, tmp_path / "m.pt")
    again = ckpt.load(tmp_path / "m.pt")
    x = torch.randn(1, 1, 64)
    assert again.dropout == 0.25 and torch.equal(again(x), net(x))
    checkpoint = torch.load(tmp_path / "m.pt", weights_only=True)
    checkpoint["spec"]["dropout"] = 1.5
    torch.save(checkpoint, tmp_path / "bad.pt")
    with pytest.raises(PipelineError, match=r"spec dropout is 1\.5, not a number in \[0, 1\); retrain it"):
        ckpt.load(tmp_path / "bad.pt")

"""policy.py: the enhance rules' arithmetic, against plain NumPy where it does not overflow and
against the same recording at an ordinary level where it would."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.enhance import policy


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 500), min_size=1, max_size=6),
    st.integers(0, 2**32 - 1),
    st.sampled_from([1e-300, 1e-200, 1.0, 1e200, 1e300]),
)
def test_level_is_the_rms_at_any_magnitude(sizes, seed, magnitude):
    x = np.random.default_rng(seed).standard_normal(sum(sizes))
    level = policy.Level()
    for block in np.split(x * magnitude, np.cumsum(sizes)[:-1]):
        level.add(block)
    assert level.rms == pytest.approx(np.sqrt(np.mean(x**2)) * magnitude, rel=1e-12)


def test_level_of_silence_is_zero():
    level = policy.Level()
    level.add(np.zeros(10))
    assert level.rms == 0.0


@pytest.mark.parametrize("rms", [1e-300, 1e-3, 0.3, 1e200, 1e300])
@pytest.mark.parametrize("peak", [1e-6, 2e-3, 0.5])
def test_output_factor_is_finite_and_keeps_full_scale(rms, peak):
    """The output is the model's (peak `peak` at the training level 1e-3) brought back to the
    recording's level rms / 1e-3, scaled down as a whole where that passes full scale."""
    factor, clipped = policy.output_factor(peak, rms, 1e-3)
    assert math.isfinite(factor) and 0 < factor and 0 < clipped <= 1
    out_peak = peak * factor
    assert out_peak <= policy.FULL_SCALE * (1 + 1e-15)
    if clipped == 1.0:
        assert factor == pytest.approx(rms / 1e-3)  # not clipped: the level undone exactly
    else:
        assert out_peak == pytest.approx(policy.FULL_SCALE) and peak * rms / 1e-3 > 1


def test_silence_out_needs_no_factor():
    assert policy.output_factor(0.0, 0.5, 1e-3) == (0.0, 1.0)


@pytest.mark.parametrize(
    "rate, model_rate, message",
    [
        (0, 32000, "has a sample rate of 0, not a whole number of Hz from 1 to 768000"),
        (800_000, 32000, "has a sample rate of 800000"),
        (44100.0, 32000, "has a sample rate of 44100.0"),
        (700_001, 32000, "its resampling filter would need 14000021 taps"),
    ],
)
def test_rates_refused(rate, model_rate, message):
    with pytest.raises(PipelineError, match=message):
        policy.ratio(rate, model_rate, "x.wav")


def test_rates_in_lowest_terms():
    assert policy.ratio(48000, 32000, "x") == (2, 3) and policy.ratio(1, 32000, "x") == (32000, 1)
    assert policy.ratio(44099, 32000, "x") == (32000, 44099)


def test_help_text_holds_every_rule_once():
    lines = policy.help_text().splitlines()
    assert [line.split()[0] for line in lines if not line.startswith(" " * 3)] == ["policies:", *policy.RULES]
    assert max(map(len, lines)) <= 100

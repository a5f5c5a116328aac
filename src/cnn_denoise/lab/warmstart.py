"""Start a CNN as the best linear filter, so that training only has to find what the
nonlinearity adds (a recipe beyond the lab: `train.init: linear`).

On this data the least-squares FIR filter is already within a fraction of a dB of what the
CNN's receptive field allows (speech below 2 kHz, noise at 14-15.5 kHz), and gradient descent
from random weights approaches it only slowly. What a linear filter cannot do is silence the
small residual noise it lets through in the pauses between syllables; a tanh layer can: a few
hidden units that see the filter's output at gains near that residual's level saturate on
speech but not on the residual, and an output layer mixing them with a linear unit makes a
noise gate. So, for a CNN with taps [K, 1], features [1, G, 1] and a linear last layer:

- hidden unit 0 is the least-squares filter h (closed form, training set, K = the receptive
  field) at a gain small enough that tanh is linear on it, and the output layer undoes that
  gain: the CNN starts as exactly that linear filter (up to tanh's cubic term, < 1e-5);
- hidden units 1..G-1 are h at gains whose tanh knee sits at r/2, r, 2r, ... where r is the
  RMS of the filter's residual on the training set; their output weights start at 0.
"""

import torch

from cnn_denoise.config import choices
from cnn_denoise.lab.baselines import apply_fir, fit_fir

LINEAR_RANGE = 1e-2  # hidden unit 0 sees at most this (tanh(v) = v to ~3e-5 relative)


@torch.no_grad()
def linear_start(model, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Set `model`'s weights as above from the training set (x, y: [Q, 1, N]); return the
    filter's numbers: {"taps", "residual_rms", "gains"} (gains per unit of scaled input)."""
    if why := choices.linear_start_problem(model.taps, model.features, model.last_activation):
        raise ValueError(f"{why}; set those or train.init xavier")
    taps, hidden, s = model.taps[0], model.features[1], model.input_scale
    h = fit_fir(x, y, taps)
    u = apply_fir(h, x).double()
    peak = u.abs().max().item()
    if peak == 0:
        from cnn_denoise.common.errors import PipelineError

        raise PipelineError(
            "train.init linear: the least-squares filter of the training set outputs silence (silent recordings?), "
            "so there is nothing to start from; check the data or use train.init xavier"
        )
    residual = max(
        (u - y.double()).square().mean().sqrt().item(), 1e-9 * peak
    )  # an exact linear fit still gives the gate a finite gain
    gains = [LINEAR_RANGE / (s * peak)] + [1.0 / (s * residual * 2.0 ** (j - 1)) for j in range(hidden - 1)]
    first, last = model.layers
    first.H.copy_((h[:, None, None] * torch.tensor(gains, dtype=torch.float64)).to(first.H))
    out = torch.zeros(1, hidden, 1, dtype=torch.float64)
    out[0, 0, 0] = 1.0 / gains[0]
    last.H.copy_(out.to(last.H))
    return {"taps": taps, "residual_rms": residual, "gains": gains}

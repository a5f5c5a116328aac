"""Convolutional neural networks built from MIMO filters (Lab 2B, Tasks 1 and 3).

    X_0 = X,   X_l = tanh(sum_k S^k X_{l-1} H_{lk}),   Phi(X) = X_L

The lab's text puts tanh on every layer (the default); the course's code left the last
layer linear, which `last_activation="linear"` reproduces.
"""

import torch
import torch.nn as nn

from . import spec
from .errors import PipelineError
from .filters import MIMOFilter, chains, toeplitz_chain


class MIMOCNN(nn.Module):
    """Task 3: L layers with taps [K_1..K_L] and features [F_0..F_L]."""

    def __init__(
        self, taps, features, last_activation: str = spec.TANH, backend: str = spec.AUTO, input_scale: float = 1.0
    ):
        super().__init__()
        taps, features = list(taps), list(features)
        if why := spec.shape_problem(taps, features):
            raise ValueError(f"MIMOCNN: {why}")
        spec.choose(last_activation, spec.ACTIVATIONS, "MIMOCNN last_activation")
        if not input_scale > 0:
            raise ValueError(f"MIMOCNN: input_scale must be > 0, got {input_scale!r}")
        self.taps, self.features, self.last_activation = taps, features, last_activation
        # Phi(x) = CNN(s x) / s: with s ~ 1/peak, tanh sees signals of order 1 instead of 1e-3
        self.input_scale = float(input_scale)
        self.layers = nn.ModuleList(
            MIMOFilter(k, f_in, f_out, backend=backend)
            for k, f_in, f_out in zip(taps, features[:-1], features[1:], strict=True)
        )

    @property
    def receptive_field(self) -> int:
        """How many input samples (the current one and the past) reach one output sample."""
        return spec.receptive_field(self.taps)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        tanh_after = [i < last or self.last_activation == spec.TANH for i in range(last + 1)]
        if self.input_scale != 1.0:
            X = X * self.input_scale
        backends = [layer.backend_for(X.device) for layer in self.layers]
        if X.dim() == 3 and X.shape[1] == self.features[0] and chains(backends, self.taps):
            X = toeplitz_chain(X, [layer.H for layer in self.layers], [torch.tanh if t else None for t in tanh_after])
        else:
            for layer, t in zip(self.layers, tanh_after, strict=True):
                X = layer(X)
                if t:
                    X = torch.tanh(X)
        return X / self.input_scale if self.input_scale != 1.0 else X


class CNN(MIMOCNN):
    """Task 1: a single-feature CNN (every layer 1 -> 1); input (batch, N) or (N,)."""

    def __init__(self, taps, last_activation: str = spec.TANH, backend: str = spec.AUTO):
        taps = list(taps)
        super().__init__(taps, [1] * (len(taps) + 1), last_activation=last_activation, backend=backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (1, 2):
            raise ValueError(f"CNN: expected input (batch, N) or (N,), got shape {tuple(x.shape)}")
        return super().forward(x.unsqueeze(-2)).squeeze(-2)


def build(m, seed: int | None = None) -> MIMOCNN:
    """The CNN that params.yaml's `model` section describes (a params.Model, passed whole and
    already checked by the schema); its initial weights depend only on `seed` (when given)."""
    if seed is not None:
        torch.manual_seed(seed)
    return MIMOCNN(m.taps, m.features, m.last_activation, m.backend, m.input_scale)


def save(model: MIMOCNN, path, audio: dict | None = None) -> None:
    """A checkpoint that carries its own spec, so evaluation needs no params, and `audio`:
    what the training recordings were ({"sample_rate": Hz, "input_rms": RMS of the noisy
    inputs}), so `cnn-denoise enhance` can bring other recordings to the same rate and level."""
    from .atomic import save_torch

    spec_ = {
        "taps": model.taps,
        "features": model.features,
        "last_activation": model.last_activation,
        "input_scale": model.input_scale,
    }
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch(path, {"spec": spec_, "state_dict": state, **({"audio": audio} if audio else {})})


def load_checkpoint(path, backend=spec.AUTO) -> tuple[MIMOCNN, dict]:
    """The model a checkpoint of `save` holds, and its `audio` record ({} if it has none);
    a PipelineError naming the file otherwise."""
    try:
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
        model = MIMOCNN(**checkpoint["spec"], backend=backend)
        model.load_state_dict(checkpoint["state_dict"])
        audio = dict(checkpoint.get("audio") or {})
    except FileNotFoundError:
        raise PipelineError(
            f"{path}: no such model file; train one first (dvc repro) or give the path of one"
        ) from None
    except Exception as exc:  # whatever a foreign or corrupt file makes torch.load or the model raise
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise PipelineError(
            f"{path} is not a model checkpoint of this project ({reason}); give a models/model.pt written by "
            "the train stage"
        ) from None
    return model.eval(), audio


def load(path, backend=spec.AUTO) -> MIMOCNN:
    return load_checkpoint(path, backend)[0]

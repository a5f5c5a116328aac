"""Convolutional neural networks built from MIMO filters (Lab 2B, Tasks 1 and 3).

    X_0 = X,   X_l = tanh(sum_k S^k X_{l-1} H_{lk}),   Phi(X) = X_L

The lab's text puts tanh on every layer (the default); the course's code left the last
layer linear, which `last_activation="linear"` reproduces.
"""

import math

import torch
import torch.nn as nn

from . import spec
from .errors import PipelineError
from .filters import MIMOFilter, chains, toeplitz_chain
from .masknet import MaskNet


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


def build(m, seed: int | None = None) -> nn.Module:
    """The network that params.yaml's `model` section describes (a params.Model, passed whole
    and already checked by the schema): the lab's CNN, or with `arch: masknet` the speech
    recipe's masking CNN (masknet.py); its initial weights depend only on `seed` (when given)."""
    if seed is not None:
        torch.manual_seed(seed)
    if m.arch == spec.MASKNET:
        return MaskNet(**m.masknet.model_dump(), input_scale=m.input_scale)
    return MIMOCNN(m.taps, m.features, m.last_activation, m.backend, m.input_scale)


def from_spec(spec_: dict, backend: str = spec.AUTO) -> nn.Module:
    """The (untrained) network a checkpoint's spec describes."""
    if spec_.get("arch") == spec.MASKNET:
        return MaskNet(**{k: v for k, v in spec_.items() if k != "arch"})
    return MIMOCNN(**spec_, backend=backend)


def save(model: MIMOCNN, path, audio: dict | None = None) -> None:
    """A checkpoint that carries its own spec, so evaluation needs no params, and `audio`:
    what the training recordings were ({"sample_rate": Hz, "input_rms": RMS of the noisy
    inputs}), so `cnn-denoise enhance` can bring other recordings to the same rate and level."""
    from .atomic import save_torch

    spec_ = (
        model.spec()
        if isinstance(model, MaskNet)
        else {
            "taps": model.taps,
            "features": model.features,
            "last_activation": model.last_activation,
            "input_scale": model.input_scale,
        }
    )
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch(path, {"spec": spec_, "state_dict": state, **({"audio": audio} if audio else {})})


# What a checkpoint may declare: params.yaml's bounds on model.*, and at most MAX_WEIGHTS weights
# in all (256 MiB of float32). Its shapes are checked against these and its tensors against its
# shapes before the model is built, so a few bytes declaring a huge model allocate nothing, and
# what a file can make us allocate is bounded by what it holds.
MAX_LAYERS, MAX_TAPS, MAX_FEATURES, MAX_INPUT_SCALE = 100, 100_000, 1024, 1e12
MAX_WEIGHTS = 1 << 26
MAX_CHECKPOINT_BYTES = 4 * MAX_WEIGHTS + (1 << 20)  # float32 weights and room for the pickle around them
SPEC_KEYS = {"taps", "features", "last_activation", "input_scale"}


def _int_list(value, name: str, most: int, longest: int) -> str | None:
    if not isinstance(value, list) or not 1 <= len(value) <= longest:
        return f"spec {name} is {type(value).__name__} of {len(value) if isinstance(value, list) else '?'} entries"
    if any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= most for v in value):
        return (
            f"spec {name} {value[:8]}{'...' if len(value) > 8 else ''} holds a value that is not an integer 1..{most}"
        )
    return None


MASKNET_KEYS = {"arch", "stride", "filters", "width", "taps", "dilations", "input_scale", "centred"}


def _masknet_shapes(s: dict) -> dict:
    L, N, W, K = 2 * s["stride"], s["filters"], s["width"], s["taps"]
    layers = {f"H.{i}": (K, W, W) for i in range(len(s["dilations"]))}
    return {"enc": (L, 1, N), "inp": (N, W), **layers, "mask": (W, N), "dec": (N, L)}


def _shapes(spec_: dict) -> dict:
    """The state_dict's tensor shapes the (checked) spec declares."""
    if spec_.get("arch") == spec.MASKNET:
        return _masknet_shapes(spec_)
    taps, features = spec_["taps"], spec_["features"]
    return {
        f"layers.{i}.H": (k, f, g) for i, (k, f, g) in enumerate(zip(taps, features[:-1], features[1:], strict=True))
    }


def _scale_problem(spec_) -> str | None:
    scale = spec_.get("input_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale <= MAX_INPUT_SCALE:
        return f"spec input_scale is {scale!r}, not a number in (0, {MAX_INPUT_SCALE:g}]"
    return None


def _masknet_problem(spec_: dict) -> str | None:
    # checkpoints from before centred lack it (0); dropout is kept only when it was set
    if not MASKNET_KEYS - {"centred"} <= set(spec_) <= MASKNET_KEYS | {"dropout"}:
        return f"its spec is {sorted(map(str, spec_))}, expected {sorted(MASKNET_KEYS)}"
    centred = spec_.get("centred", 0)
    if isinstance(centred, bool) or not isinstance(centred, int) or not 0 <= centred <= 1 << 16:
        return f"spec centred is {centred!r}, not an integer 0..{1 << 16}"
    dropout = spec_.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, float | int) or not 0 <= dropout < 1:
        return f"spec dropout is {dropout!r}, not a number in [0, 1)"
    for key, most in (("stride", 4096), ("filters", MAX_FEATURES), ("width", MAX_FEATURES), ("taps", 64)):
        if why := _int_list([spec_[key]], key, most, 1):
            return why
    if why := _int_list(spec_["dilations"], "dilations", 1 << 16, 64):
        return why
    weights = sum(math.prod(shape) for shape in _masknet_shapes(spec_).values())
    if weights > MAX_WEIGHTS:
        return f"its spec declares {weights} weights, more than the {MAX_WEIGHTS} a model here may have"
    return _scale_problem(spec_)


def _spec_problem(spec_) -> str | None:
    """Why a checkpoint's spec is not one this project could have trained, or None."""
    if isinstance(spec_, dict) and spec_.get("arch") == spec.MASKNET:
        return _masknet_problem(spec_)
    if not isinstance(spec_, dict) or not {"taps", "features"} <= set(spec_) or set(spec_) - SPEC_KEYS:
        keys = sorted(map(str, spec_)) if isinstance(spec_, dict) else type(spec_).__name__
        return f"its spec is {keys}, expected {sorted(SPEC_KEYS)}"
    taps, features = spec_["taps"], spec_["features"]
    if why := _int_list(taps, "taps", MAX_TAPS, MAX_LAYERS) or _int_list(
        features, "features", MAX_FEATURES, MAX_LAYERS + 1
    ):
        return why
    if why := spec.shape_problem(taps, features):
        return f"spec: {why}"
    weights = sum(k * f * g for k, f, g in zip(taps, features[:-1], features[1:], strict=True))
    if weights > MAX_WEIGHTS:
        return f"its spec declares {weights} weights, more than the {MAX_WEIGHTS} a model here may have"
    if spec_.get("last_activation", spec.TANH) not in spec.ACTIVATIONS:
        return f"spec last_activation is {spec_['last_activation']!r}, not one of {', '.join(spec.ACTIVATIONS)}"
    return _scale_problem(spec_)


def _weights_problem(spec_, state) -> str | None:
    """Why the state_dict does not hold exactly the finite weights the spec declares, or None.
    Checked on the loaded tensors' metadata first: a broadcast view (one stored number shown as
    a billion) has the right shape but not the numbers."""
    shapes = _shapes(spec_)
    if not isinstance(state, dict) or set(state) != set(shapes):
        keys = sorted(map(str, state))[:6] if isinstance(state, dict) else type(state).__name__
        return f"its state_dict holds {keys}, expected {sorted(shapes)[:6]}"
    for name, shape in shapes.items():
        t = state[name]
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or tuple(t.shape) != shape:
            got = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
            return f"{name} is {got}, expected {shape} float"
        if t.untyped_storage().nbytes() < t.numel() * t.element_size() or not t.is_contiguous():
            return f"{name} shows {t.numel()} weights but does not store them (a broadcast view)"
        if not torch.isfinite(t).all():
            return f"{name} holds NaN or infinite weights (a diverged or corrupt model)"
    return None


def load_checkpoint(path, backend=spec.AUTO) -> tuple[MIMOCNN, dict]:
    """The model a checkpoint of `save` holds, and its `audio` record ({} if it has none);
    a PipelineError naming the file and the problem otherwise, found before the model is built."""
    import os

    from .errors import first_line

    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise PipelineError(
            f"{path}: no such model file; train one first (dvc repro) or give the path of one"
        ) from None
    if size > MAX_CHECKPOINT_BYTES:
        raise PipelineError(
            f"{path} is {size} bytes, more than a model checkpoint here can be ({MAX_CHECKPOINT_BYTES}); "
            "give a models/model.pt written by the train stage"
        )
    try:
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # whatever a foreign or corrupt file makes torch.load raise
        raise PipelineError(
            f"{path} is not a model checkpoint of this project ({first_line(exc)}); give a models/model.pt "
            "written by the train stage"
        ) from None
    if not isinstance(checkpoint, dict) or not {"spec", "state_dict"} <= set(checkpoint):
        raise PipelineError(
            f"{path} is not a model checkpoint of this project (expected a dict with spec and state_dict); "
            "give a models/model.pt written by the train stage"
        )
    audio = checkpoint.get("audio") or {}
    why = _spec_problem(checkpoint["spec"]) or _weights_problem(checkpoint["spec"], checkpoint["state_dict"])
    if why is None and not isinstance(audio, dict):
        why = f"its audio record is a {type(audio).__name__}, expected a dict"
    if why:
        raise PipelineError(
            f"{path} is not a usable model checkpoint: {why}; retrain it (dvc repro -f train) or give another"
        )
    model = from_spec(checkpoint["spec"], backend)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), dict(audio)


def load(path, backend=spec.AUTO) -> MIMOCNN:
    return load_checkpoint(path, backend)[0]

"""Checkpoints: a model's weights with the spec that rebuilds it and the audio it was trained on.

A checkpoint is checked against what a model here may declare before anything is built, so a
few bytes cannot make us allocate much: bounds on its shapes, then its tensors against them.
"""

import math

import torch

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.config import choices
from cnn_denoise.lab.cnn import MIMOCNN
from cnn_denoise.models.masknet import MaskNet
from cnn_denoise.models.model import from_spec


def save(model: MIMOCNN, path, audio: dict | None = None) -> None:
    """A checkpoint that carries its own spec, so evaluation needs no params, and `audio`:
    what the training recordings were ({"sample_rate": Hz, "input_rms": RMS of the noisy
    inputs}), so `cnn-denoise enhance` can bring other recordings to the same rate and level."""
    from cnn_denoise.common.atomic import save_torch

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
    if spec_.get("arch") == choices.MASKNET:
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
    if isinstance(spec_, dict) and spec_.get("arch") == choices.MASKNET:
        return _masknet_problem(spec_)
    if not isinstance(spec_, dict) or not {"taps", "features"} <= set(spec_) or set(spec_) - SPEC_KEYS:
        keys = sorted(map(str, spec_)) if isinstance(spec_, dict) else type(spec_).__name__
        return f"its spec is {keys}, expected {sorted(SPEC_KEYS)}"
    taps, features = spec_["taps"], spec_["features"]
    if why := _int_list(taps, "taps", MAX_TAPS, MAX_LAYERS) or _int_list(
        features, "features", MAX_FEATURES, MAX_LAYERS + 1
    ):
        return why
    if why := choices.shape_problem(taps, features):
        return f"spec: {why}"
    weights = sum(k * f * g for k, f, g in zip(taps, features[:-1], features[1:], strict=True))
    if weights > MAX_WEIGHTS:
        return f"its spec declares {weights} weights, more than the {MAX_WEIGHTS} a model here may have"
    if spec_.get("last_activation", choices.TANH) not in choices.ACTIVATIONS:
        return f"spec last_activation is {spec_['last_activation']!r}, not one of {', '.join(choices.ACTIVATIONS)}"
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


def _numbers(value, count: int | None = None) -> bool:
    items = value if isinstance(value, list) else [value] if count is None else None
    return (
        items is not None
        and (count is None or len(items) == count)
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in items)
    )


# what `info` and `enhance` print of a checkpoint's audio record, and the type each must have
TRAINED_ON = {
    "speech": lambda v: isinstance(v, str),
    "kinds": lambda v: isinstance(v, list) and all(isinstance(k, str) for k in v),
    "snr_db": lambda v: _numbers(v, 2),
    "band_hz": lambda v: _numbers(v, 2),
    "speed": lambda v: _numbers(v, 2),
    "formant": lambda v: _numbers(v, 2),
    "eq": _numbers,
    "kind_weights": lambda v: isinstance(v, dict) and all(isinstance(k, str) and _numbers(w) for k, w in v.items()),
}


def _audio_problem(audio: dict) -> str | None:
    """Why a checkpoint's audio record cannot be shown (a value of the wrong type), or None."""
    for key in ("test_si_sdr_db", "noisy_si_sdr_db"):
        if key in audio and not _numbers(audio[key]):
            return f"its audio record's {key} is a {type(audio[key]).__name__}, expected a finite number"
    about = audio.get("trained_on")
    if about is None:
        return None
    if not isinstance(about, dict):
        return f"its audio record's trained_on is a {type(about).__name__}, expected a mapping"
    for key, fits in TRAINED_ON.items():
        if about.get(key) is not None and not fits(about[key]):
            return f"its audio record's trained_on.{key} is a {type(about[key]).__name__} of the wrong shape"
    return None


def load_checkpoint(path, backend=choices.AUTO) -> tuple[MIMOCNN, dict]:
    """The model a checkpoint of `save` holds, and its `audio` record ({} if it has none);
    a PipelineError naming the file and the problem otherwise, found before the model is built."""
    import os
    import stat

    from cnn_denoise.common.errors import first_line

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise PipelineError(
            f"{path}: no such model file; train one first (dvc repro) or give the path of one"
        ) from None
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the read forever, a device never end
        raise PipelineError(
            f"{path} is not a regular file (a folder, a pipe or a device); give the path of a models/model.pt"
        )
    size = st.st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise PipelineError(
            f"{path} is {size} bytes, more than a model checkpoint here can be ({MAX_CHECKPOINT_BYTES}); "
            "give a models/model.pt written by the train stage"
        )
    try:
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # whatever a foreign or corrupt file makes torch.load raise
        if "Weights only load failed" in str(exc):  # torch's message goes on to say how to unpickle it anyway
            raise PipelineError(
                f"{path} is not a model checkpoint of this project: not a weights-only one (it pickles Python "
                "objects, which could run code when loaded), so it is not loaded; give a models/model.pt written by "
                "the train stage"
            ) from None
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
    why = why or _audio_problem(audio)
    if why:
        raise PipelineError(
            f"{path} is not a usable model checkpoint: {why}; retrain it (dvc repro -f train) or give another"
        )
    model = from_spec(checkpoint["spec"], backend)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), dict(audio)


def load(path, backend=choices.AUTO) -> MIMOCNN:
    return load_checkpoint(path, backend)[0]

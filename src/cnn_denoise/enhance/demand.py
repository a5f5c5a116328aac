"""What a model may ask of a stream, checked before anything is allocated: torch-free, so
that a model on onnxruntime (engine.py) is held to the same bounds without importing PyTorch."""

# What a model may ask of a stream, per channel: the input samples it keeps as context (its
# receptive field, back to the first sample that reaches an output) and the activations one call
# holds over that context. A checkpoint sets both with a few numbers (a dilation of 65536 frames
# is one integer in its spec), so they are checked when the model is loaded, before anything is
# allocated, and a call of the model is sized by them (denoiser.plan).
MAX_CONTEXT = 1 << 20  # samples of one channel
MAX_CONTEXT_SECONDS = 60.0  # of audio at the model's rate: more than any recording it trained on
MAX_CONTEXT_FLOATS = 1 << 24  # activations of one call over the context, one channel (float32: 64 MiB)


def floats_per_sample(model) -> float:
    """Activations one call of the model holds per input sample and channel, roughly: a
    masknet says (its frames share them), the lab's CNN holds each layer's input and output and,
    with the FFT backend, the spectra of its filters."""
    own = getattr(model, "floats_per_sample", None)
    if own is not None:
        return float(own)
    layers = list(zip(model.features[:-1], model.features[1:], strict=True))
    return float(sum(f + g for f, g in layers) + max(f * g for f, g in layers))


def demand_problem(model, rate: int) -> str | None:
    """Why a stream could not run `model` (trained at `rate` Hz) in bounded memory and time,
    with the fix, or None."""
    field = int(model.receptive_field)
    if field > MAX_CONTEXT or field > MAX_CONTEXT_SECONDS * rate:
        return (
            f"its receptive field is {field} samples ({field / rate:.3g} s at its {rate} Hz), more than the "
            f"{MAX_CONTEXT} samples and {MAX_CONTEXT_SECONDS:g} s a stream here keeps as context; give a model "
            "that hears less of the past (smaller dilations, fewer taps or layers, a shorter stride)"
        )
    floats = field * floats_per_sample(model)
    if floats > MAX_CONTEXT_FLOATS:
        return (
            f"one call over its receptive field of {field} samples holds about {floats:.3g} activations per "
            f"channel, more than the {MAX_CONTEXT_FLOATS} a stream here allows; give a narrower model (fewer "
            "filters or width, a longer stride) or one that hears less of the past"
        )
    return None

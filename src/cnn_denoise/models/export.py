"""A trained model as ONNX files that onnxruntime runs without PyTorch (`cnn-denoise export`):

    model.onnx         the whole signal: noisy (batch, 1, n) -> clean (batch, 1, n), in step,
                       n a multiple of the frame (metadata "stride": pad with zeros, trim)
    model.stream.onnx  one block: block (channels, 1, n), state0.. -> out, new_state0..: the
                       Stepper (stepper.py), n any multiple of the frame, the state explicit
                       as DTLN's exported models carry theirs

Both carry the model's rate, training level, frame, lag and training record as metadata, so
`enhance`/`stream --engine onnx` need nothing else. Written through torch.export (the
exporter's default, which needs the onnx and onnxscript packages), checked against PyTorch by
tests/test_export.py.
"""

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import torch

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.enhance.demand import floats_per_sample
from cnn_denoise.enhance.engine import stream_path
from cnn_denoise.models.stepper import Stepper, WholeSignal

OPSET = 18


def metadata(denoiser) -> dict:
    m = denoiser.model
    stepper = Stepper(m)
    values = {
        "sample_rate": denoiser.sample_rate,
        "input_rms": denoiser.input_rms,
        "stride": stepper.stride,
        "latency": stepper.latency,
        "receptive_field": m.receptive_field,
        "floats_per_sample": floats_per_sample(m),
        "features": list(m.features),
        "audio": denoiser.audio,
    }
    return {k: json.dumps(v) for k, v in values.items()}


def _quiet_export(module, args, path: Path, names, dynamic_shapes, meta: dict) -> None:
    """torch.export, then the ONNX exporter, its progress lines and warnings kept off the
    terminal; the metadata added; written whole (one file, no external data)."""
    from cnn_denoise.common.atomic import atomic_path

    log = logging.getLogger("torch")
    level, log.level = log.level, logging.ERROR
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(module, args, dynamic_shapes=dynamic_shapes)
            onnx = torch.onnx.export(
                program, args, input_names=names[0], output_names=names[1], opset_version=OPSET, dynamo=True
            )
        onnx.model.metadata_props.update(meta)
        with atomic_path(path, "export") as tmp:
            onnx.save(str(tmp), external_data=False)
    finally:
        log.level = level


def export(denoiser, path) -> tuple[Path, Path]:
    """Write the whole-signal graph to `path` and the streaming graph beside it
    (stream_path); returns both paths."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise PipelineError(f"{path} does not end in .onnx; give an output like -o model.onnx")
    if path.parent and not path.parent.is_dir():
        raise PipelineError(f"{path.parent} is not a folder; create it first or give another -o")
    model = denoiser.model.float().eval()
    meta = metadata(denoiser)
    stepper = Stepper(model).eval()
    state = stepper.initial_state(2)  # 2, not 1: torch.export fixes a dimension of size 1
    S = stepper.stride
    channels, frames = torch.export.Dim("channels", min=1, max=1 << 14), torch.export.Dim("frames", min=1)
    samples = frames * S if S > 1 else torch.export.Dim("samples", min=1)
    block = torch.zeros(2, 1, 2 * S)
    states = [f"state{i}" for i in range(len(state))]
    names = (["block", *states], ["out", *(f"new_{s}" for s in states)])
    shapes = {"block": {0: channels, 2: samples}, "state": tuple({0: channels} for _ in state)}
    with torch.no_grad():
        _quiet_export(stepper, (block, *state), stream_path(path), names, shapes, meta)
        whole = WholeSignal(model).eval()
        n = torch.export.Dim("n_frames", min=1) * S if S > 1 else torch.export.Dim("n", min=1)
        dims = {"x": {0: torch.export.Dim("batch", min=1, max=1 << 14), 2: n}}
        _quiet_export(whole, (torch.zeros(2, 1, 4 * S),), path, (["noisy"], ["clean"]), dims, meta)
    return path, stream_path(path)

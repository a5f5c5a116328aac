"""What runs a model one block at a time: PyTorch (models/stepper.py's Stepper) or onnxruntime
(the streaming graph `cnn-denoise export` writes), behind one interface, so `stream` and
`enhance --engine onnx` are the same code on either.

An engine steps (channels, 1, n) float32 blocks of whole frames with an explicit state;
BlockStream turns that into a stream of (channels, n) float64 blocks of any length: it holds
back the last partial frame, drops the model's lag at the start when asked to align, and
flush() completes the last frame (and the lag) with zeros past the end.

The onnxruntime side never imports torch: an ONNX file carries the rate, level, frame and lag
it needs as metadata (models/export.py writes them), so a user without PyTorch can run it.
"""

import json
from pathlib import Path

import numpy as np

from cnn_denoise.common.errors import PipelineError, first_line

ENGINES = ("torch", "onnx")
META_KEYS = (
    "sample_rate",
    "input_rms",
    "stride",
    "latency",
    "receptive_field",
    "floats_per_sample",
    "features",
    "audio",
)


def stream_path(path) -> Path:
    """model.onnx -> model.stream.onnx, beside it: where export writes the streaming graph."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".onnx") + ".stream.onnx")


class TorchEngine:
    """A PyTorch model through models/stepper.py's Stepper."""

    name = "PyTorch"

    def __init__(self, model):
        from cnn_denoise.models.stepper import Stepper

        self.stepper = Stepper(model)
        self.stride, self.latency = self.stepper.stride, self.stepper.latency

    def start(self, channels: int) -> list:
        return self.stepper.initial_state(channels)

    def step(self, block: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        import torch

        with torch.inference_mode():  # lighter than no_grad per call, and a block is ~150 small calls
            y, *state = self.stepper(torch.from_numpy(block), *state)
        return y.numpy(), state


class OnnxEngine:
    """The streaming graph of an ONNX file written by `cnn-denoise export`, on onnxruntime."""

    name = "onnxruntime"

    def __init__(self, path: str, threads: int | None = None):
        import onnxruntime as ort

        path = str(stream_path(path)) if not path.endswith(".stream.onnx") and stream_path(path).exists() else path

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own error types for a missing, foreign or corrupt file
            raise PipelineError(
                f"{path} is not an ONNX model onnxruntime can run ({first_line(exc)[:160]}); "
                "write one with cnn-denoise export MODEL -o model.onnx"
            ) from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if not set(META_KEYS) <= set(meta):
            raise PipelineError(
                f"{path} is an ONNX model but not one of cnn-denoise export (no rate, level and frame in its "
                "metadata); write one with cnn-denoise export MODEL -o model.onnx"
            )
        if len(self.session.get_inputs()) < 2 and self.session.get_inputs()[0].name != "block":
            raise PipelineError(
                f"{path} is the whole-signal graph and {stream_path(path).name} is not beside it; give the "
                ".stream.onnx file that cnn-denoise export wrote with it"
            )
        self.meta = {k: json.loads(meta[k]) for k in META_KEYS}
        self.stride, self.latency = int(self.meta["stride"]), int(self.meta["latency"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.states = [(i.shape[1], i.shape[2]) for i in self.session.get_inputs()[1:]]

    def start(self, channels: int) -> list:
        return [np.zeros((channels, f, n), np.float32) for f, n in self.states]

    def step(self, block: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        y, *state = self.session.run(None, dict(zip(self.inputs, [block, *state], strict=True)))
        return y, state


class BlockStream:
    """An engine over (channels, n) float64 blocks of any length: each call returns the output
    of the whole frames so far, flush() the rest; in all, as many samples as went in. `align`:
    the output in step with the input (the lag dropped at the start and made up with zeros past
    the end, as the model's forward); otherwise the engine's causal output, `latency` late."""

    def __init__(self, engine, channels: int, align: bool = True):
        self.engine, self.state = engine, engine.start(channels)
        self.pending = np.zeros((channels, 0), np.float32)
        self.lag = self.to_drop = engine.latency if align else 0
        self.pushed = self.returned = 0

    def __call__(self, block: np.ndarray) -> np.ndarray:
        self.pushed += block.shape[-1]
        return self._frames(np.concatenate([self.pending, block.astype(np.float32)], axis=-1))

    def flush(self) -> np.ndarray:
        S, n = self.engine.stride, self.pending.shape[-1]
        want = self.pushed - self.returned
        pad = self.lag + (-(n + self.lag)) % S  # zeros past the end: the last frame, and the lag's
        y = self._frames(np.pad(self.pending, ((0, 0), (0, pad))))[:, :want]  # what is past the input's end goes
        self.returned = self.pushed
        return y

    def _frames(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[-1] // self.engine.stride * self.engine.stride
        x, self.pending = x[:, :n], x[:, n:]
        if n == 0:
            return np.zeros((x.shape[0], 0))
        y, self.state = self.engine.step(np.ascontiguousarray(x[:, None, :]), self.state)
        drop = min(self.to_drop, n)
        self.to_drop -= drop
        y = y[:, 0, drop:].astype(np.float64)
        self.returned += y.shape[-1]
        return y

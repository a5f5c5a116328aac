"""Which engine runs a Denoiser: PyTorch (Denoiser itself) or onnxruntime (OnnxDenoiser, the
streaming graph of `cnn-denoise export` in the same blocks, by the same rules). `load` is what
`enhance`, `stream` and bench/realtime.py call; with engine "onnx" and an .onnx file, torch is
never imported.
"""

from pathlib import Path

from cnn_denoise.enhance.denoiser import Denoiser
from cnn_denoise.enhance.engine import BlockStream, OnnxEngine


def load(source, engine: str = "torch", threads: int | None = None) -> Denoiser:
    """A checkpoint or MLflow URI on PyTorch (engine "torch"), or on onnxruntime ("onnx"):
    an ONNX file of `cnn-denoise export`, or a checkpoint exported to a temp file first.
    `threads`: the engine's threads (None: its default)."""
    source = str(source)
    if engine == "onnx" or source.endswith(".onnx"):  # an ONNX file runs on onnxruntime, named or not
        return OnnxDenoiser.load(source, threads)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return Denoiser.load(source)


class ModelInfo:
    """What Denoiser and denoiser.plan need to know of a model they cannot see (an ONNX file's
    metadata)."""

    def __init__(self, meta: dict):
        self.features, self.receptive_field = list(meta["features"]), int(meta["receptive_field"])
        self.floats_per_sample = float(meta["floats_per_sample"])  # demand.py's bounds hold for it too

    def eval(self) -> "ModelInfo":
        return self


class OnnxDenoiser(Denoiser):
    """A Denoiser whose model runs on onnxruntime (enhance --engine onnx): the same rules, the
    same blocks, its streaming graph in place of PyTorch."""

    def __init__(self, engine: OnnxEngine, name: str):
        meta = engine.meta
        self.engine = engine
        super().__init__(ModelInfo(meta), meta["sample_rate"], meta["input_rms"], name)
        self.audio = meta["audio"]

    @classmethod
    def load(cls, source: str, threads: int | None = None) -> "OnnxDenoiser":
        if source.endswith(".onnx") or not source.startswith(("runs:/", "models:/")) and _is_onnx(source):
            return cls(OnnxEngine(source, threads), source)
        import tempfile

        from cnn_denoise.models.export import export

        with tempfile.TemporaryDirectory() as tmp:  # a checkpoint: exported first (needs PyTorch)
            onnx = Path(tmp) / "model.onnx"
            export(Denoiser.load(source), onnx)
            return cls(OnnxEngine(str(onnx), threads), source)

    def stream(self, channels: int) -> BlockStream:
        return BlockStream(self.engine, channels)

    def block_engine(self) -> OnnxEngine:
        return self.engine


def _is_onnx(path: str) -> bool:
    """An ONNX file starts with a protobuf field 1 (ir_version, a varint): byte 0x08."""
    try:
        with open(path, "rb") as f:
            return f.read(1) == b"\x08"
    except OSError:
        return False

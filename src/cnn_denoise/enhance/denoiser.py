"""Denoise recordings you bring, of any length, sample rate, channel count, level or WAV format,
by the rules of policy.py (`cnn-denoise enhance --help` prints them).

A recording goes through block by block, in one pass per group of channels:

    its blocks -> the training level -> resampled to the model's rate -> the model's Stream
    -> resampled back -> a store (memory for an array, a temp file beside the output for a file)

Each resampled block is computed from a slice of its input wide enough for the resampler's
filter (`resampled_blocks`), and a `Window` serves those slices from the blocks upstream, so a
pass holds a few blocks whatever the recording's length. Blocks shrink, and channels split into
groups, so that a pass holds about BUDGET samples whatever the rate ratio or channel count
(`Plan`). The output leaves the store scaled by one factor once its peak is known (the
clipping rule), through the same gate as every array the program writes.
"""

import sys
import tempfile
import warnings
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import scipy.signal

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.enhance import policy
from cnn_denoise.enhance.demand import demand_problem, floats_per_sample

BLOCK = 1 << 16  # samples of one channel per block, at most, on either side of a resampler
BUDGET = 1 << 24  # float64 samples a pass holds at once, all its blocks and channels together (roughly)
HOLD = 12  # samples held per sample of a block: two windows, resample_poly's slices in and out, copies
READ = 1 << 20  # samples read from a file, or from a store, at once (a frame's channels come together)
MODEL_FLOATS = 1 << 24  # float32 activations of one call of the model (roughly)
FILTER_HALF_WIDTH = 10  # resample_poly's default filter reaches 10 * max(up, down) upsampled samples each side
FAULTY_MODEL = "its weights overflow float32; retrain it or give another checkpoint"


@lru_cache(maxsize=2)
def _lowpass(max_rate: int) -> np.ndarray:
    """resample_poly's own filter for up/down with max(up, down) = max_rate, designed once per
    rate pair, not once per block."""
    h = scipy.signal.firwin(2 * FILTER_HALF_WIDTH * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))
    h.flags.writeable = False
    return h


def block_step(up: int, down: int, block: int) -> tuple[int, int]:
    """(step, context): the input samples resampled_blocks advances by (a multiple of `down`, so
    block edges map onto output samples, and at least the context, so a slice is at most three
    steps) and the input samples it reads on each side of a step for the filter."""
    reach = FILTER_HALF_WIDTH * max(up, down) // up + 2  # input samples the filter sees each side
    context = -(-reach // down) * down
    return max(down, block // down * down, context), context


def resampled_blocks(read, total: int, up: int, down: int, block: int = BLOCK):
    """Consecutive blocks of scipy.signal.resample_poly(signal, up, down) along the last axis,
    each computed from a slice read(lo, hi) of the input with enough context on both sides
    for the filter; together they equal the whole signal resampled at once. `lo` never
    decreases from one read to the next."""
    if up == down:
        for a in range(0, total, block):
            yield read(a, min(a + block, total))
        return
    step, context = block_step(up, down, block)
    h = _lowpass(max(up, down))
    for a in range(0, total, step):
        b = min(a + step, total)
        lo, hi = max(0, a - context), min(total, b + context)
        y = scipy.signal.resample_poly(read(lo, hi), up, down, axis=-1, window=h)
        first = (a - lo) * up // down
        last = -(-(b * up) // down) - lo * up // down if b == total else (b - lo) * up // down
        yield y[..., first:last]


class Window:
    """read(lo, hi) of a signal that arrives as consecutive blocks (channels, n), for reads whose
    `lo` never decreases (resampled_blocks' reads): it holds the signal from the last `lo` on."""

    def __init__(self, blocks, channels: int):
        self.blocks, self.start, self.held = iter(blocks), 0, np.zeros((channels, 0))

    def __call__(self, lo: int, hi: int) -> np.ndarray:
        if lo < self.start:
            raise ValueError(f"Window: read from {lo}, after reading from {self.start}")
        pieces = [self.held[:, lo - self.start :]]
        self.start, have = lo, pieces[0].shape[1]
        while have < hi - lo:
            pieces.append(next(self.blocks))
            have += pieces[-1].shape[1]
        self.held = np.concatenate(pieces, axis=1) if len(pieces) > 1 else pieces[0]
        return self.held[:, : hi - lo]


class Plan(NamedTuple):
    """How one recording goes through: channels per pass, input samples per block to the model's
    rate and model-rate samples per block back, model-rate samples per call of the model,
    frames per read."""

    group: int
    step_in: int
    step_back: int
    chunk: int
    read: int


def plan(model, channels: int, up: int, down: int) -> Plan:
    """Blocks as long as BLOCK where BUDGET allows them for every channel at once; shorter for
    many channels, down to what the resampler's filter needs; then channels in groups, when
    even those blocks for every channel would pass BUDGET (many channels at an odd rate)."""
    wide = max(up, down)
    span = max(1, min(BLOCK, BUDGET // (HOLD * channels)))  # samples per channel on a resampler's longer side
    step_in = block_step(up, down, max(1, span * down // wide))[0]
    step_back = block_step(down, up, max(1, span * up // wide))[0]
    longest = max(step_in, -(-step_in * up // down), step_back, -(-step_back * down // up))
    group = max(1, min(channels, BUDGET // (HOLD * longest)))
    width, field = floats_per_sample(model), model.receptive_field
    group = max(1, min(group, int(MODEL_FLOATS // (field * width))))  # each channel's context in one call
    chunk = max(field, int(MODEL_FLOATS // (group * width)))
    return Plan(group, step_in, step_back, chunk, max(1, READ // channels))


class ArraySource:
    """A recording in memory, (channels, frames) float64."""

    def __init__(self, frames: np.ndarray, rate, name: str = "the recording"):
        self.data, self.rate, self.name = frames, rate, name
        self.channels, self.frames = frames.shape

    def blocks(self, c0: int, c1: int, size: int):
        for a in range(0, self.frames, size):
            yield self.data[c0:c1, a : a + size]


class ArrayStore:
    """The output in memory, (channels, frames) float64."""

    def __init__(self, channels: int, frames: int):
        self.data = np.zeros((channels, frames))

    def put(self, c0: int, a: int, block: np.ndarray) -> None:
        self.data[c0 : c0 + block.shape[0], a : a + block.shape[1]] = block

    def get(self, a: int, b: int) -> np.ndarray:
        return self.data[:, a:b]


class Denoiser:
    """A trained model with the rate and level it was trained at.

    d = Denoiser.load("models/model.pt")          # or "runs:/<run id>", "models:/name@alias"
    clean = d(noisy, sample_rate)                  # NumPy or torch; (n,) or (n, channels)

    model: a network taking (batch, 1, n) float32 and returning the same shape
    sample_rate: Hz, the rate it was trained at; other rates are resampled to it and back
    input_rms: RMS (full scale 1) of its training inputs; a recording is brought to it and back
    name: what messages call the model
    """

    def __init__(self, model, sample_rate: int, input_rms: float, name: str = "the model"):
        if why := policy.training_record_problem({"sample_rate": sample_rate, "input_rms": input_rms}):
            raise PipelineError(f"{name} cannot denoise recordings: {why}")
        if model.features[0] != 1 or model.features[-1] != 1:
            raise PipelineError(
                f"{name} cannot denoise recordings: it maps {model.features[0]} features to {model.features[-1]}, "
                "not one channel to one; give a model trained by this pipeline"
            )
        if why := demand_problem(model, int(sample_rate)):
            raise PipelineError(f"{name} cannot denoise recordings: {why}")
        self.model, self.sample_rate, self.input_rms = model.eval(), int(sample_rate), float(input_rms)
        self.name, self.audio = name, {"sample_rate": sample_rate, "input_rms": input_rms}

    @classmethod
    def load(cls, source) -> "Denoiser":
        """A checkpoint or MLflow URI on PyTorch (backend.load picks onnxruntime instead)."""
        from cnn_denoise.models import checkpoint as ckpt

        source = str(source)
        if source.startswith(("runs:/", "models:/")):
            from cnn_denoise import tracking

            with tempfile.TemporaryDirectory() as tmp:  # the downloaded copy goes once loaded
                model, audio = ckpt.load_checkpoint(tracking.checkpoint_path(source, tmp))
        else:
            model, audio = ckpt.load_checkpoint(source)
        if not {"sample_rate", "input_rms"} <= set(audio):
            raise PipelineError(
                f"{source} does not record the rate and level it was trained at (an older checkpoint); "
                "retrain it with dvc repro -f train"
            )
        denoiser = cls(model, audio["sample_rate"], audio["input_rms"], source)
        denoiser.audio = audio  # the checkpoint's whole record: what it was trained on (cnn-denoise info)
        return denoiser

    def __call__(self, noisy, sample_rate: int):
        """The denoised signal, same type, shape and rate; channels last, as soundfile reads them.
        Scaled down as a whole, with a warning, where it would pass full scale (policy.RULES)."""
        torch = sys.modules.get("torch")  # a torch tensor can only come from a program that imported torch
        is_torch = torch is not None and isinstance(noisy, torch.Tensor)
        x = noisy.detach().cpu().numpy() if is_torch else np.asarray(noisy)
        if not np.issubdtype(x.dtype, np.floating):
            raise PipelineError(
                f"expected float samples in [-1, 1] (as soundfile reads them), got {x.dtype}; scale them"
            )
        if x.ndim not in (1, 2) or x.shape[0] == 0 or x.size == 0:
            raise PipelineError(f"expected samples (n,) or (n, channels) with n >= 1, got shape {x.shape}")
        frames = np.ascontiguousarray(x.reshape(len(x), -1).T, dtype=np.float64)  # (channels, n)
        store = ArrayStore(*frames.shape)
        rms, peak = self.process(ArraySource(frames, sample_rate), store)
        factor, clipped = policy.output_factor(peak, rms, self.input_rms)
        if clipped != 1.0:
            warnings.warn(policy.clipping_note("Denoiser", clipped), stacklevel=2)
        out = policy.gate(store.data * factor, f"the output of {self.name}", FAULTY_MODEL).T.reshape(x.shape)
        return torch.as_tensor(out, dtype=noisy.dtype) if is_torch else out.astype(x.dtype, copy=False)

    def stream(self, channels: int):
        """The model over (channels, n) float64 blocks at its rate and level, in step with its
        input: call per block, then flush() (Stream on PyTorch; engine.BlockStream on onnxruntime)."""
        import torch

        from cnn_denoise.enhance.stream import Stream

        stream = Stream(self.model, channels)

        class Arrays:
            def __call__(self, block):
                x = torch.from_numpy(np.ascontiguousarray(block[:, None, :])).float()
                return stream(x)[:, 0, :].double().numpy()

            def flush(self):
                return stream.flush()[:, 0, :].double().numpy()

        return Arrays()

    def block_engine(self):
        """The model one block at a time with its state (engine.py), what `stream` runs."""
        from cnn_denoise.enhance.engine import TorchEngine

        return TorchEngine(self.model)

    def process(self, source, store) -> tuple[float, float]:
        """Denoise `source` (ArraySource, or a file's) into `store` at the training level; return
        the source's RMS and the peak of what was stored, what policy.output_factor needs."""
        up, down = policy.ratio(source.rate, self.sample_rate, source.name)
        level = policy.Level()
        for block in source.blocks(0, source.channels, max(1, READ // source.channels)):
            level.add(policy.gate(block, source.name, "clean it first"))
        rms = level.rms
        p, peak = plan(self.model, source.channels, up, down), 0.0
        for c0 in range(0, source.channels, p.group):
            for a, block in self._pass(source, c0, min(c0 + p.group, source.channels), rms, up, down, p):
                policy.gate(block, f"the output of {self.name} for {source.name}", FAULTY_MODEL)
                peak = max(peak, float(np.abs(block).max(initial=0.0)))
                store.put(c0, a, block)
        return rms, peak

    def _pass(self, source, c0: int, c1: int, rms: float, up: int, down: int, p: Plan):
        """(first frame, block) of channels c0..c1 denoised, at the recording's rate, in order."""
        n, channels = source.frames, c1 - c0
        inputs = (policy.to_training_level(b, rms, self.input_rms) for b in source.blocks(c0, c1, p.read))
        stream = self.stream(channels)

        def at_model_rate():
            for block in resampled_blocks(Window(inputs, channels), n, up, down, p.step_in):
                for a in range(0, block.shape[-1], p.chunk):
                    yield stream(block[:, a : a + p.chunk])
            yield stream.flush()  # a network's last frames and lag (masknet)

        done = 0
        for block in resampled_blocks(Window(at_model_rate(), channels), -(-n * up // down), down, up, p.step_back):
            block = block[:, : n - done]
            yield done, block
            done += block.shape[-1]
        if done < n:  # rounding of the two rate changes: pad the last samples with silence
            yield done, np.zeros((channels, n - done))

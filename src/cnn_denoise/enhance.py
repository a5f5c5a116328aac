"""Denoise recordings you bring: any length, sample rate, channel count, level or WAV format.

Policies (`cnn-denoise enhance --help` and the README say the same):
- rate: a recording is resampled to the rate the model was trained at (its checkpoint records
  it) with SciPy's polyphase resampler, denoised, and resampled back to its own rate;
- channels: each channel is denoised on its own;
- level: the whole recording is scaled so that its RMS is the training inputs' RMS (the
  checkpoint records it), and the output is scaled back by the same factor, so a file at full
  scale works like one at the course's ~1e-3 amplitudes. The models here learnt y from
  x = 0.5 y + n, so their output is about twice the speech in the input;
- clipping: never wrapped around: an output that would pass full scale is scaled down as a
  whole, and the command says so.

Long files stream in blocks with bounded memory and the same output as the whole file at
once: the CNN is causal with a finite receptive field, so each layer carries the last K_l - 1
samples of its input from block to block (`Stream`), and each resampled block is computed
from a slice of its input wide enough for the resampler's filter (`resampled_blocks`).
"""

import math
import tempfile
from pathlib import Path

import numpy as np
import scipy.signal
import torch

from . import model as cnn
from . import spec
from .errors import PipelineError

BLOCK = 1 << 16  # samples per block (memory grows with it, not with the recording)
FILTER_HALF_WIDTH = 10  # resample_poly's default filter reaches 10 * max(up, down) upsampled samples each side
FULL_SCALE = 0.999  # an output whose peak would pass 1.0 is scaled to this peak


class Stream:
    """model(x) over consecutive blocks of x (channels, 1, n), equal to the whole at once."""

    def __init__(self, model, channels: int):
        self.model = model
        self.state = [torch.zeros(channels, layer.in_features, layer.taps - 1) for layer in model.layers]

    @torch.no_grad()
    def __call__(self, block: torch.Tensor) -> torch.Tensor:
        m, n, last = self.model, block.shape[-1], len(self.model.layers) - 1
        X = block * m.input_scale if m.input_scale != 1.0 else block
        for i, layer in enumerate(m.layers):
            full = torch.cat([self.state[i], X], -1)  # the K - 1 samples before this block, then the block
            self.state[i] = full[..., full.shape[-1] - (layer.taps - 1) :]
            X = layer(full)[..., -n:]
            if i < last or m.last_activation == spec.TANH:
                X = torch.tanh(X)
        return X / m.input_scale if m.input_scale != 1.0 else X


def resampled_blocks(read, total: int, up: int, down: int, block: int = BLOCK):
    """Consecutive blocks of scipy.signal.resample_poly(signal, up, down) along the last axis,
    each computed from a slice read(lo, hi) of the input with enough context on both sides
    for the filter; together they equal the whole signal resampled at once."""
    if up == down:
        for a in range(0, total, block):
            yield read(a, min(a + block, total))
        return
    reach = FILTER_HALF_WIDTH * max(up, down) // up + 2  # input samples the filter sees each side
    context = -(-reach // down) * down
    block = max(down, block // down * down)  # block edges on the input grid that maps onto outputs
    for a in range(0, total, block):
        b = min(a + block, total)
        lo, hi = max(0, a - context), min(total, b + context)
        y = scipy.signal.resample_poly(read(lo, hi), up, down, axis=-1)
        first = (a - lo) * up // down
        last = -(-(b * up) // down) - lo * up // down if b == total else (b - lo) * up // down
        yield y[..., first:last]


class Denoiser:
    """A trained model with the rate and level it was trained at.

    d = Denoiser.load("models/model.pt")          # or "runs:/<run id>", "models:/name@alias"
    clean = d(noisy, sample_rate)                  # NumPy or torch; (n,) or (n, channels)
    """

    def __init__(self, model, sample_rate: int, input_rms: float):
        self.model, self.sample_rate, self.input_rms = model.eval(), int(sample_rate), float(input_rms)

    @classmethod
    def load(cls, source) -> "Denoiser":
        source = str(source)
        from . import tracking

        path = tracking.checkpoint_path(source) if source.startswith(("runs:/", "models:/")) else source
        model, audio = cnn.load_checkpoint(path)
        if not {"sample_rate", "input_rms"} <= set(audio):
            raise PipelineError(
                f"{source} does not record the rate and level it was trained at (an older checkpoint); "
                "retrain it with dvc repro -f train"
            )
        return cls(model, audio["sample_rate"], audio["input_rms"])

    def __call__(self, noisy, sample_rate: int):
        """The denoised signal, same type, shape and rate; channels last, as soundfile reads them."""
        is_torch = isinstance(noisy, torch.Tensor)
        x = (noisy.detach().cpu().numpy() if is_torch else np.asarray(noisy)).astype(np.float64)
        if x.ndim not in (1, 2) or x.shape[0] == 0:
            raise PipelineError(f"expected samples (n,) or (n, channels) with n >= 1, got shape {x.shape}")
        frames = x.reshape(len(x), -1).T  # (channels, n)
        if not np.isfinite(frames).all():
            raise PipelineError("the recording holds NaN or infinite samples; clean it first")
        out = np.concatenate(
            list(self.blocks(lambda a, b: frames[:, a:b], frames.shape[1], sample_rate, self.gain(_rms(frames)))),
            axis=-1,
        )
        out = out.T.reshape(x.shape)
        return torch.as_tensor(out, dtype=noisy.dtype) if is_torch else out.astype(np.asarray(noisy).dtype, copy=False)

    def gain(self, rms: float) -> float:
        """The factor that brings a recording of this RMS to the training level (1 for silence)."""
        return self.input_rms / rms if rms > 0 else 1.0

    def blocks(self, read, total: int, rate: int, gain: float):
        """Denoised blocks (channels, n) at `rate` of a recording read(lo, hi) -> (channels, n)."""
        ratio = math.gcd(rate, self.sample_rate)
        up, down = self.sample_rate // ratio, rate // ratio
        channels = read(0, 1).shape[0]
        with tempfile.TemporaryDirectory() as tmp:  # the model-rate output, so memory stays bounded
            mid = Path(tmp) / "model_rate.f32"
            stream, count = Stream(self.model, channels), 0
            with open(mid, "wb") as f:
                for block in resampled_blocks(read, total, up, down):
                    x = torch.from_numpy(block * gain).float()[:, None, :]
                    np.ascontiguousarray(stream(x)[:, 0, :].numpy().T).tofile(f)
                    count += block.shape[-1]

            def read_mid(lo, hi):
                return (
                    np.fromfile(mid, dtype=np.float32, count=(hi - lo) * channels, offset=lo * channels * 4)
                    .reshape(-1, channels)
                    .T
                )

            done = 0
            for block in resampled_blocks(read_mid, count, down, up):
                block = block[:, : total - done]
                done += block.shape[-1]
                yield block.astype(np.float64) / gain
            if done < total:  # rounding of the two rate changes: pad the last samples with silence
                yield np.zeros((channels, total - done))


def _rms(frames: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(frames)))) if frames.size else 0.0

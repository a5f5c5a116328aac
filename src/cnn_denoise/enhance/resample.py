"""Resampling audio that arrives in blocks of any length: scipy.signal.resample_poly's numbers
(its own filter, denoiser._lowpass), one block at a time, with no end in sight.

resample_poly computes y = upfirdn(h, x, up, down) and drops the filter's delay; output sample
M of that needs the input up to sample floor(M down / up) and, for a filter of len(h) taps,
the (len(h) - 1) / up samples before it. So each block's outputs are those the inputs so far
complete, computed by upfirdn over the few input samples they reach (kept from block to
block), and flush() completes the rest with zeros past the end, as resample_poly pads. The
latency this adds is the filter's half length: 10 max(up, down) / up input samples (0.6 ms
from 48 kHz to 16 kHz, and back).
"""

import numpy as np
import scipy.signal

from cnn_denoise.enhance.denoiser import FILTER_HALF_WIDTH
from cnn_denoise.enhance.denoiser import _lowpass as lowpass


class Resampler:
    """resample_poly(x, up, down, axis=-1) of x (channels, n) fed in consecutive blocks: each
    call returns the output samples the input so far determines, flush() the rest; together
    they equal resample_poly of the whole x at once."""

    def __init__(self, up: int, down: int, channels: int):
        self.up, self.down = up, down
        self.buf, self.base = np.zeros((channels, 0)), 0  # input from sample `base` on (a multiple of down)
        self.next = self.skip = self.pushed = 0
        if up == down:
            return
        half = FILTER_HALF_WIDTH * max(up, down)
        pre = down - half % down  # resample_poly's padding, so its outputs fall on the filter's centre
        self.h = np.concatenate([np.zeros(pre), lowpass(max(up, down)) * up])
        self.skip = self.next = (half + pre) // down  # resample_poly's outputs start at this sample of upfirdn's

    @property
    def latency(self) -> int:
        """Input samples past an output sample's own that it waits for (the filter's half)."""
        return -(-(self.skip * self.down) // self.up)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.up == self.down:
            return x
        self.buf = np.concatenate([self.buf, x], axis=1)
        self.pushed += x.shape[1]
        return self._emit((self.pushed * self.up - 1) // self.down + 1)

    def flush(self) -> np.ndarray:
        if self.up == self.down:
            return np.zeros((self.buf.shape[0], 0))
        end = self.skip + -(-(self.pushed * self.up) // self.down)  # resample_poly's length
        need = (end - 1) * self.down // self.up + 1 - self.base  # input samples up to the last output's
        if need > self.buf.shape[1]:
            self.buf = np.pad(self.buf, ((0, 0), (0, need - self.buf.shape[1])))
        return self._emit(end)

    def _emit(self, end: int) -> np.ndarray:
        """upfirdn's outputs next .. end - 1, then the input the next output no longer needs let go."""
        if end <= self.next:
            return np.zeros((self.buf.shape[0], 0))
        offset = self.base // self.down * self.up  # upfirdn of buf starts at this output of the whole's
        y = scipy.signal.upfirdn(self.h, self.buf, self.up, self.down, axis=-1)
        out = y[:, self.next - offset : end - offset]
        self.next = end
        lo = max(0, -(-(self.next * self.down - (len(self.h) - 1)) // self.up))
        keep_from = max(self.base, lo // self.down * self.down)
        self.buf, self.base = self.buf[:, keep_from - self.base :], keep_from
        return out

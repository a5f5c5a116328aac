"""What the CNN must beat, fitted on the training set in closed form.

- linear: the least-squares causal FIR filter with as many taps as the CNN's receptive
  field, i.e. the best the CNN could do without its nonlinearities (same inputs seen);
- lowpass: an ideal (brick-wall, non-causal) low-pass at the speech band's edge, with a
  gain fitted by least squares: a reference for what band separation alone achieves.
"""

import torch
import torch.nn.functional as F

from cnn_denoise.lab.filters import mimo_toeplitz

BATCH = 16  # recordings per FFT (memory: ~3 * BATCH * N complex doubles)


def normal_equations(x: torch.Tensor, y: torch.Tensor, taps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """R = A^T A and p = A^T y of the causal least-squares problem, A[n, k] = x[n - k], summed
    over the recordings ([Q, 1, N] stacks), in float64.

    Forming A (N x taps per recording) costs Q N taps^2 flops; instead R[j, k] is x's
    autocorrelation at lag k - j (one FFT per recording) less the products that fall past the
    recording's end (n >= N, a taps x taps block from its last samples), and p is the cross-
    correlation of y with x: the same sums, far fewer flops (bench/README.md)."""
    n = x.shape[-1]
    size = 1 << (n + taps - 1).bit_length()  # FFT length past every lag: no circular wrap
    spectra = torch.zeros(size // 2 + 1, dtype=torch.complex128)
    cross = torch.zeros(size // 2 + 1, dtype=torch.complex128)
    end = torch.zeros(taps, taps, dtype=torch.float64)
    for i in range(0, x.shape[0], BATCH):
        xb, yb = x[i : i + BATCH, 0].double(), y[i : i + BATCH, 0].double()
        X = torch.fft.rfft(xb, n=size)
        spectra += (X.real.square() + X.imag.square()).sum(0)
        cross += (X.conj() * torch.fft.rfft(yb, n=size)).sum(0)
        tail = F.pad(xb, (taps - 1, taps - 1)).unfold(-1, taps, 1)[:, n : n + taps - 1].flip(-1)  # rows n >= N of A
        end += torch.einsum("qnj,qnk->jk", tail, tail)
    r = torch.fft.irfft(spectra, n=size)[:taps]
    lag = torch.arange(taps)
    R = r[(lag[None, :] - lag[:, None]).abs()] - end
    return R, torch.fft.irfft(cross, n=size)[:taps]


def fit_fir(x: torch.Tensor, y: torch.Tensor, taps: int) -> torch.Tensor:
    """h minimising sum |y - h * x|^2 over the set ([Q, 1, N] stacks), float64, causal."""
    R, p = normal_equations(x, y, taps)
    if torch.trace(R) == 0:  # silent inputs: every filter outputs zeros; the zero filter is the least one
        return torch.zeros(taps, dtype=torch.float64)
    ridge = 1e-12 * torch.trace(R) / taps  # the noise-free band makes R nearly singular
    return torch.linalg.solve(R + ridge * torch.eye(taps, dtype=torch.float64), p)


def apply_fir(h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Filter stacks [Q, 1, N] with h (float64 inside, float32 out, like the CNN's output).
    The Toeplitz GEMMs, BATCH recordings at a time: conv1d in float64 is much slower on
    CPUs (bench/README.md)."""
    H = h.double()[:, None, None]
    return torch.cat([mimo_toeplitz(x[i : i + BATCH].double(), H).float() for i in range(0, x.shape[0], BATCH)])


def ideal_lowpass(x: torch.Tensor, cutoff_hz: float, sample_rate: float) -> torch.Tensor:
    """Zero every frequency above cutoff_hz (brick wall, zero phase)."""
    spectrum = torch.fft.rfft(x.double(), dim=-1)
    freqs = torch.fft.rfftfreq(x.shape[-1], d=1.0 / sample_rate)
    return torch.fft.irfft(spectrum * (freqs <= cutoff_hz), n=x.shape[-1], dim=-1).float()


def fit_gain(pred: torch.Tensor, y: torch.Tensor) -> float:
    """The scalar g minimising |y - g pred|^2."""
    pred, y = pred.double(), y.double()
    return ((pred * y).sum() / (pred * pred).sum().clamp_min(1e-300)).item()


def model_free(train: dict, test: dict, lowpass_hz: float, rate: int) -> dict[str, torch.Tensor]:
    """The baselines that do not depend on the CNN, as outputs on the test set: zeros, the noisy
    input unchanged, the ideal low-pass with its gain fitted on the training set."""
    gain = fit_gain(ideal_lowpass(train["x"], lowpass_hz, rate), train["y"])
    return {
        "zeros": torch.zeros_like(test["y"]),
        "noisy": test["x"],
        "lowpass": gain * ideal_lowpass(test["x"], lowpass_hz, rate),
    }

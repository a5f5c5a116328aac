"""MIMO convolutional filters (Lab 2B, Task 2).

A MIMO filter maps an N x F feature matrix X to an N x G matrix

    Y = sum_{k=0}^{K-1} S^k X H_k,

where S is the zero-padded delay (S x = [0, x_0, ..., x_{N-2}], not circular) and each
H_k is F x G. There is no bias. Tensors follow PyTorch's layout: X is (batch, F, N), so
X[b].T is the lab's N x F matrix.

Several exact backends compute the same sum (tests hold them to the reference):
- "shift": the literal shift register of the lab's text; the reference, kept simple.
- "conv1d": PyTorch's conv1d with left zero padding and the taps reversed (conv1d is a
  cross-correlation).
- "toeplitz": the filter as one matrix product. The signal is cut into blocks of L
  samples; each output block depends on its input block and the K-1 samples before it, so
  Y_block = [previous K-1 samples, block] @ T, with T the (F(L+K-1)) x (G L) block-Toeplitz
  matrix built from H. Few features and many taps make conv1d's kernels poor on a CPU,
  while a GEMM runs near the machine's peak; the zeros of T cost (L+K-1)/K more FLOPs.
- "fft": pointwise products of spectra (rfft of length >= N+K-1, so nothing wraps);
  O(N log N) whatever K, for long filters.
- "auto": the fastest for the device and shape, by a fixed rule (the same choice on
  every run, so results stay bit-reproducible); see `choose_backend`.
"""

import scipy.fft
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnn_denoise.config import choices


def shift(x: torch.Tensor, k: int = 1) -> torch.Tensor:
    """S^k x along the last axis: delay by k samples, zeros shifted in (not circular)."""
    if k == 0:
        return x
    n = x.shape[-1]
    if k >= n:
        return torch.zeros_like(x)
    return F.pad(x[..., : n - k], (k, 0))


def mimo_shift(X: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """Reference: sum_k S^k X H_k with X (B, F, N) and H (K, F, G) -> (B, G, N)."""
    Y = 0
    for k in range(H.shape[0]):
        Y = Y + torch.einsum("bfn,fg->bgn", shift(X, k), H[k])
    return Y


def mimo_conv1d(X: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """The same sum through conv1d: weight[g, f, j] = H[K-1-j, f, g], K-1 zeros on the left."""
    K = H.shape[0]
    weight = H.permute(2, 1, 0).flip(-1)
    return F.conv1d(F.pad(X, (K - 1, 0)), weight)


def toeplitz_matrix(H: torch.Tensor, block: int) -> torch.Tensor:
    """T with T[(f, m), (g, i)] = H[K-1+i-m, f, g] (zero outside 0..K-1): (F(L+K-1), G L)."""
    K, Fin, G = H.shape
    m = torch.arange(block + K - 1, device=H.device)[:, None]
    i = torch.arange(block, device=H.device)[None, :]
    k = K - 1 + i - m
    k = torch.where((k >= 0) & (k < K), k, K)  # index K is a row of zeros
    T = torch.cat([H, H.new_zeros(1, Fin, G)])[k]  # (L+K-1, L, F, G)
    return T.permute(2, 0, 3, 1).reshape(Fin * (block + K - 1), G * block)


def _window_rows(X: torch.Tensor, K: int, L: int) -> torch.Tensor:
    """Overlapping windows (each block of L and the K-1 samples before it) as GEMM rows:
    (B*J, F*(L+K-1)) for X (B, F, N), the last block zero-padded."""
    B, Fin, N = X.shape
    J = -(-N // L)
    windows = F.pad(X, (K - 1, J * L - N)).unfold(-1, L + K - 1, L)  # (B, F, J, L+K-1), a view
    return windows.permute(0, 2, 1, 3).reshape(B * J, Fin * (L + K - 1))


def _block_rows(X: torch.Tensor, L: int) -> torch.Tensor:
    """Non-overlapping blocks of L as GEMM rows (B*J, F*L), features outer, time inner."""
    B, Fin, N = X.shape
    J = -(-N // L)
    return F.pad(X, (0, J * L - N)).reshape(B, Fin, J, L).transpose(1, 2).reshape(B * J, Fin * L)


def _from_rows(rows: torch.Tensor, B: int, N: int, L: int) -> torch.Tensor:
    """Rows (B*J, G*L) back to (B, G, N)."""
    J = rows.shape[0] // B
    return rows.view(B, J, -1, L).transpose(1, 2).reshape(B, -1, J * L)[..., :N]


def _blocks_gemm(rows: torch.Tensor, H: torch.Tensor, L: int, B: int) -> torch.Tensor:
    """Block rows (B*J, F*L) to output rows (B*J, G*L), L >= K-1: each block's effect on its
    own output block, and (its last K-1 samples) on the next one."""
    K, Fin, G = H.shape
    T = toeplitz_matrix(H, L).view(Fin, L + K - 1, G * L)
    own = T[:, K - 1 :].reshape(Fin * L, G * L)
    spill = F.pad(T[:, : K - 1], (0, 0, L - K + 1, 0)).reshape(Fin * L, G * L)
    J = rows.shape[0] // B
    Y = (rows @ own).view(B, J, G * L) + F.pad((rows @ spill).view(B, J, G * L)[:, :-1], (0, 0, 1, 0))
    return Y.view(B * J, G * L)


def _windows(X: torch.Tensor, H: torch.Tensor, L: int) -> torch.Tensor:
    """One GEMM of overlapping windows with T."""
    return _from_rows(_window_rows(X, H.shape[0], L) @ toeplitz_matrix(H, L), X.shape[0], X.shape[-1], L)


def _blocks(X: torch.Tensor, H: torch.Tensor, L: int) -> torch.Tensor:
    """Two GEMMs of non-overlapping blocks (L >= K-1): no overlapping copies, so the input's
    gradient is cheap."""
    return _from_rows(_blocks_gemm(_block_rows(X, L), H, L, X.shape[0]), X.shape[0], X.shape[-1], L)


def mimo_toeplitz(X: torch.Tensor, H: torch.Tensor, block: int | None = None) -> torch.Tensor:
    """sum_k S^k X H_k as GEMMs of signal blocks with a block-Toeplitz matrix.

    Block lengths measured best on CPUs (`make bench`, K = 40): with one input feature,
    overlapping windows of L ~ 1.5 K (the windows are then a view of the signal); with
    several, two GEMMs of non-overlapping blocks of L = K. One tap: one small product."""
    K, Fin, _ = H.shape
    N = X.shape[-1]
    if K == 1:  # no delays, H_0^T X: one bmm (Toeplitz blocks would do K_block times the work)
        return torch.bmm(H[0].T.expand(X.shape[0], -1, -1), X)
    if Fin > 1 and (block or K) >= K - 1:
        return _blocks(X, H, min(block or max(K, 16), max(N, K - 1)))
    return _windows(X, H, min(block or max(16, -(-3 * K // 32) * 16), N))


def mimo_fft(X: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """The same sum as a product of spectra; the transform is long enough that nothing wraps."""
    K, N = H.shape[0], X.shape[-1]
    n = scipy.fft.next_fast_len(N + K - 1, real=True)  # no wrap-around, a fast size
    spectrum = torch.einsum("bfw,fgw->bgw", torch.fft.rfft(X, n=n), torch.fft.rfft(H.permute(1, 2, 0), n=n))
    return torch.fft.irfft(spectrum, n=n)[..., :N]


def chains(backends: list[str], taps: list[int]) -> bool:
    """Whether a CNN's layers run as one `toeplitz_chain`: two or more, every one on the
    Toeplitz GEMMs, of similar lengths (one block length serves them all) and no one-tap layer."""
    return (
        len(taps) >= 2
        and all(b == choices.TOEPLITZ for b in backends)
        and 2 <= min(taps)
        and max(taps) <= 2 * min(taps)
    )


def toeplitz_chain(X: torch.Tensor, Hs: list[torch.Tensor], after: list) -> torch.Tensor:
    """Layers of Toeplitz GEMMs kept in one blocked layout: each layer's output rows, (g, i) per
    block, are the next layer's input rows as they are, so the (batch, feature, time) layout is
    left once and entered once, not at every layer (those copies, forward and backward, were
    over a quarter of an epoch of the lab's CNN). `after[l]` (a function or None) follows layer l; it
    must act sample by sample, as tanh does. Exact: the outputs past N that the zero padding
    makes feed only later samples (the filters are causal) and are cut off at the end.

    One block length L = max(K, 16) for every layer: windows for a one-feature first layer
    (a view of the signal), two GEMMs of blocks for the others (they need L >= K-1)."""
    B, Fin, N = X.shape
    L = max(16, *(H.shape[0] for H in Hs))
    first = Hs[0]
    if Fin == 1:
        rows = _window_rows(X, first.shape[0], L) @ toeplitz_matrix(first, L)
    else:
        rows = _blocks_gemm(_block_rows(X, L), first, L, B)
    for i, H in enumerate(Hs):
        if i > 0:
            rows = _blocks_gemm(rows, H, L, B)
        if after[i] is not None:
            rows = after[i](rows)
    return _from_rows(rows, B, N, L)


# CPUs: the taps from which the FFT beats the Toeplitz GEMMs, by the layer's features. One
# input and several outputs (a first layer): the GEMMs' zeros grow with K while the FFT
# transforms one signal; several inputs and one output (a last layer): the FFT's gradient
# costs a transform per input; several of both: the GEMMs grow with F G K, the FFT's products
# with F G only, but an FFT layer breaks the Toeplitz chain of the whole CNN, so not below 64
# taps. The timings that set these numbers: bench/README.md and `make bench`.
FFT_FROM_TAPS = {"one_to_many": 60, "many_to_one": 200, "one_to_one": 81}
FFT_FROM_TAPS_TIMES_WIDTH = 600  # several to several: the FFT from 600 / sqrt(F G) taps, and at least 64


def choose_backend(K: int, F: int = 1, G: int = 1, device: torch.device | str = "cpu") -> str:
    """The `auto` rule for a layer of K taps, F inputs and G outputs, from the timings above:
    on CUDA, cuDNN's conv1d; on CPUs, the Toeplitz GEMMs, or the FFT once filters are long."""
    if torch.device(device).type == choices.CUDA:
        return choices.CONV1D
    if F > 1 and G > 1:
        return choices.FFT if K >= max(64, FFT_FROM_TAPS_TIMES_WIDTH / (F * G) ** 0.5) else choices.TOEPLITZ
    kind = "one_to_many" if F == 1 and G > 1 else "many_to_one" if G == 1 and F > 1 else "one_to_one"
    return choices.FFT if K >= FFT_FROM_TAPS[kind] else choices.TOEPLITZ


IMPLEMENTATIONS = {
    choices.SHIFT: mimo_shift,
    choices.CONV1D: mimo_conv1d,
    choices.TOEPLITZ: mimo_toeplitz,
    choices.FFT: mimo_fft,
}
choices.check_table(IMPLEMENTATIONS, choices.BACKENDS, "filters.IMPLEMENTATIONS")


class MIMOFilter(nn.Module):
    """Task 2: Y = sum_k S^k X H_k, a K-tap MIMO filter, no bias; X (batch, F, n) -> Y (batch, G, n).

    taps: K, taps of the filter (samples of the delay line)
    in_features: F, features of X
    out_features: G, features of Y
    backend: how Y is computed (shift, conv1d, toeplitz, fft, or auto), the same numbers each
    The weights H have shape (K, F, G): H[k] is the lab's F x G matrix H_k.
    """

    def __init__(self, taps: int, in_features: int, out_features: int, backend: str = choices.AUTO):
        super().__init__()
        for name, value in (("taps", taps), ("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MIMOFilter: {name} must be an integer >= 1, got {value!r}")
        choices.choose(backend, (choices.AUTO, *choices.BACKENDS), "MIMOFilter backend")
        self.taps, self.in_features, self.out_features = taps, in_features, out_features
        self.backend = backend
        # The course's code drew xavier_normal_ on a (K, G, F) tensor; we keep its scale and
        # random stream, stored as (K, F, G) so that H[k] is the lab's F x G matrix H_k.
        init = torch.empty(taps, out_features, in_features)
        nn.init.xavier_normal_(init)
        self.H = nn.Parameter(init.transpose(1, 2).contiguous())

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        unbatched = X.dim() == 2
        if unbatched:
            X = X.unsqueeze(0)
        if X.dim() != 3 or X.shape[1] != self.in_features:
            raise ValueError(
                f"MIMOFilter: expected input (batch, {self.in_features}, N) or ({self.in_features}, N), "
                f"got shape {tuple(X.shape)}"
            )
        Y = IMPLEMENTATIONS[self.backend_for(X.device)](X, self.H)
        return Y.squeeze(0) if unbatched else Y

    def backend_for(self, device) -> str:
        """The backend this layer runs on `device`: its own, or `auto`'s choice."""
        return (
            choose_backend(self.taps, self.in_features, self.out_features, device)
            if self.backend == choices.AUTO
            else self.backend
        )

    def extra_repr(self) -> str:
        return (
            f"taps={self.taps}, in_features={self.in_features}, "
            f"out_features={self.out_features}, backend={self.backend!r}"
        )

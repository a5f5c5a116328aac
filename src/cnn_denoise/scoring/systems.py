"""The systems every comparison scores, listed once: the noisy input, the least-squares filter,
spectral gating and each neural peer that can run here (RNNoise, DTLN, DeepFilterNet3: peers/).
The test matrix (matrix.py: docs/results.md, bench/unseen.py) adds models run as `cnn-denoise
enhance` runs them; the evaluate stage adds its CNN. Both score a set here, so a system added
to the list is scored everywhere the project compares.

Each system's real-time factor (seconds of compute / seconds of audio) is timed around its call
on one thread (torch's, and the peers' own), the setting restored after, so a peer that spreads
over every core is not compared with a CNN on one. A peer that cannot run here is one line on
stderr and the comparison goes on without it: the peers are optional extras (pip install '.[peers]').
"""

import sys
import time

import numpy as np
import torch

from cnn_denoise.lab import baselines as lab
from cnn_denoise.scoring import perceptual, quality


def peer_names(note=True) -> list[str]:
    """The peers that can run here, in peers.PEERS' order; with `note`, one line on stderr for
    each that cannot (why, and how to install it)."""
    from cnn_denoise import peers

    names = []
    for name, why in peers.available().items():
        if why is None:
            names.append(name)
        elif note:
            print(f"note: peer {name} not scored: {why}", file=sys.stderr)
    return names


def peer(name: str, rate: int):
    """f(x [Q, 1, N] at `rate`) -> [Q, 1, N]: each recording through the peer on its own (a fresh
    state each), at the peer's rate and back, its delay removed (peers.run)."""
    from cnn_denoise import peers

    peers.run(name, np.zeros(rate // 10, np.float32), rate, threads=1)  # load it now: loading is not denoising

    def run(x: torch.Tensor) -> torch.Tensor:
        rows = x[:, 0].float().numpy()
        return torch.from_numpy(np.stack([peers.run(name, r, rate, threads=1) for r in rows]))[:, None]

    return run


def baselines(h: torch.Tensor, rate: int, peers: list[str], linear: str = "least-squares") -> dict:
    """{name: f(x [Q, 1, N]) -> [Q, 1, N]}: the noisy input, the least-squares FIR filter `h`
    (named `linear`), spectral gating, then each of `peers` (peer_names())."""
    out = {
        "noisy": lambda x: x,
        linear: lambda x: lab.apply_fir(h, x),
        "gating": lambda x: torch.from_numpy(perceptual.spectral_gating(x.numpy(), rate)).float(),
    }
    for name in peers:
        out[name] = peer(name, rate)
    return out


def timed(run, x: torch.Tensor, rate: int) -> tuple[torch.Tensor, float]:
    """run(x) and its real-time factor: seconds of compute per second of audio, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        pred = run(x)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    return pred, seconds / (x.shape[0] * x.shape[-1] / rate)


def score(runs: dict, x: torch.Tensor, y: torch.Tensor, rate: int, measure=quality.measures, speech: bool = True):
    """{system: its measures} on one set (x noisy, y clean, [Q, 1, N] at `rate`): `measure`'s
    (quality.measures: SI-SDR, SNR, STOI; all_measures adds the lab's losses), on speech PESQ-WB
    and DNSMOS too, the SI-SDR gain over the noisy input and the real-time factor (rtf)."""
    before = quality.si_sdr_db(x, y)
    out = {}
    for system, run in runs.items():
        pred, rtf = timed(run, x, rate)
        m = measure(pred, x, y, rate)
        if speech:
            m.update(perceptual.perceptual(pred, y, rate))
        gain = None if m["si_sdr_db"] is None or before is None else m["si_sdr_db"] - before
        out[system] = {**m, "si_sdr_gain_db": gain, "rtf": rtf}
    return out

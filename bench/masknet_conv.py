"""The masking CNN's training step beside the same network written with PyTorch's layers.

models/masknet.py computes each layer from the lab's MIMO filters (H of shape (K, F, G)) with
torch.nn.functional calls. A user of PyTorch would write the same network from nn.Conv1d
(dilated, causal padding on the left) and nn.ConvTranspose1d for the overlap-add: that is
PlainMaskNet below, given MaskNet's weights and checked to give the same output before it is
timed. Both take Adam steps on the same batches (the speech recipe's: 16 segments of 1 s at
16 kHz, SI-SDR loss: the recipe's spectral term would cost both alike), alternated round by
round in one process on one thread, so the ratio holds on a shared machine. The shape is the
shipped model's. Writes bench/masknet_conv.json and prints a line per network. Not a
test: nothing here asserts a time.

    python bench/masknet_conv.py [--rounds 10] [--steps 10] [--out FILE]
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def shipped_shape() -> dict:
    """The shipped model's MaskNet arguments (its spec), read from the file `enhance` uses."""
    from cnn_denoise.models import checkpoint, shipped

    return {k: v for k, v in checkpoint.load(shipped.WEIGHTS).spec().items() if k != "arch"}


class PlainMaskNet(nn.Module):
    """MaskNet.causal written with nn.Conv1d and nn.ConvTranspose1d, its weights copied from `net`."""

    def __init__(self, net):
        super().__init__()
        S, L, N, W, K = net.stride, 2 * net.stride, net.filters, net.width, net.taps
        self.stride, self.scale, self.dilations, self.ahead = S, net.input_scale, net.dilations, net.ahead
        self.enc = nn.Conv1d(1, N, L, stride=S, bias=False)
        self.inp = nn.Conv1d(N, W, 1, bias=False)
        self.layers = nn.ModuleList(nn.Conv1d(W, W, K, dilation=d, bias=False) for d in net.dilations)
        self.mask = nn.Conv1d(W, N, 1, bias=False)
        self.dec = nn.ConvTranspose1d(N, 1, L, stride=S, bias=False)
        with torch.no_grad():  # MIMO filters (K, F, G) are conv1d weights (G, F, K) with the taps reversed
            self.enc.weight.copy_(net.enc.permute(2, 1, 0).flip(-1))
            self.inp.weight.copy_(net.inp.T[..., None])
            for layer, H in zip(self.layers, net.H, strict=True):
                layer.weight.copy_(H.permute(2, 1, 0).flip(-1))
            self.mask.weight.copy_(net.mask.T[..., None])
            self.dec.weight.copy_(net.dec[:, None, :])

    def causal(self, x: torch.Tensor) -> torch.Tensor:
        S, n = self.stride, x.shape[-1]
        x = F.pad(x * self.scale, (S, (-n) % S))
        E = torch.relu(self.enc(x))
        Z = self.inp(E)
        for layer, a in zip(self.layers, self.ahead, strict=True):
            branch = torch.tanh(layer(F.pad(Z, (layer.dilation[0] * (layer.kernel_size[0] - 1), 0))))
            Z = (F.pad(Z, (a, 0))[..., : Z.shape[-1]] if a else Z) + branch
        M = torch.sigmoid(self.mask(Z))
        look = sum(self.ahead)
        E = F.pad(E, (look, 0))[..., : E.shape[-1]] if look else E
        y = self.dec(E * M)
        return F.pad(y, (S, 0))[..., :n] / self.scale


def si_sdr_loss(y, s):
    from cnn_denoise.training.losses import si_sdr_db

    return -si_sdr_db(y, s).mean()


def steps_seconds(forward, params, batches) -> float:
    """Seconds per Adam step (forward, SI-SDR loss, backward, update) over `batches`."""
    opt = torch.optim.Adam(params, lr=1e-4)
    began = time.perf_counter()
    for x, s in batches:
        opt.zero_grad()
        si_sdr_loss(forward(x), s).backward()
        opt.step()
    return (time.perf_counter() - began) / len(batches)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="rounds, each timing both networks (count)")
    parser.add_argument("--steps", type=int, default=10, help="training steps timed per network per round")
    parser.add_argument("--out", default=str(ROOT / "bench" / "masknet_conv.json"), help="the JSON written")
    args = parser.parse_args()
    from cnn_denoise.models.masknet import MaskNet

    torch.set_num_threads(1)  # the speech recipe's train stage runs on one core
    torch.manual_seed(0)
    shape = shipped_shape()
    ours = MaskNet(**shape)
    plain = PlainMaskNet(ours)
    x = torch.randn(2, 1, 16000) * 0.05
    gap = (ours.causal(x) - plain.causal(x)).abs().max().item() / ours.causal(x).abs().max().item()
    if gap > 1e-5:
        raise SystemExit(f"error: PlainMaskNet differs from MaskNet by {gap:.1e} of the output's peak")
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(16, 1, 16000, generator=g) * 0.05, torch.randn(16, 1, 16000, generator=g) * 0.05)]
    batches *= args.steps
    times = {"masknet (MIMO filters, F.conv1d)": [], "plain nn.Conv1d": []}
    for r in range(args.rounds):
        order = [("masknet (MIMO filters, F.conv1d)", ours.causal, ours.parameters())]
        order.append(("plain nn.Conv1d", plain.causal, plain.parameters()))
        for name, forward, params in order if r % 2 == 0 else order[::-1]:
            times[name].append(steps_seconds(forward, list(params), batches))
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    rows = {name: round(statistics.median(t) * 1000, 1) for name, t in times.items()}
    result = {
        "rev": rev.strip(),
        "shape": shape,
        "batch": [16, 1, 16000],
        "threads": 1,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "relative_output_gap": gap,
        "ms_per_step_median": rows,
        "masknet_over_plain": round(rows["masknet (MIMO filters, F.conv1d)"] / rows["plain nn.Conv1d"], 3),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for name, ms in rows.items():
        print(f"{name:34} {ms:8.1f} ms a training step (median of {args.rounds} rounds of {args.steps})")
    print(f"masknet / plain: {result['masknet_over_plain']:.3f}; outputs agree to {gap:.1e} of the peak")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The test matrix for any model: each noise kind and SNR band of data/speech/matrix, every
model run as `cnn-denoise enhance` runs it (its own rate and level through Denoiser), beside
the systems of systems.py (the noisy input, the least-squares filter, spectral gating and the
neural peers that can run here), in SI-SDR (and its gain), wide-band PESQ, DNSMOS, STOI and the
real-time factor. Models trained at other rates (the lab's at 32 kHz) meet the same recordings.

    python -m cnn_denoise.scoring.matrix MATRIX_DIR TRAIN_PT OUT.json NAME=MODEL...

MODEL is a checkpoint or an MLflow URI (models:/cnn-denoise@speech); TRAIN_PT the training set
the least-squares filter is fitted on (at the matrix's rate). docs/results.py renders OUT.json.
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

import torch

from cnn_denoise.common.atomic import write_json
from cnn_denoise.common.errors import PipelineError, run_stage
from cnn_denoise.lab import baselines
from cnn_denoise.lab.dataset import load_split
from cnn_denoise.scoring import systems as compared

LINEAR_TAPS = 256  # the least-squares filter's length here (16 ms at 16 kHz)


def load(folder) -> tuple[int, dict]:
    """(rate, {set name: (index entry, {"x", "y"})}) of a matrix folder."""
    folder = Path(folder)
    try:
        index = json.loads((folder / "index.json").read_text())
    except (OSError, ValueError):
        raise PipelineError(
            f"{folder}/index.json unreadable; run dvc repro (the speech_matrix stage writes it)"
        ) from None
    return index["rate"], {name: (info, load_split(folder / info["file"])) for name, info in index["sets"].items()}


def enhanced(denoiser, x: torch.Tensor, rate: int) -> torch.Tensor:
    """Each recording of x [Q, 1, N] (at `rate`) through a Denoiser, as `cnn-denoise enhance` runs it."""
    with warnings.catch_warnings():  # an output past full scale is scaled down as a whole, as enhance does
        warnings.simplefilter("ignore", UserWarning)
        return torch.stack([torch.from_numpy(denoiser(r[0].double().numpy(), rate)).float()[None] for r in x])


def systems(models: dict, train: dict, rate: int, peers: list[str]) -> dict:
    """{name: f(x [Q, 1, N]) -> [Q, 1, N]}: the listed baselines and peers, then each model through Denoiser."""
    from cnn_denoise.enhance.denoiser import Denoiser

    out = compared.baselines(baselines.fit_fir(train["x"], train["y"], LINEAR_TAPS), rate, peers)
    for name, source in models.items():
        denoiser = Denoiser.load(source)
        out[name] = lambda x, d=denoiser: enhanced(d, x, rate)
    return out


def score(folder, train_path, models: dict) -> dict:
    """Every set of the matrix in `folder`, every system: {"rate", "systems": {"baselines",
    "peers", "models"}: names, "peers_missing": {name: why}, "sets": {set: {"kind", "snr_db",
    system: measures}}}."""
    from cnn_denoise import peers as installed

    rate, sets = load(folder)
    train = load_split(train_path)
    peers = compared.peer_names()
    runs = systems(models, train, rate, peers)
    listed = [s for s in runs if s not in peers and s not in models]
    kinds = {"baselines": listed, "peers": peers, "models": list(models)}
    missing = {name: why for name, why in installed.available().items() if why}
    out = {"rate": rate, "systems": kinds, "peers_missing": missing, "sets": {}}
    for name, (info, pairs) in sets.items():
        row = {"kind": info["kind"], "snr_db": info["snr_db"], **compared.score(runs, pairs["x"], pairs["y"], rate)}
        out["sets"][name] = row
        shown = {s: row[s]["si_sdr_db"] for s in runs}  # None where a system silenced a recording
        print(f"matrix: {name}: " + ", ".join(f"{s} {v:.1f}" if v is not None else f"{s} -" for s, v in shown.items()),
              file=sys.stderr)  # fmt: skip
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnn_denoise.scoring.matrix", description=__doc__.split("\n\n")[0])
    parser.add_argument("matrix")
    parser.add_argument("train")
    parser.add_argument("out")
    parser.add_argument("models", nargs="*", metavar="NAME=MODEL")
    args = parser.parse_args(argv)
    models = dict(m.split("=", 1) for m in args.models if "=" in m)
    if len(models) != len(args.models):
        raise PipelineError("give models as NAME=MODEL, e.g. speech=models:/cnn-denoise@speech")
    write_json(args.out, score(args.matrix, args.train, models))
    return 0


if __name__ == "__main__":
    run_stage(main)

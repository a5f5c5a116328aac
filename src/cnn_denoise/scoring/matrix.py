"""The test matrix for any model: each noise kind and SNR band of data/speech/matrix, every
model run as `cnn-denoise enhance` runs it (its own rate and level through Denoiser), beside
the noisy input, the least-squares filter and spectral gating, in SI-SDR, wide-band PESQ and
DNSMOS. Models trained at other rates (the lab's at 32 kHz) meet the same recordings.

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
from cnn_denoise.scoring import perceptual, quality

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


def scores(pred: torch.Tensor, x: torch.Tensor, y: torch.Tensor, rate: int) -> dict:
    """SI-SDR (and its gain over the input), PESQ-WB and DNSMOS of one system on one set."""
    q = quality.measures(pred, x, y, rate)
    return {"si_sdr_db": q["si_sdr_db"], **perceptual.perceptual(pred, y, rate)}


def enhanced(denoiser, x: torch.Tensor, rate: int) -> torch.Tensor:
    """Each recording of x [Q, 1, N] (at `rate`) through a Denoiser, as `cnn-denoise enhance` runs it."""
    with warnings.catch_warnings():  # an output past full scale is scaled down as a whole, as enhance does
        warnings.simplefilter("ignore", UserWarning)
        return torch.stack([torch.from_numpy(denoiser(r[0].double().numpy(), rate)).float()[None] for r in x])


def systems(models: dict, train: dict, rate: int) -> dict:
    """{name: f(x [Q, 1, N]) -> [Q, 1, N]}: the baselines and each model through Denoiser."""
    from cnn_denoise.enhance.denoiser import Denoiser

    h = baselines.fit_fir(train["x"], train["y"], LINEAR_TAPS)
    out = {
        "noisy": lambda x: x,
        "least-squares": lambda x: baselines.apply_fir(h, x),
        "gating": lambda x: torch.from_numpy(perceptual.spectral_gating(x.numpy(), rate)).float(),
    }
    for name, source in models.items():
        denoiser = Denoiser.load(source)
        out[name] = lambda x, d=denoiser: enhanced(d, x, rate)
    return out


def score(folder, train_path, models: dict) -> dict:
    rate, sets = load(folder)
    train = load_split(train_path)
    runs = systems(models, train, rate)
    out = {"rate": rate, "sets": {}}
    for name, (info, pairs) in sets.items():
        x, y = pairs["x"], pairs["y"]
        row = {"kind": info["kind"], "snr_db": info["snr_db"]}
        for system, run in runs.items():
            row[system] = scores(run(x), x, y, rate)
        out["sets"][name] = row
        print(f"matrix: {name}: " + ", ".join(f"{s} {row[s]['si_sdr_db']:.1f}" for s in runs), file=sys.stderr)
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

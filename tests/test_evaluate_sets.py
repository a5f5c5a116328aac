"""evaluate.sets: the lab's test set and each speech matrix set scored into eval.json's "sets",
with the baselines and (speech only) PESQ-WB and DNSMOS; none of it without the param."""

import json

import numpy as np
import pytest
import torch
from debs import utterance
from helpers import model_settings, write_params_copy

from cnn_denoise import peers
from cnn_denoise.common.atomic import save_torch, write_json
from cnn_denoise.lab import synth
from cnn_denoise.models import checkpoint as ckpt
from cnn_denoise.models import model as cnn


def project(tmp_path, **changes):
    write_params_copy(tmp_path, **{"evaluate.examples": 0, **changes})
    pairs = synth.make_pairs(6, 4000, 0)
    x = torch.stack([p[0] for p in pairs])
    y = torch.stack([p[1] for p in pairs])
    save_torch(tmp_path / "data/split/train.pt", {"x": x[:4], "y": y[:4]})
    save_torch(tmp_path / "data/split/test.pt", {"x": x[4:], "y": y[4:]})
    clean = np.stack([utterance(s, 1.0, 32000) for s in range(2)])[:, None] * 0.2
    noisy = clean + 0.01 * np.random.default_rng(0).standard_normal(clean.shape)
    matrix = tmp_path / "data/speech/matrix"
    save_torch(
        matrix / "white_0to10dB.pt", {"x": torch.from_numpy(noisy).float(), "y": torch.from_numpy(clean).float()}
    )
    sets = {"white_0to10dB": {"kind": "white", "snr_db": [0.0, 10.0], "file": "white_0to10dB.pt", "segments": []}}
    write_json(matrix / "index.json", {"rate": 32000, "seconds": 1.0, "sets": sets})
    ckpt.save(
        cnn.build(model_settings([4, 4], [1, 2, 1]), seed=0),
        tmp_path / "models/model.pt",
        {"sample_rate": 32000, "input_rms": 1e-3},
    )


def run(stage, tmp_path):
    args = ("models/model.pt", "data/split/train.pt", "data/split/test.pt", "metrics/eval.json", "reports")
    return stage("evaluate", *args, cwd=tmp_path)


@pytest.mark.slow
def test_sets_are_scored_with_their_baselines(tmp_path, stage):
    project(tmp_path, **{"evaluate.sets": ["lab", "speech"]})
    proc = run(stage, tmp_path)
    assert proc.returncode == 0, proc.stderr
    sets = json.loads((tmp_path / "metrics/eval.json").read_text())["sets"]
    assert sorted(sets) == ["lab", "white_0to10dB"]
    white = sets["white_0to10dB"]
    assert white["noise"] == "white" and white["snr_db"] == [0.0, 10.0]
    ready = [name for name, why in peers.available().items() if why is None]  # make setup installs them all
    systems = ["cnn", "noisy", "linear", "gating", *ready]
    assert sorted(k for k in white if isinstance(white[k], dict)) == sorted(systems)  # scoring/systems.py's list
    measures = {"pesq_wb", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "si_sdr_db", "si_sdr_gain_db", "stoi", "rtf"}
    for system in systems:
        assert measures <= set(white[system]), system
        gain = white[system]["si_sdr_db"] - white["noisy"]["si_sdr_db"]
        assert abs(white[system]["si_sdr_gain_db"] - gain) < 1e-4, system
    assert all(white[p]["rtf"] > 0 for p in ["cnn", "gating", *ready])
    assert white["gating"]["dnsmos_bak"] > white["noisy"]["dnsmos_bak"]  # gating quiets the white noise
    assert "pesq_wb" not in sets["lab"]["noisy"]  # PESQ-WB cannot hear the lab's 14-15.5 kHz noise
    assert sorted(k for k in sets["lab"] if isinstance(sets["lab"][k], dict)) == ["cnn", "gating", "linear", "noisy"]
    full = json.loads((tmp_path / "reports/measures.json").read_text())
    assert full["sets"]["white_0to10dB"]["noisy"]["mse"] > 0


@pytest.mark.slow
def test_without_sets_eval_json_is_the_labs(tmp_path, stage):
    project(tmp_path)
    assert run(stage, tmp_path).returncode == 0
    assert sorted(json.loads((tmp_path / "metrics/eval.json").read_text())) == ["linear", "test", "train"]


@pytest.mark.slow
def test_a_matrix_at_another_rate_is_one_line(tmp_path, stage):
    project(tmp_path, **{"evaluate.sets": ["speech"]})
    index = tmp_path / "data/speech/matrix/index.json"
    index.write_text(index.read_text().replace('"rate": 32000', '"rate": 16000'))
    proc = run(stage, tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: data/speech/matrix is at 16000 Hz but data.sample_rate is 32000; run dvc repro (speech_matrix mixes "
        "at data.sample_rate)\n"
    )


@pytest.mark.slow  # a real MLflow store
def test_each_peer_is_a_baseline_run_with_its_scores_on_the_matrix(tmp_path, stage, sqlite_store, monkeypatch):
    """With the speech sets, evaluate logs each peer that ran as a baseline run of its own (its
    version a param), its per-set scores under the CNN run's names, equal to eval.json's (but the
    real-time factor, timed each time); a second evaluate of the same matrix adds no peer run."""
    import mlflow

    from cnn_denoise import tracking

    ready = [name for name, why in peers.available().items() if why is None]
    if not ready:
        pytest.skip("no peer installed: pip install '.[peers]'")
    project(tmp_path, **{"evaluate.sets": ["speech"]})
    for _ in range(2):
        monkeypatch.setenv("CNN_DENOISE_TRACKING", "require")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store)
        monkeypatch.setenv("CNN_DENOISE_LOG_MODEL", "0")
        proc = run(stage, tmp_path)
        assert proc.returncode == 0, proc.stderr
    white = json.loads((tmp_path / "metrics/eval.json").read_text())["sets"]["white_0to10dB"]
    mlflow.set_tracking_uri(sqlite_store)
    logged = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")
    mine = [r for r in logged if r.data.tags.get("kind") == "baseline" and r.data.tags["baseline"] in peers.PEERS]
    assert sorted(r.data.tags["baseline"] for r in mine) == sorted(ready)  # once each, though evaluate ran twice
    runs = {r.data.tags["baseline"]: r for r in mine}
    for name, r in runs.items():
        assert r.data.params == {"version": peers.version(name)}
        assert r.info.run_name == f"baseline: {name} (version {peers.version(name)})"
        for measure in ("si_sdr_db", "si_sdr_gain_db", "pesq_wb", "dnsmos_ovrl", "stoi"):
            assert r.data.metrics[f"sets.white_0to10dB.cnn.{measure}"] == pytest.approx(white[name][measure], rel=1e-5)
        assert r.data.metrics["sets.white_0to10dB.cnn.rtf"] > 0  # timed: the first evaluate's, kept

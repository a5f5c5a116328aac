"""DVC experiments (workspace and queued with -j 2) land in the main repository's MLflow store."""

import json
import subprocess
import time

import pytest
from helpers import make_project, sh

pytestmark = pytest.mark.slow


def mlflow_runs(repo):
    import mlflow

    from cnn_denoise import tracking

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")


def test_workspace_and_queued_experiments_share_the_store(tmp_path):
    repo, env = make_project(tmp_path)
    sh(["dvc", "repro"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "baseline"], repo, env)
    sh(["dvc", "exp", "run", "-n", "short", "-S", "train.epochs=1"], repo, env)
    sh(["dvc", "exp", "run", "--queue", "-n", "narrow", "-S", "model.taps=[20,20]"], repo, env)
    sh(["dvc", "exp", "run", "--queue", "-n", "wide", "-S", "model.features=[1,3,1]"], repo, env)
    sh(["dvc", "queue", "start", "-j", "2"], repo, env)
    deadline = time.monotonic() + 400
    while True:
        status = sh(["dvc", "queue", "status"], repo, env).stdout
        if not any(word in status for word in ("Running", "Queued")):
            break
        assert time.monotonic() < deadline, status
        time.sleep(3)
    assert status.count("Success") == 2, status + subprocess.run(["dvc", "queue", "logs", "narrow"], cwd=repo, env=env, capture_output=True, text=True).stdout
    runs = {r.data.tags.get("dvc_exp_name"): r for r in mlflow_runs(repo)}
    assert {"short", "narrow", "wide"} <= set(runs)
    assert runs["narrow"].data.params["model.taps"] == "[20, 20]" and runs["wide"].data.params["model.taps"] == "[40, 40]"
    assert runs["wide"].data.params["model.features"] == "[1, 3, 1]" and runs["short"].data.params["train.epochs"] == "1"
    shown = json.loads(sh(["dvc", "exp", "show", "--json"], repo, env).stdout)
    exps = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs", []):
                exps[rev.get("name")] = rev["data"]["metrics"]["metrics/eval.json"]["data"]["test"]["l1"]
    assert {"short", "narrow", "wide"} <= set(exps)
    for name in ("short", "narrow", "wide"):
        assert runs[name].data.metrics["test.l1"] == exps[name]
    md = sh(["dvc", "exp", "show", "--md"], repo, env).stdout
    assert "narrow" in md and "wide" in md


def test_make_recipe_starts_as_the_linear_baseline_and_trains_a_gate(tmp_path):
    """What `make recipe NAME=linear-gate` runs, on small data: epoch 0 of its history is the
    least-squares filter that evaluate reports as the linear baseline, and the gate trained."""
    import csv

    import torch

    repo, env = make_project(tmp_path)  # committed, nothing run yet: the experiment runs every stage
    ran_it = sh(["python", "-m", "cnn_denoise.recipes", "run", "linear-gate"], repo, env)
    assert "+ dvc exp run -n linear-gate" in ran_it.stderr and "train.init=linear" in ran_it.stderr
    metrics = json.loads((repo / "metrics" / "eval.json").read_text())
    history = list(csv.DictReader((repo / "metrics" / "history.csv").open()))
    assert len(history) == 11
    assert float(history[0]["test_l1"]) == pytest.approx(metrics["baselines"]["linear"]["l1"], rel=1e-4)
    assert float(history[-1]["test_l1"]) == pytest.approx(metrics["test"]["l1"], rel=1e-6)
    gate = torch.load(repo / "models" / "model.pt", weights_only=True)["state_dict"]["layers.1.H"]
    assert gate.shape == (1, 4, 1) and gate[0, 1:].abs().max() > 0
    runs = {r.data.tags.get("dvc_exp_name"): r for r in mlflow_runs(repo)}
    assert runs["linear-gate"].data.params["train.init"] == "linear"

"""DVC experiments (workspace, and four queued with -j 4 at once) land in the main repository's MLflow store."""

import json
import subprocess
import time

import pytest
import yaml
from helpers import assert_runs_complete, make_project, run_queue, sh

pytestmark = pytest.mark.slow


def mlflow_runs(repo):
    import mlflow

    from cnn_denoise import tracking

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")


def test_workspace_and_four_parallel_experiments_share_the_store(tmp_path):
    repo, env = make_project(tmp_path)
    sh(["dvc", "repro"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "baseline"], repo, env)
    sh(["dvc", "exp", "run", "-n", "short", "-S", "train.epochs=1"], repo, env)
    run_queue(
        repo,
        env,
        {
            "narrow": ["-S", "model.taps=[20,20]"],
            "wide": ["-S", "model.features=[1,3,1]"],
            "three-epochs": ["-S", "train.epochs=3"],
            "lr-half": ["-S", "train.lr=0.25"],
        },
        jobs=4,
    )
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    assert_runs_complete(
        client,
        client.get_experiment_by_name("lab2b-cnn-denoise").experiment_id,
        {
            "short": {"train.epochs": "1"},
            "narrow": {"model.taps": "[20, 20]"},
            "wide": {"model.features": "[1, 3, 1]"},
            "three-epochs": {"train.epochs": "3"},
            "lr-half": {"train.lr": "0.25"},
        },
    )
    all_runs = mlflow_runs(repo)
    runs = {r.info.run_name: r for r in all_runs if r.data.tags.get("kind") == "cnn"}
    assert {"short", "narrow", "wide"} <= set(runs)
    for r in (r for r in all_runs if r.data.tags.get("kind") == "cnn"):  # every run complete, none left hanging
        assert r.info.status == "FINISHED" and "test.l1" in r.data.metrics and "model.taps" in r.data.params, (
            r.info.run_name
        )
    assert (
        runs["narrow"].data.params["model.taps"] == "[20, 20]" and runs["wide"].data.params["model.taps"] == "[40, 40]"
    )
    assert (
        runs["wide"].data.params["model.features"] == "[1, 3, 1]" and runs["short"].data.params["train.epochs"] == "1"
    )
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
    table = sh(["python", "-m", "cnn_denoise.views.compare", "exps"], repo, env).stdout.splitlines()
    assert max(map(len, table)) <= 160
    header = table[0].split()
    assert {"taps", "features", "epochs"} <= set(header) and "train" in header and "test" in header
    narrow = next(line for line in table if line.strip().startswith("narrow"))
    assert "20,20" in narrow


def test_make_recipe_starts_as_the_linear_baseline_and_trains_a_gate(tmp_path):
    """What `make recipe NAME=linear-gate` runs, on small data: epoch 0 of its history is the
    least-squares filter that evaluate reports as the linear baseline, and the gate trained."""
    import csv

    import torch

    repo, env = make_project(tmp_path)  # committed, nothing run yet: the experiment runs every stage
    ran_it = sh(["python", "-m", "cnn_denoise.recipes", "run", "linear-gate"], repo, env)
    assert "+ dvc exp run --temp -n linear-gate" in ran_it.stderr and "train.init=linear" in ran_it.stderr
    assert "train: epoch 5/5, train L1 " in ran_it.stdout + ran_it.stderr  # a log's line per epoch (no terminal here)
    metrics = json.loads((repo / "metrics" / "eval.json").read_text())
    history = list(csv.DictReader((repo / "metrics" / "history.csv").open()))
    epochs = yaml.safe_load((repo / "recipes" / "linear-gate.yaml").read_text())["params"]["train.epochs"]
    assert [int(row["epoch"]) for row in history] == list(range(epochs + 1))  # epoch 0 and every epoch of the recipe
    assert float(history[0]["test_l1"]) * 2000 == pytest.approx(
        metrics["linear"]["l1_sum"], rel=1e-4
    )  # 2000 samples a recording
    assert float(history[-1]["test_l1"]) == pytest.approx(metrics["test"]["l1"], rel=5e-6)  # eval.json keeps 6 digits
    gate = torch.load(repo / "models" / "model.pt", weights_only=True)["state_dict"]["layers.1.H"]
    assert gate.shape == (1, 4, 1) and gate[0, 1:].abs().max() > 0
    runs = {r.data.tags.get("dvc_exp_name"): r for r in mlflow_runs(repo)}
    assert runs["linear-gate"].data.params["train.init"] == "linear"
    assert "the workspace now holds experiment linear-gate" in ran_it.stderr
    assert "git checkout HEAD -- params.yaml dvc.lock metrics && dvc checkout" in ran_it.stderr
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    version = client.get_model_version_by_alias("cnn-denoise", "linear-gate")  # make recipe registers its model
    assert version.run_id == runs["linear-gate"].info.run_id
    assert version.tags["dvc_exp_name"] == "linear-gate" and version.description.startswith(
        "Trained by run linear-gate"
    )

    # run again (shown by --dry-run, which names what a run would take): a new experiment, not DVC's conflict
    again = sh(["python", "-m", "cnn_denoise.recipes", "run", "linear-gate", "--dry-run"], repo, env)
    assert "+ dvc exp run --temp -n linear-gate-2" in again.stderr
    forced = sh(["python", "-m", "cnn_denoise.recipes", "run", "linear-gate", "--force", "--dry-run"], repo, env)
    assert "+ dvc exp run --temp -f -n linear-gate " in forced.stderr


def test_temp_experiment_first_in_a_fresh_clone_keeps_its_model(tmp_path):
    """The first run of a fresh clone is `dvc exp run --temp`: its run is named after the
    experiment, its artifacts live in the main repository (DVC deletes the temp copy), and its
    model loads with mlflow.pyfunc and takes a 1-second (32000-sample) input."""
    import mlflow
    import numpy as np
    import torch

    from cnn_denoise import tracking
    from cnn_denoise.models import checkpoint as ckpt

    repo, env = make_project(tmp_path)
    sh(["dvc", "exp", "run", "--temp", "-n", "first-temp", "-S", "train.epochs=1"], repo, env)
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name(tracking.EXPERIMENT)
    assert (
        ".dvc/tmp" not in experiment.artifact_location
        and experiment.artifact_location == (repo.resolve() / "mlartifacts").as_uri()
    )
    [run] = [r for r in mlflow_runs(repo) if r.data.tags.get("kind") == "cnn"]
    assert run.info.run_name == "first-temp" and run.info.status == "FINISHED"
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    x = np.random.default_rng(0).standard_normal((1, 1, 32000)).astype(np.float32) * 1e-3
    checkpoint = mlflow.artifacts.download_artifacts(
        f"runs:/{run.info.run_id}/checkpoint/model.pt", dst_path=str(tmp_path / "ck")
    )
    with torch.no_grad():
        expected = ckpt.load(checkpoint)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-6)
    serve_and_predict(repo, env, f"runs:/{run.info.run_id}/model", x, expected)


def serve_and_predict(repo, env, uri, x, expected):
    """`mlflow models serve --env-manager local` on a free loopback port answers a REST request
    for x with the expected output; stopped by its PID (group)."""
    import os
    import signal
    import urllib.request

    import numpy as np
    from helpers import free_port

    port = free_port()
    log = open(repo / "serve.log", "w")
    env = dict(env, MLFLOW_TRACKING_URI=f"sqlite:///{repo / 'mlflow.db'}")
    proc = subprocess.Popen(
        ["mlflow", "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        cwd=repo,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (repo / "serve.log").read_text()[-3000:]
                time.sleep(1)
        body = json.dumps({"inputs": x.tolist()}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            got = np.array(json.loads(r.read())["predictions"], dtype=np.float32)
        assert got.shape == (1, 1, 32000)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()

"""The pipeline against a real `mlflow server` on 127.0.0.1, read back through its REST API;
and a server that is down loses no DVC output."""

import json

import pytest
from helpers import free_port, make_project, rest, sh

pytestmark = pytest.mark.slow


def test_pipeline_logs_to_a_tracking_server(tmp_path, mlflow_server):
    repo, env = make_project(tmp_path / "project")
    env["MLFLOW_TRACKING_URI"] = mlflow_server
    sh(["dvc", "repro"], repo, env)
    assert not (repo / "mlflow.db").exists()  # nothing went to the local default store
    experiment = rest(mlflow_server, "experiments/get-by-name", experiment_name="lab2b-cnn-denoise")["experiment"]
    runs = rest(
        mlflow_server, "runs/search", {"experiment_ids": [experiment["experiment_id"]], "filter": "tags.kind = 'cnn'"}
    )["runs"]
    assert len(runs) == 1
    run = runs[0]
    run_id = run["info"]["run_id"]
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["model.taps"] == "[40, 40]" and params["train.epochs"] == "2" and params["data.test_size"] == "4"
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    final = json.loads((repo / "metrics/eval.json").read_text())
    assert metrics["test.l1"] == pytest.approx(final["test"]["l1"], rel=1e-12)
    history = rest(mlflow_server, "metrics/get-history", run_id=run_id, metric_key="epoch.test_l1")["metrics"]
    assert sorted(m["step"] for m in history) == [0, 1, 2]
    top = {f["path"] for f in rest(mlflow_server, "artifacts/list", run_id=run_id)["files"]}
    plots = {f["path"] for f in rest(mlflow_server, "artifacts/list", run_id=run_id, path="plots")["files"]}
    assert "plots" in top and {"plots/history.csv", "plots/history.png"} <= plots
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["git_dirty"] in ("True", "False") and len(tags["git_commit"]) == 40 and tags["dataset_md5"]


def test_server_down_keeps_the_outputs(tmp_path):
    """...and its "tracking failed" line shows the URI without its password, which holds the
    characters that fool a URL parser (issue 38)."""
    repo, env = make_project(tmp_path / "project")
    uri = f"http://ann:pa/QZ#s?w@127.0.0.1:{free_port()}"
    env.update(MLFLOW_TRACKING_URI=uri, CNN_DENOISE_TRACKING="warn")
    proc = sh(["dvc", "repro"], repo, env)
    assert (
        "MLflow tracking failed while logging training and evaluation at http://ann:***@127.0.0.1:"
        in proc.stderr + proc.stdout
    )
    assert "QZ" not in proc.stderr + proc.stdout
    assert (repo / "models/model.pt").exists() and (repo / "metrics/eval.json").exists()
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout
    env["CNN_DENOISE_TRACKING"] = "require"
    proc = sh(["dvc", "repro", "-f", "-s", "evaluate"], repo, env, check=False)
    assert (
        proc.returncode != 0
        and "MLflow tracking failed while logging training and evaluation" in proc.stderr + proc.stdout
    )
    assert "QZ" not in proc.stderr + proc.stdout
    assert (repo / "metrics/eval.json").exists()

"""MLflow logging into a real SQLite store: one run per model, found again by the model's hash."""

import os
import subprocess
import sys

import pytest
import torch
from helpers import model_settings

from cnn_denoise import tracking
from cnn_denoise.common.hashing import sha256_file
from cnn_denoise.models import checkpoint as ckpt
from cnn_denoise.models import model as cnn
from cnn_denoise.tracking import provenance, runs
from cnn_denoise.tracking import store as stores


@pytest.fixture
def store(tmp_path, monkeypatch, sqlite_store):
    uri = sqlite_store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("CNN_DENOISE_TRACKING", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.setenv("DVC_EXP_NAME", "brisk-lamb")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "dvc.lock").write_text(LOCK)
    return uri


LOCK = """schema: '2.0'
stages:
  fetch:
    params:
      params.yaml:
        data.url: synthetic
        data.synthetic:
          pairs: 12
          seed: 0
    outs:
    - path: data/raw/dataset.zip
      md5: 0123456789abcdef0123456789abcdef
  split:
    params:
      params.yaml:
        data.test_size: 4
"""


@pytest.mark.slow  # a real MLflow store: its schema takes seconds to create
def test_train_then_evaluate_share_one_run(store, tmp_path, monkeypatch):
    import mlflow
    from mlflow.utils import requirements_utils

    model = cnn.build(model_settings([3, 2], [1, 2, 1]), seed=0)
    path = tmp_path / "model.pt"
    ckpt.save(model, path)
    history = [{"epoch": e, "train_l1": 1.0 / (e + 1), "test_l1": 2.0 / (e + 1)} for e in range(3)]
    (tmp_path / "history.csv").write_text("epoch,train_l1,test_l1\n0,1,2\n")
    checked = []  # MLflow's check of the requirements against the installed distributions (slow, and moot here)
    check = requirements_utils._check_requirement_satisfied
    monkeypatch.setattr(requirements_utils, "_check_requirement_satisfied", lambda r: checked.append(r) or check(r))
    tracking.log_training({"model.taps": "[3, 2]", "train.lr": "0.5"}, history, path, tmp_path / "history.csv")
    assert checked == []  # neither when the model is written nor when MLflow loads it back to try the input example
    baselines = {"zeros": {"l1": 5.0, "mse": 1.0}, "noisy": {"si_sdr_db": -4.6}}
    tracking.log_evaluation(
        path, {"train": {"l1": 0.25}, "test": {"l1": 0.5, "mse": 0.1, "si_sdr_db": -14.7}}, None, baselines
    )

    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params == {
        "model.taps": "[3, 2]",
        "train.lr": "0.5",
        "data.url": "synthetic",
        "data.synthetic.pairs": "12",
        "data.synthetic.seed": "0",
        "data.test_size": "4",
    }
    tags = run.data.tags
    assert tags["model_sha256"] == sha256_file(path)
    assert tags["dataset_md5"] == "0123456789abcdef0123456789abcdef" and tags["dvc_exp_name"] == "brisk-lamb"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {"plots/history.csv", "plots/history.png"}
    assert run.data.metrics["test.l1"] == 0.5 and run.data.metrics["train.l1"] == 0.25
    steps = mlflow.MlflowClient().get_metric_history(run.info.run_id, "epoch.test_l1")
    assert [(m.step, m.value) for m in steps] == [(0, 2.0), (1, 1.0), (2, 2.0 / 3)]
    assert run.info.run_name == "brisk-lamb" and tags["kind"] == "cnn"  # named after the DVC experiment
    logged = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")  # models from code: no pickle
    assert checked  # a load of ours checks, as MLflow does
    x = torch.randn(2, 1, 300)
    torch.testing.assert_close(torch.from_numpy(logged.predict(x.numpy())), model(x).detach())
    [version] = mlflow.MlflowClient().search_model_versions(f"name = '{tracking.REGISTERED_MODEL}'")
    assert version.run_id == run.info.run_id
    # the registry says what the model does to its test set, and which alias enhance takes
    assert version.description.startswith("Trained by run brisk-lamb at ")
    assert "makes its test set worse than the noisy input: SI-SDR -14.7 dB vs -4.6 dB" in version.description
    assert "enhance with no -m takes the version aliased @speech, else @best" in version.description
    registered = mlflow.MlflowClient().get_registered_model(tracking.REGISTERED_MODEL)
    assert "@speech, else @best" in registered.description
    # L1 and MSE in a unit a chart labels (0.5 and 0.1 against zeros' 5 and 1: -20 dB and -10 dB)
    assert run.data.metrics["test.l1_vs_zeros_db"] == pytest.approx(-20)
    assert run.data.metrics["test.mse_vs_zeros_db"] == pytest.approx(-10)
    tracking.log_training({"train.lr": "0.5"}, history, path)  # the same model again (a run-cache restore)
    assert len(mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")) == 1


@pytest.mark.slow
def test_a_rerun_that_trains_a_known_model_is_what_its_name_promotes(store, tmp_path, monkeypatch):
    """A recipe run as experiment `speech` after a trial of that name: its model is one another
    run (speech-2) already holds, so nothing new is logged, and `promote speech` must then give
    that model's version, not the older trial's."""
    import mlflow

    history = [{"epoch": 0, "train_l1": 1.0, "test_l1": 1.0}]
    paths = {}
    for name, seed in (("speech", 0), ("speech-2", 1), ("speech", 1)):  # trial, the recipe, the recipe again
        monkeypatch.setenv("DVC_EXP_NAME", name)
        paths[name, seed] = tmp_path / f"{name}-{seed}.pt"
        ckpt.save(cnn.build(model_settings([3, 2], [1, 2, 1]), seed=seed), paths[name, seed])
        tracking.log_training({"train.lr": "0.5"}, history, paths[name, seed])
    mlflow.set_tracking_uri(store)
    client = mlflow.MlflowClient()
    logged = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")
    assert sorted(r.info.run_name for r in logged) == ["speech", "speech-2"]  # the rerun logged nothing new

    def sha_of(version):
        return client.get_model_version(tracking.REGISTERED_MODEL, version).tags["model_sha256"]

    recipe = sha256_file(paths["speech-2", 1])
    assert sha_of(tracking.promote("speech", "speech")) == recipe
    assert sha_of(tracking.promote("speech-2", "x")) == recipe
    assert client.get_model_version_by_alias(tracking.REGISTERED_MODEL, "speech").tags["model_sha256"] == recipe


RACE = """
import sys, time
from cnn_denoise import tracking
from cnn_denoise.tracking import store
while time.time() < float(sys.argv[1]):  # start together
    time.sleep(0.001)
mlflow, exp_id = store.open_store()
with mlflow.start_run(run_name=sys.argv[2]):
    mlflow.log_param("who", sys.argv[2])
"""


@pytest.mark.slow
def test_processes_creating_a_fresh_store_at_once_all_succeed(tmp_path):
    """A fresh SQLite store opened by three processes at once (parallel queue workers on a new
    clone): MLflow creates its schema under a lock, so every process logs its run."""
    import time

    import mlflow

    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri)
    go = str(time.time() + 8)
    procs = [
        subprocess.Popen([sys.executable, "-c", RACE, go, f"w{i}"], env=env, stderr=subprocess.PIPE, text=True)
        for i in range(3)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    names = sorted(r.info.run_name for r in client.search_runs([exp.experiment_id]))
    assert names == ["w0", "w1", "w2"]


@pytest.mark.slow
def test_runs_left_running_by_a_dead_process_are_marked_killed(store):
    import socket

    import mlflow

    mlflow.set_tracking_uri(store)
    client = mlflow.MlflowClient()
    exp_id = stores.open_store()[1]
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine = client.create_run(exp_id, tags={"host": socket.gethostname(), "pid": str(dead.pid)}).info.run_id
    alive = client.create_run(exp_id, tags={"host": socket.gethostname(), "pid": str(os.getpid())}).info.run_id
    runs._open()
    assert client.get_run(mine).info.status == "KILLED" and client.get_run(alive).info.status == "RUNNING"


def test_run_names_say_where_the_run_came_from():
    assert provenance.run_name({"dvc_exp_name": "linear-gate", "git_commit": "abcdef123"}) == "linear-gate"
    assert provenance.run_name({"git_commit": "abcdef123456", "git_dirty": "False"}) == "workspace@abcdef1"
    assert provenance.run_name({"git_commit": "abcdef123456", "git_dirty": "True"}) == "workspace@abcdef1+changes"
    assert provenance.run_name({}) == "workspace"


def test_failure_is_one_line_and_keeps_going(monkeypatch, capsys):
    monkeypatch.setenv("CNN_DENOISE_TRACKING", "warn")

    def broken():
        raise ConnectionError("server at 127.0.0.1:9 refused\nmore detail")

    assert tracking.guarded("logging training", broken) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MLflow tracking failed while logging training" in err and "refused" in err
    monkeypatch.setenv("CNN_DENOISE_TRACKING", "require")
    assert tracking.guarded("logging training", broken) == 1
    monkeypatch.setenv("CNN_DENOISE_TRACKING", "off")
    assert tracking.guarded("logging training", broken) == 0


def test_default_store_is_sqlite_at_the_project_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "stages").mkdir()
    monkeypatch.chdir(tmp_path / "stages")
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_queued_experiments_use_the_main_repositorys_store(monkeypatch, tmp_path):
    """dvc exp run --queue/--temp run in .dvc/tmp/exps/...; DVC_ROOT names the main repo."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    copy = tmp_path / ".dvc" / "tmp" / "exps" / "tmp123"
    copy.mkdir(parents=True)
    (copy / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(copy)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"


@pytest.mark.slow  # waits out SQLite's busy time-out (~20 s)
def test_a_locked_store_is_one_warning_and_the_stage_goes_on(store, tmp_path, monkeypatch, capsys):
    """Another process holding the SQLite store's write lock (a long query, a crashed writer):
    evaluate's logging fails in one line instead of hanging or losing the outputs."""
    import sqlite3

    model = cnn.build(model_settings([3], [1, 1]), seed=0)
    path = tmp_path / "model.pt"
    ckpt.save(model, path)
    tracking.log_training({"train.lr": "0.5"}, [{"epoch": 0, "train_l1": 1.0, "test_l1": 1.0}], path)
    capsys.readouterr()
    holder = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        monkeypatch.setenv("CNN_DENOISE_TRACKING", "warn")
        assert tracking.guarded("logging evaluation", lambda: tracking.log_evaluation(path, {"test": {"l1": 0.5}})) == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    lines = capsys.readouterr().err.strip().splitlines()
    assert (
        len(lines) == 1
        and "MLflow tracking failed while logging evaluation" in lines[0]
        and "database is locked" in lines[0]
    )


@pytest.mark.slow  # a real MLflow store
def test_two_runs_logging_one_dataset_at_once_both_keep_it(store, tmp_path):
    """MLflow's store looks a dataset up, then inserts it if it was not there: two runs logging the
    same split at once can both miss it, and the second insert breaks the table's key (seen as
    `duplicate key ... "dataset_pk"` on the team's PostgreSQL in a search). Here the first run is
    held between its look-up and its insert while the second logs the split and commits, the same
    interleaving on SQLite; both runs end with the split as their input, one dataset row."""
    import threading

    import mlflow
    from mlflow.tracking._tracking_service.utils import _get_store
    from sqlalchemy import event

    split = tmp_path / "train.pt"
    split.write_bytes(b"the same split")
    mlflow.set_tracking_uri(store)
    exp = mlflow.set_experiment("race")
    engine = _get_store().engine
    looked, logged, errors, held = threading.Event(), threading.Event(), [], []

    def hold(conn, cursor, statement, *args):
        if threading.current_thread().name == "first" and "INSERT INTO datasets" in statement and not held:
            held.append(statement)
            looked.set()
            logged.wait(30)

    def first():
        try:
            with mlflow.start_run(run_name="first"):
                runs._log_datasets(mlflow, {"train": split})
        except Exception as e:  # noqa: BLE001 (the assertion below shows it)
            errors.append(repr(e))

    event.listen(engine, "before_cursor_execute", hold)
    try:
        thread = threading.Thread(target=first, name="first")
        thread.start()
        assert looked.wait(60), "the first run never reached its insert"
        with mlflow.start_run(run_name="second"):
            runs._log_datasets(mlflow, {"train": split})
        logged.set()
        thread.join(60)
    finally:
        logged.set()
        event.remove(engine, "before_cursor_execute", hold)
    assert held and not errors, errors
    found = mlflow.search_runs([exp.experiment_id], output_format="list")
    assert sorted(r.info.run_name for r in found) == ["first", "second"]
    for r in found:
        assert [(d.dataset.name, d.dataset.digest) for d in r.inputs.dataset_inputs] == [
            ("train", sha256_file(split, "md5"))
        ]


def test_a_version_says_whether_it_beats_its_noisy_input_and_what_enhance_takes():
    from cnn_denoise.tracking.registry import version_description

    better = version_description("Trained by run speech at abc1234.", 9.98, 7.09)
    worse = version_description("Trained by run workspace@abc1234.", -14.72, -4.57)
    assert "It improves its test set over the noisy input: SI-SDR 10.0 dB vs 7.1 dB." in better
    assert "makes its test set worse than the noisy input: SI-SDR -14.7 dB vs -4.6 dB; not a model" in worse
    assert all("takes the version aliased @speech, else @best" in d for d in (better, worse))

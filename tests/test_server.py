"""The team's tracking server (cnn_denoise.tracking.server): MLflow on PostgreSQL, the pipeline and a
parallel queued sweep logging to it, read back over its REST API; stopped by its PIDs."""

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest
from helpers import assert_runs_complete, make_project, rest, run_queue, sh

from cnn_denoise.common.procs import pid_alive
from cnn_denoise.tracking import server


@pytest.mark.slow
def test_pipeline_and_a_parallel_sweep_on_the_postgresql_server(tmp_path, team_server):
    import mlflow

    url = team_server["url"]
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    for host, status in (("cnn-team.test", 200), (f"cnn-team.test:{url.rsplit(':', 1)[1]}", 200), ("evil.test", 403)):
        try:  # the name the team was told to use is accepted; others are refused (DNS rebinding)
            code = urllib.request.urlopen(urllib.request.Request(search, headers={"Host": host}), timeout=10).status
        except urllib.error.HTTPError as exc:
            code = exc.code
        assert code == status, host
    assert (server.Path(team_server["folder"]) / "pgdata" / "PG_VERSION").exists()
    with open(f"/proc/{team_server['postgres_pid']}/cmdline", "rb") as f:
        assert b"listen_addresses=127.0.0.1" in f.read()
    repo, env = make_project(tmp_path / "project")
    env["MLFLOW_TRACKING_URI"] = url
    sh(["dvc", "repro"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "ran"], repo, env)
    sweep = {
        "one-epoch": ["-S", "train.epochs=1"],
        "three-epochs": ["-S", "train.epochs=3"],
        "narrow": ["-S", "model.taps=[20,20]"],
        "wide": ["-S", "model.features=[1,3,1]"],
    }
    run_queue(repo, env, sweep, jobs=4)
    assert not (repo / "mlflow.db").exists() and not (repo / "mlartifacts").exists()  # all of it went to the server

    experiment = rest(url, "experiments/get-by-name", experiment_name="lab2b-cnn-denoise")["experiment"]
    assert experiment["artifact_location"].startswith(
        "mlflow-artifacts:"
    )  # proxied: clients need no access to the folder
    runs = rest(
        url,
        "runs/search",
        {"experiment_ids": [experiment["experiment_id"]], "filter": "tags.kind = 'cnn'", "max_results": 50},
    )["runs"]
    names = sorted(r["info"]["run_name"] for r in runs)
    assert len(names) == 5 and set(sweep) <= set(names), names
    by_name = {r["info"]["run_name"]: r for r in runs}
    params = {p["key"]: p["value"] for p in by_name["narrow"]["data"]["params"]}
    assert params["model.taps"] == "[20, 20]" and params["train.epochs"] == "2"
    final = {m["key"]: m["value"] for m in by_name["three-epochs"]["data"]["metrics"]}
    shown = json.loads(sh(["dvc", "exp", "show", "--json"], repo, env).stdout)
    dvc_l1 = {
        rev["name"]: rev["data"]["metrics"]["metrics/eval.json"]["data"]["test"]["l1"]
        for b in shown
        for e in b.get("experiments") or []
        for rev in e["revs"]
        if rev.get("name")
    }
    assert final["test.l1"] == dvc_l1["three-epochs"]
    client = mlflow.MlflowClient(tracking_uri=url)
    assert_runs_complete(
        client,
        experiment["experiment_id"],
        {
            "one-epoch": {"train.epochs": "1"},
            "three-epochs": {"train.epochs": "3"},
            "narrow": {"model.taps": "[20, 20]"},
            "wide": {"model.features": "[1, 3, 1]"},
        },
    )
    stored = list((server.Path(team_server["folder"]) / "artifacts").rglob("model.pt"))
    assert len(stored) >= 5  # the server wrote the artifacts into its own folder

    assert server.stop(server.Path(team_server["folder"]))
    assert not pid_alive(team_server["mlflow_pid"]) and not pid_alive(team_server["postgres_pid"])
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/health", timeout=2)


def test_start_without_postgresql_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(server, "PG_ROOT", tmp_path / "none")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        server.PipelineError,
        match=r"^PostgreSQL's initdb is not installed; install it \(Debian: apt-get install postgresql\)",
    ):
        server.start(tmp_path / "team", "127.0.0.1", 5000, 1)
    assert not (tmp_path / "team" / "server.json").exists()


def test_status_and_stop_of_nothing(tmp_path):
    env = dict(os.environ, CNN_DENOISE_DEBUG="")
    status = subprocess.run(
        [sys.executable, "-m", "cnn_denoise.tracking.server", "status", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert (status.returncode, status.stdout) == (3, "not running\n")
    (tmp_path / "server.json").write_text(
        json.dumps({"mlflow_pid": 2**22 + 7, "postgres_pid": 2**22 + 9, "url": "http://127.0.0.1:1"})
    )
    assert server.status(tmp_path) is None  # a record whose processes are gone is not a running server
    stop = subprocess.run(
        [sys.executable, "-m", "cnn_denoise.tracking.server", "stop", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert stop.returncode == 0 and not (tmp_path / "server.json").exists()


def test_a_folder_postgres_cannot_enter_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(server, "_user", lambda: {"user": "postgres", "group": "postgres"})
    monkeypatch.setattr(server, "pg_bin", lambda name: f"/usr/bin/{name}")
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(
        server.PipelineError, match=rf"who cannot enter {closed} \(mode 700\); chmod o\+x {closed} or start with --dir"
    ):
        server.start(closed / "team", "127.0.0.1", 5000, 1)


@pytest.mark.slow
def test_a_stale_record_never_signals_a_stranger(tmp_path):
    """server.json naming PIDs that other processes hold now (the machine restarted, PIDs
    reused): `status` says not running and `stop` leaves those processes alone."""
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        record = {"url": "http://127.0.0.1:1", "mlflow_pid": stranger.pid, "postgres_pid": stranger.pid}
        for stale in ({}, {"mlflow_started": "1", "postgres_started": "1"}):  # an old record; a wrong start time
            (tmp_path / "server.json").write_text(json.dumps({**record, **stale}))
            cmd = [sys.executable, "-m", "cnn_denoise.tracking.server"]
            status = subprocess.run([*cmd, "status", "--dir", str(tmp_path)], capture_output=True, text=True)
            assert (status.returncode, status.stdout) == (3, "not running\n")
            stop = subprocess.run([*cmd, "stop", "--dir", str(tmp_path)], capture_output=True, text=True)
            assert stop.returncode == 0 and stranger.poll() is None, stop.stderr
    finally:
        stranger.kill()
        stranger.wait()


def test_start_on_a_port_that_answers_is_refused(tmp_path, http_server):
    """Another service on the port: its URL must not be printed as the team's server."""
    _, url = http_server
    port = int(url.rsplit(":", 1)[1])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cnn_denoise.tracking.server",
            "start",
            "--dir",
            str(tmp_path / "team"),
            "--port",
            str(port),
        ],
        capture_output=True,
        text=True,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and f"port {port} on 127.0.0.1 already answers" in lines[0], (
        proc.stderr
    )
    assert not (tmp_path / "team").exists()


def test_allowed_hosts_name_this_machine_when_serving_the_network():
    import socket

    names = server.allowed_hosts("0.0.0.0", 5000, "mlflow.lab.example").split(",")
    assert {socket.gethostname(), f"{socket.gethostname()}:5000", "mlflow.lab.example:5000", "localhost"} <= set(names)
    assert socket.gethostname() not in server.allowed_hosts("127.0.0.1", 5000).split(",")

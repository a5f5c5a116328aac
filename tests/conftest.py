"""Fixtures: real servers on 127.0.0.1, each stopped by its own PID."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, free_port, wait_healthy

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
if os.environ.get("PYTEST_XDIST_WORKER"):  # one process per core already: one thread each (before torch loads)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
# Ctrl-C reaches the commands the tests start, as a terminal's would: a shell that starts pytest in
# the background without job control (`make test &` in a script) has it ignored, and every child
# inherits that, so the Ctrl-C tests would wait for an exit that never comes. A handler here is
# reset to the default in each child at exec.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def http_server(tmp_path):
    """A loopback HTTP server (tests/loopback_http.py) serving tmp_path/www; stopped by its PID."""
    root = tmp_path / "www"
    root.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "loopback_http.py"), str(root), "120"], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(proc.stdout.readline())
        yield root, f"http://127.0.0.1:{port}"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on a free loopback port, one worker, stopped by its PID (group)."""
    port = free_port()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_DISABLE_TELEMETRY="true")
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination",
        str(tmp_path / "artifacts"),
    ]
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_healthy(url, proc, 60):
            raise RuntimeError(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()


@pytest.fixture
def team_server():
    """`python -m cnn_denoise.tracking.server start`: MLflow on a PostgreSQL database, both on free
    loopback ports, stopped by their PIDs. Its folder is made in /tmp itself (pytest's folders
    are 0700 and PostgreSQL runs as the postgres user under root). Skips without PostgreSQL,
    except under CI, which installs it (make system)."""
    import shutil
    import tempfile

    from cnn_denoise.common.errors import PipelineError
    from cnn_denoise.tracking import server

    try:
        server.pg_bin("postgres")
    except PipelineError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    folder = Path(tempfile.mkdtemp(prefix="cnn-denoise-team-"))
    folder.chmod(0o755)  # start leaves an existing folder's mode alone: the postgres user must enter it
    try:
        state = server.start(folder, "127.0.0.1", free_port(), 2, "cnn-team.test")
        yield state
    finally:
        server.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def stage(monkeypatch):
    """Run stages/NAME.py's main() in this process, as `python stages/NAME.py ARGS` in `cwd`
    would (run_stage turns errors into one line and an exit status), with tracking off.
    Returns (returncode, stderr) like subprocess.run."""
    import contextlib
    import importlib.util
    import io

    from cnn_denoise.common.errors import run_stage

    monkeypatch.setenv("CNN_DENOISE_TRACKING", "off")

    def run(name, *args, cwd):
        monkeypatch.chdir(cwd)
        spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exited:
            run_stage(lambda: module.main([str(a) for a in args]))
        return subprocess.CompletedProcess([name, *args], exited.value.code, "", err.getvalue())

    return run


@pytest.fixture(scope="session")
def _empty_store(tmp_path_factory):
    """A SQLite MLflow store with its schema made, once per test process (MLflow's migrations
    take seconds; copying the file takes none)."""
    import mlflow

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def sqlite_store(tmp_path, _empty_store):
    """tmp_path/mlflow.db: a fresh, empty MLflow store; returns its URI."""
    import shutil

    shutil.copy(_empty_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import io
import zipfile

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def torch_bytes(obj) -> bytes:
    """What torch.save writes for obj."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def zip_of(path, members: dict[str, bytes]):
    """A deflated zip at path holding members {name: bytes}."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_server(tmp_path):
    """A loopback HTTP server (tests/loopback_http.py) serving tmp_path/www; stopped by its PID."""
    root = tmp_path / "www"
    root.mkdir()
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "loopback_http.py"), str(root), "120"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield root, f"http://127.0.0.1:{port}"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# ---- end-to-end helpers: a temporary copy of the project, driven through DVC's CLI ----

SMALL = {"pairs": 12, "samples": 2000}  # a dataset small enough for seconds-long runs
STAGES = ("fetch", "unzip", "split", "train", "evaluate")


def sh(cmd, cwd, env, check=True):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def set_params(repo: Path, **changes):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = params
        for p in parents:
            node = node[p]
        node[key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def ran(proc) -> list[str]:
    out = proc.stdout + proc.stderr
    return [s for s in STAGES if f"Running stage '{s}'" in out]



def write_params_copy(folder: Path, **changes) -> None:
    """params.yaml of the repository, with changes, written into folder."""
    shutil.copy(REPO / "params.yaml", folder / "params.yaml")
    set_params(folder, **changes)


def make_project(repo: Path, **changes) -> tuple[Path, dict]:
    """Copy the tracked files (not outputs) into a new git repo with small data; return it and the env."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (REPO / name).is_file() and not name.startswith(("metrics/", "dvc.lock", "bench/results")):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "CNN_DENOISE_"))}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", CNN_DENOISE_TRACKING="require",
               MLFLOW_DISABLE_TELEMETRY="true", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    set_params(repo, **{f"data.synthetic.{k}": v for k, v in SMALL.items()},
               **{"data.test_size": 4, "train.epochs": 2, "train.batch_size": 4, **changes})
    sh(["git", "init", "-q"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "copy"], repo, env)
    return repo, env


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on a free loopback port, one worker, stopped by its PID (group)."""
    port = free_port()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_DISABLE_TELEMETRY="true")
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination", str(tmp_path / "artifacts")]
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()

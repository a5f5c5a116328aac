"""Plain helpers shared by the tests (fixtures live in conftest.py)."""

import io
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def torch_bytes(obj) -> bytes:
    """What torch.save writes for obj."""
    import torch

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

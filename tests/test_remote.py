"""The team's DVC remote (.dvc/config `team`): what one clone pushes, a second clone pulls, so
`dvc repro` there has nothing to do and `dvc metrics show` works without training; a named
experiment travels between the clones through a bare git repository and the same remote."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from helpers import make_project, sh

pytestmark = pytest.mark.slow


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def exp_metrics(repo, env) -> dict:
    shown = json.loads(sh(["dvc", "exp", "show", "--json"], repo, env).stdout)
    return {
        rev["name"]: rev["data"]["metrics"]["metrics/eval.json"]["data"]
        for b in shown
        for e in b.get("experiments") or []
        for rev in e["revs"]
        if rev.get("name")
    }


def test_push_in_one_clone_pull_in_another(tmp_path):
    remote, origin = tmp_path / "dvc-remote", tmp_path / "origin.git"
    a, env = make_project(tmp_path / "a")
    assert "team" in sh(["dvc", "remote", "list"], a, env).stdout  # the committed default
    sh(["dvc", "remote", "modify", "--local", "team", "url", str(remote)], a, env)
    sh(["dvc", "repro"], a, env)
    sh(["git", "add", "-A"], a, env)
    sh(["git", "commit", "-qm", "results"], a, env)
    pushed = sh(["dvc", "push"], a, env)
    assert "pushed" in pushed.stdout and any(remote.rglob("*")), pushed.stdout
    sh(["git", "init", "-q", "--bare", str(origin)], tmp_path, env)
    sh(["git", "remote", "add", "origin", str(origin)], a, env)
    sh(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], a, env)

    b = tmp_path / "b"
    sh(["git", "clone", "-q", "-b", "main", str(origin), str(b)], tmp_path, env)
    assert not (b / "models" / "model.pt").exists()
    # sources/ is each machine's own (git-ignored): b keeps the same local packages as a (the tiny
    # .debs make_project puts there stand in for apt-get download)
    shutil.copytree(a / "sources", b / "sources", dirs_exist_ok=True)
    sh(["dvc", "remote", "modify", "--local", "team", "url", str(remote)], b, env)
    sh(["dvc", "pull"], b, env)
    assert md5(b / "models" / "model.pt") == md5(a / "models" / "model.pt")
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], b, env).stdout
    repro = sh(["dvc", "repro"], b, env)
    assert "Running stage" not in repro.stdout + repro.stderr
    show = ["dvc", "metrics", "show", "--json"]
    assert json.loads(sh(show, b, env).stdout) == json.loads(sh(show, a, env).stdout)
    assert not (b / "mlflow.db").exists()  # nothing was trained or logged in b

    # a named experiment: run in a, pushed (git refs to origin, files to the remote), pulled in b
    sh(["dvc", "exp", "run", "-n", "shared", "-S", "train.epochs=1"], a, env)
    sh(["dvc", "exp", "push", "origin", "shared"], a, env)
    assert "shared" in sh(["dvc", "exp", "list", "origin"], b, env).stdout
    sh(["dvc", "exp", "pull", "origin", "shared"], b, env)
    assert exp_metrics(b, env)["shared"] == exp_metrics(a, env)["shared"]
    sh(["dvc", "exp", "apply", "shared"], b, env)
    assert md5(b / "models" / "model.pt") == md5(
        a / "models" / "model.pt"
    )  # a's workspace holds the experiment's result
    assert "Data and pipelines are up to date" in sh(["dvc", "status"], b, env).stdout

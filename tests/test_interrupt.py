"""Stopping a long command leaves the workspace as it was: `recipes run` (make recipe), a sweep
and a search interrupted at several moments, through the real command, in a small repository
whose stage writes models/model.pt and metrics/history.csv as the pipeline's train stage does
and then waits to be stopped. The oracle is the workspace itself, read before and after: HEAD
on its branch, and params.yaml (with an uncommitted edit and its comments), dvc.lock, the model
and the metrics, byte for byte."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnn_denoise.common.procs import pid_alive

pytestmark = pytest.mark.slow

STAGE = """\
import os, pathlib, signal, sys, time, yaml
train = yaml.safe_load(open("params.yaml"))["train"]
if os.environ.get("DEAF"):  # a stage that does not hear Ctrl-C
    signal.signal(signal.SIGINT, signal.SIG_IGN)
pathlib.Path(os.environ["DVC_ROOT"], "pids", str(os.getpid())).touch()
try:
    time.sleep(float(os.environ.get("NAP", "0")))
except KeyboardInterrupt:
    sys.exit(130)
pathlib.Path("models").mkdir(exist_ok=True)
pathlib.Path("models/model.pt").write_text(f"a model of {train['epochs']} epochs, lr {train['lr']}\\n")
pathlib.Path("metrics").mkdir(exist_ok=True)
pathlib.Path("metrics/history.csv").write_text(f"epoch,test_l1\\n{train['epochs']},0.5\\n")
"""
DVC_YAML = """\
stages:
  train:
    cmd: python stage.py
    deps: [stage.py]
    params: [train.epochs, train.lr]
    outs: [models/model.pt]
    metrics:
      - metrics/history.csv:
          cache: false
"""
RECIPES = {
    "recipes/tiny.yaml": "description: one\nparams: {train.epochs: 3}\n",
    "recipes/two.yaml": "description: two\nvariants:\n"
    "  - {name: a, params: {train.epochs: 3}}\n  - {name: b, params: {train.epochs: 4}}\n",
    "recipes/search.yaml": "description: a search\nparams: {train.epochs: 2}\nsearch:\n  metric: test.l1\n"
    "  direction: minimize\n  trials: 2\n  prune: false\n  params: {train.lr: {low: 0.1, high: 1.0}}\n",
}


@pytest.fixture(autouse=True)
def _not_under_make(monkeypatch):
    """The commands name `python -m ...` to go on, or `make ...` under make (MAKELEVEL): these
    tests run the commands directly, also when `make test` started pytest."""
    for name in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS"):
        monkeypatch.delenv(name, raising=False)


def _project(folder: Path) -> dict:
    """The small repository, run once and committed, then params.yaml edited and not committed."""
    from helpers import sweep_repo

    env = sweep_repo(
        folder, {"stage.py": STAGE, "dvc.yaml": DVC_YAML, ".gitignore": "pids/\n/models/\noptuna.db*\n", **RECIPES}
    )
    env["CNN_DENOISE_TRACKING"] = "off"
    (folder / "pids").mkdir()
    subprocess.run(["dvc", "repro", "-q"], cwd=folder, env=env, check=True, capture_output=True)
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "ran"]):
        subprocess.run(cmd, cwd=folder, env=env, check=True, capture_output=True)
    params = (folder / "params.yaml").read_text()
    (folder / "params.yaml").write_text(params.replace("\n", "\n# a note DVC's rewrite would drop\n", 1))
    return env


def _state(repo: Path) -> dict:
    git = subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=repo, capture_output=True, text=True).stdout
    files = ("params.yaml", "dvc.lock", "models/model.pt", "metrics/history.csv")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    return {"HEAD": git.strip(), "status": status, **{f: (repo / f).read_bytes() for f in files}}


def _stages(repo: Path) -> list[int]:
    return [int(p.name) for p in (repo / "pids").iterdir()]


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def _interrupt(repo: Path, env: dict, argv: list[str], when: str, how: str) -> subprocess.CompletedProcess:
    """Start `argv`; at `when` (`detached`: DVC has detached HEAD to stash the experiment;
    `stage`: a stage is running) send `how` (INT or TERM to the command, KILL to its child, the
    process that runs DVC); return what it printed once it has ended."""
    for p in (repo / "pids").iterdir():
        p.unlink()
    proc = subprocess.Popen(argv, cwd=repo, env=env | {"NAP": "300"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            head = (repo / ".git" / "HEAD").read_text()
            if (when == "detached" and not head.startswith("ref:")) or (when == "stage" and _stages(repo)):
                break
            time.sleep(0.002)
        assert proc.poll() is None, "the command ended before the moment came"
        if how == "KILL":
            [child] = _children(proc.pid)
            os.kill(child, signal.SIGKILL)
        else:
            proc.send_signal(getattr(signal, f"SIG{how}"))
        sent = time.monotonic()
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - sent
        time.sleep(0.5)  # SIGKILL is not instant
        outlived = [pid for pid in _stages(repo) if pid_alive(pid)]
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _stages(repo):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert not outlived, f"stages outlived the command: {err.decode()}"
    ran = subprocess.CompletedProcess(argv, proc.returncode, out.decode(), err.decode())
    ran.took = took  # seconds from the signal to the command's end
    return ran


RECIPE = [sys.executable, "-m", "cnn_denoise.recipes", "run"]


@pytest.mark.parametrize(
    "when, how", [("detached", "INT"), ("detached", "KILL"), ("stage", "INT"), ("stage", "TERM"), ("stage", "KILL")]
)
def test_a_stopped_recipe_leaves_the_workspace_as_it_was(tmp_path, when, how):
    env = _project(tmp_path)
    before = _state(tmp_path)
    ran = _interrupt(tmp_path, env, [*RECIPE, "tiny"], when, how)
    assert _state(tmp_path) == before, ran.stderr
    last = ran.stderr.strip().splitlines()[-1]
    assert ran.returncode == (1 if how == "KILL" else 130), ran.stderr
    assert last.startswith("error: ") and "the workspace is as it was (branch master at" in last, ran.stderr
    assert last.endswith("to go on: python -m cnn_denoise.recipes run tiny"), last
    assert "Traceback" not in ran.stderr and "dvc repro again" not in ran.stderr
    copies = tmp_path / ".dvc" / "tmp" / "exps" / "standalone"
    left = [p for p in copies.glob("tmp*") if p.is_dir()] if copies.is_dir() else []
    assert not left, [(p, sorted(x.name for x in p.iterdir())) for p in left]
    # what the message says goes on: the same command, to the end, and the workspace holds it
    done = subprocess.run([*RECIPE, "tiny"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "models" / "model.pt").read_text() == "a model of 3 epochs, lr 0.5\n"
    assert "the workspace now holds experiment tiny " in done.stderr


def test_a_stopped_sweep_leaves_the_workspace_as_it_was(tmp_path):
    env = _project(tmp_path)
    before = _state(tmp_path)
    ran = _interrupt(tmp_path, env, [*RECIPE, "two"], "stage", "TERM")
    assert ran.returncode == 130 and _state(tmp_path) == before, ran.stderr
    last = ran.stderr.strip().splitlines()[-1]
    assert "the workspace is as it was" in last and last.endswith("python -m cnn_denoise.recipes run two"), last


def test_a_sweep_whose_stages_do_not_hear_ctrl_c_is_stopped_in_bounded_time(tmp_path):
    """After Ctrl-C each experiment has sweep.GRACE seconds to clean up; one still running then is
    killed with its stages, and its temporary copy removed: the command ends, the workspace as it was."""
    from cnn_denoise.recipes import sweep

    env = _project(tmp_path)
    before = _state(tmp_path)
    ran = _interrupt(tmp_path, env | {"DEAF": "1"}, [*RECIPE, "two"], "stage", "TERM")
    assert sweep.GRACE <= ran.took < sweep.GRACE + 60, (ran.took, ran.stderr)
    assert ran.returncode == 130 and _state(tmp_path) == before, ran.stderr
    assert f"had not stopped {sweep.GRACE} s after it was told to; killed (log: .dvc/tmp/sweep/" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert "the workspace is as it was" in ran.stderr.strip().splitlines()[-1], ran.stderr
    assert not [p for p in (tmp_path / ".dvc" / "tmp" / "exps" / "standalone").glob("tmp*") if p.is_dir()]
    assert not list((tmp_path / ".dvc" / "tmp" / "sweep").glob("*.copy"))


@pytest.mark.parametrize("when", ["detached", "stage"])
def test_a_stopped_search_leaves_the_workspace_as_it_was(tmp_path, when):
    """`make tune` stopped (SIGTERM) while a trial's DVC stashes it through the workspace (its
    workers are then killed there) or while the trial's stage runs."""
    env = _project(tmp_path)
    before = _state(tmp_path)
    tune = [sys.executable, "-m", "cnn_denoise.tune", "run", "search", "--workers", "1"]
    ran = _interrupt(tmp_path, env, tune, when, "TERM")
    assert ran.returncode == 130 and _state(tmp_path) == before, ran.stderr
    last = ran.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: interrupted; the workers were stopped; trials that finished are kept in study search"
    ), last
    assert "the workspace is as it was" in last and last.endswith("cnn_denoise.tune run search --workers 1"), last


def test_ctrl_c_in_the_real_pipelines_training_leaves_the_workspace_as_it_was(tmp_path):
    """The project itself (helpers.make_project, small data), run and committed: `recipes run
    linear-gate` stopped with Ctrl-C while its train stage runs finds the workspace as it was,
    model and history included (DVC in the workspace deleted both and left HEAD detached)."""
    import threading

    from helpers import make_project, sh

    repo, env = make_project(tmp_path)
    env["CNN_DENOISE_TRACKING"] = "off"
    sh(["dvc", "repro", "-q"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "ran"], repo, env)
    before = _state(repo)
    proc = subprocess.Popen(
        [*RECIPE, "linear-gate", "-S", "train.epochs=200"],
        cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while not any("train: epoch 1/200" in line for line in lines) and proc.poll() is None:
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines)
    assert proc.returncode == 130 and _state(repo) == before, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("error: interrupted; experiment linear-gate stopped; the workspace is as it was"), last
    assert last.endswith("to go on: python -m cnn_denoise.recipes run linear-gate -S train.epochs=200"), last
    assert "dvc repro again" not in out and "Traceback" not in out, out

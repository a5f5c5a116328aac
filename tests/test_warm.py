"""warm.py: a sweep's experiments run by DVC from one warm process; only `python SCRIPT.py ...`
stage commands that a new interpreter would run alike are run in its forks, and what they write is
what DVC's own `dvc exp run` writes."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import make_project, sh

from cnn_denoise.common import numerics
from cnn_denoise.recipes import sweep


def here() -> dict:
    """This process's environment now (other tests change it), with this interpreter first on PATH."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def test_a_plain_python_script_runs_warm(monkeypatch):
    monkeypatch.setattr(numerics, "_pinned", True)  # as in a sweep's process: preload() pinned its kernels
    assert sweep.script_argv("python stages/train.py a.pt b.pt", here()) == ["stages/train.py", "a.pt", "b.pt"]


def test_a_process_with_other_kernels_runs_stages_cold(monkeypatch):
    """A process that loaded torch before pinning (this one) would train with other kernels
    than `python stages/train.py` pins: its stages run as processes of their own."""
    monkeypatch.setattr(numerics, "_pinned", False)
    assert sweep.script_argv("python stages/train.py a.pt", here()) is None


@pytest.mark.parametrize(
    "cmd",
    [
        "python stages/train.py > log.txt",  # shell syntax: the shell runs it
        "python stages/a.py && python stages/b.py",
        "python stages/train.py $HOME",
        "python 'stages/my stage.py'",
        "python -m cnn_denoise.recipes list",  # not a script
        "python",
        "python2 stages/train.py",  # another interpreter
        "echo hi",
    ],
)
def test_other_commands_run_as_processes_of_their_own(cmd):
    assert sweep.script_argv(cmd, here()) is None


def test_another_python_on_the_path_or_other_start_up_variables_run_cold(tmp_path):
    other = tmp_path / "python"
    other.symlink_to(Path(sys.executable).resolve())  # the same interpreter, another folder (venv): other packages
    assert sweep.script_argv("python s.py", dict(here(), PATH=f"{tmp_path}{os.pathsep}{here()['PATH']}")) is None
    threads = str(int(os.environ.get("OMP_NUM_THREADS", "1")) + 1)
    assert sweep.script_argv("python s.py", dict(here(), OMP_NUM_THREADS=threads)) is None
    assert sweep.script_argv("python s.py", dict(here(), PYTHONHASHSEED="123")) is None


def test_a_bad_jobs_count_is_refused_before_anything_runs():
    with pytest.raises(sweep.PipelineError, match="--jobs 0: give at least 1"):
        sweep.sweep([("a", ["-n", "a"])], jobs=0)


@pytest.mark.slow
def test_a_warm_sweep_writes_what_dvc_writes_cold(tmp_path):
    """The lab's pipeline (small data): two variants from `recipes run` (warm) and the same params by
    DVC's own `dvc exp run --temp` (a stage a process): the same model, history and metrics bytes,
    dvc.lock's hashes equal, and each experiment applied back is up to date for `dvc status`."""
    repo, env = make_project(tmp_path)
    env = {k: v for k, v in env.items() if k != "OMP_NUM_THREADS"}
    sh(["dvc", "repro"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "baseline"], repo, env)
    (repo / "recipes" / "pair.yaml").write_text(
        "description: two\nparams: {evaluate.examples: 0}\nvariants:\n"
        "  - {name: narrow, params: {model.taps: [20, 20]}}\n  - {name: deep, params: {model.features: [1, 3, 3, 1], "
        "model.taps: [10, 10, 10]}}\n"
    )
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "recipe"], repo, env)
    ran = sh([sys.executable, "-m", "cnn_denoise.recipes", "run", "pair"], repo, env)
    assert "sweep: 2 of 2 experiments done" in ran.stderr, ran.stderr
    cold_env = dict(env, OMP_NUM_THREADS=str(max(1, len(os.sched_getaffinity(0)) // 2)))  # as the sweep's share
    sh(
        ["dvc", "exp", "run", "--temp", "-n", "cold", "-S", "evaluate.examples=0", "-S", "model.taps=[20,20]"],
        repo,
        cold_env,
    )

    def lock(name):
        text = sh(["git", "show", f"{_ref(repo, name)}:dvc.lock"], repo, env).stdout
        stages = yaml.safe_load(text)["stages"]
        return {s: {o["path"]: o.get("md5") for o in stages[s]["outs"]} for s in ("train", "evaluate")}

    warm_lock, cold_lock = lock("narrow"), lock("cold")
    assert warm_lock == cold_lock and warm_lock["train"]["models/model.pt"], (warm_lock, cold_lock)
    shown = json.loads(sh(["dvc", "exp", "show", "--json"], repo, env).stdout)
    names = {e["name"] for b in shown for e in (b.get("experiments") or [])}
    assert {"narrow", "deep", "cold"} <= names, names
    for name in ("narrow", "deep"):
        sh(["dvc", "exp", "apply", name], repo, env)
        status = sh(["dvc", "status", "train", "evaluate"], repo, env).stdout
        assert "up to date" in status, (name, status)


def _ref(repo: Path, name: str) -> str:
    out = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps/"], cwd=repo, capture_output=True, text=True
    ).stdout.split()
    [ref] = [r for r in out if r.rsplit("/", 1)[1] == name]
    return ref


@pytest.mark.slow
def test_kill_stops_a_sweep_its_experiments_and_their_stages(tmp_path):
    """`kill` (SIGTERM) of `recipes run` while two experiments' stages sleep: each experiment's
    process group is told (SIGINT, as Ctrl-C tells a terminal's), the sweep ends with one line and
    status 130, and no stage is left running."""
    from helpers import sweep_repo

    env = sweep_repo(
        tmp_path,
        {
            "recipes/naps.yaml": "description: two\nvariants:\n"
            "  - {name: a, params: {train.epochs: 3}}\n  - {name: b, params: {train.epochs: 4}}\n",
            "nap.py": "import os, pathlib, time\n"
            "pathlib.Path(os.environ['DVC_ROOT'], 'pids', str(os.getpid())).touch()\n"
            "time.sleep(300)\n",
            "dvc.yaml": "stages:\n  nap:\n    cmd: python nap.py\n    deps: [nap.py]\n    params: [train.epochs]\n"
            "    outs:\n      - never.txt:\n          cache: false\n",
            ".gitignore": "pids/\n",
        },
    )
    (tmp_path / "pids").mkdir()
    sweep = subprocess.Popen(
        [sys.executable, "-m", "cnn_denoise.recipes", "run", "naps"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(list((tmp_path / "pids").iterdir())) < 2 and sweep.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        stages = [int(p.name) for p in (tmp_path / "pids").iterdir()]
        assert len(stages) == 2, sweep.poll()
        sweep.terminate()
        out, err = sweep.communicate(timeout=60)
        alive = {pid: Path(f"/proc/{pid}").exists() for pid in stages}.get
    finally:  # whatever happened, nothing of the test keeps running
        if sweep.poll() is None:
            sweep.kill()
        for pid in [int(p.name) for p in (tmp_path / "pids").iterdir()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert sweep.returncode == 130 and "error: interrupted" in err and "Traceback" not in err, err
    assert not [pid for pid in stages if alive(pid)]  # gone before the test's own clean-up above


@pytest.mark.parametrize("noted", ["", ".", "..", "data", ".dvc/tmp/exps", ".dvc/tmp/exps/standalone/copy"])
def test_only_a_copy_dvc_made_is_ever_removed_by_its_note(tmp_path, monkeypatch, noted):
    """A stopped sweep removes each experiment's temporary copy by the folder its note names: an
    empty note (Ctrl-C while it was written), the project, or any folder but DVC's
    .dvc/tmp/exps/**/tmp* copies is left alone; the note itself goes either way."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    copy = tmp_path / ".dvc" / "tmp" / "exps" / "standalone" / "tmpabc"
    (copy / "models").mkdir(parents=True)
    (tmp_path / ".dvc" / "tmp" / "exps" / "standalone" / "copy").mkdir()
    log = sweep.LOGS / "a.log"
    log.parent.mkdir(parents=True)
    for text, removed in ((noted, False), (str(copy.relative_to(tmp_path)), True)):
        sweep._note(log).write_text(text)
        sweep._drop_copy(log)
        assert (tmp_path / "data").is_dir() and (tmp_path / ".dvc").is_dir()
        assert copy.exists() != removed and not sweep._note(log).exists()

"""exprun: `dvc exp run --temp -n NAME` commands started together each run their own experiment
(DVC's own would take whichever stash entry came first: the same one twice, or another's)."""

import os
import shutil
import signal
import subprocess
import sys

import pytest
import yaml

from cnn_denoise.recipes import exprun


def test_refuses_what_is_not_one_named_temporary_run(capsys):
    assert exprun.main(["exp", "run", "-n", "a"]) == 2
    assert exprun.main(["exp", "run", "--temp"]) == 2
    err = capsys.readouterr().err
    assert err.count("error: give dvc's arguments for one named temporary run") == 2


def _repo(tmp_path) -> dict:
    """A git and DVC repository whose one stage copies the params it saw (taking a moment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")} | {"DVC_NO_ANALYTICS": "1"}
    env |= {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"x": 0}))
    (tmp_path / "dvc.yaml").write_text(
        'stages:\n  show:\n    cmd: python -c "import shutil, time; time.sleep(1); '
        "shutil.copy('params.yaml', 'seen.yaml')\"\n    params: [x]\n    outs: [{seen.yaml: {cache: false}}]\n"
    )
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
    return env


def _stashed(repo) -> list[str]:
    """The names of the experiments waiting in DVC's temporary-run stash (DVC's own reading)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        return sorted(e.name for e in r.experiments.tempdir_queue.stash.stash_revs.values())


def _seen(repo, name: str):
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", f"refs/exps/**/{name}"], cwd=repo, capture_output=True, text=True
    ).stdout.split()
    if not refs:
        return None
    assert len(refs) == 1, refs
    shown = subprocess.run(["git", "show", f"{refs[0]}:seen.yaml"], cwd=repo, capture_output=True, text=True)
    return yaml.safe_load(shown.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("command", [[sys.executable, "-m", "cnn_denoise.recipes.exprun"], ["dvc"]])
def test_an_entry_another_process_stashed_is_left_to_it(tmp_path, monkeypatch, command):
    """Another experiment waits in DVC's stash (its process stashed it and has yet to take it):
    exprun runs its own and leaves that one; `dvc exp run --temp` itself runs both."""
    from dvc.repo import Repo

    env = _repo(tmp_path)
    monkeypatch.chdir(tmp_path)  # DVC resolves the params file from here
    with Repo(str(tmp_path)) as repo:
        repo.experiments.queue_one(repo.experiments.tempdir_queue, name="other", params={"params.yaml": ["x=9"]})
    ran = subprocess.run(
        [*command, "exp", "run", "--temp", "-n", "mine", "-S", "x=1"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=240,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert _seen(tmp_path, "mine") == {"x": 1}
    if command == ["dvc"]:  # the behaviour exprun exists for, so that this test would notice DVC changing it
        assert _seen(tmp_path, "other") == {"x": 9} and _stashed(tmp_path) == []
    else:
        assert _seen(tmp_path, "other") is None and _stashed(tmp_path) == ["other"]


@pytest.mark.slow
def test_three_started_together_each_hold_their_own_params(tmp_path):
    env = _repo(tmp_path)
    procs = {
        x: subprocess.Popen(
            [sys.executable, "-m", "cnn_denoise.recipes.exprun", "exp", "run", "--temp", "-n", f"e{x}", "-S", f"x={x}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for x in (1, 2, 3)
    }
    for proc in procs.values():
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out
    assert [_seen(tmp_path, f"e{x}") for x in (1, 2, 3)] == [{"x": 1}, {"x": 2}, {"x": 3}]
    assert _stashed(tmp_path) == []  # every entry taken once


def test_a_key_params_yaml_lacks_is_refused_before_dvc_writes_it(tmp_path, monkeypatch, capsys):
    """`-S train.epoch=5` (or DVC's own advice, `+train.epoch=5`): one line naming the closest
    key, exit 1, and params.yaml byte for byte as it was (DVC would have written the key into it);
    keys of a params.yaml that is not this project's are left to DVC."""
    from helpers import REPO

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    before = (tmp_path / "params.yaml").read_bytes()
    monkeypatch.chdir(tmp_path)
    for item in ("train.epoch=5", "+train.epoch=5", "params.yaml:train.epoch=5"):
        assert exprun.main(["exp", "run", "--temp", "-n", "e", "-S", "train.lr=0.1", "-S", item]) == 1
        assert capsys.readouterr().err == (
            "error: -S train.epoch: not a key of params.yaml (nothing ran; params.yaml is as it was); "
            "did you mean train.epochs?\n"
        ).replace("-S train.epoch", f"-S {item.split('=')[0].split(':')[-1]}")
    assert (tmp_path / "params.yaml").read_bytes() == before
    assert exprun.unknown_set_key(["exp", "run", "-S", "other.yaml:anything=1", "-S", "train.epochs=2"]) is None
    (tmp_path / "params.yaml").write_text("x: 0\n")
    assert exprun.unknown_set_key(["exp", "run", "-S", "x=1"]) is None


@pytest.mark.slow
def test_a_copy_stopped_while_dvc_fills_it_is_noted_and_removed(tmp_path, monkeypatch):
    """Ctrl-C while DVC fills the experiment's temporary copy: DVC removes the copy on an
    Exception only, so KeyboardInterrupt left an empty .dvc/tmp/exps/standalone/tmp*. exprun
    notes the folder as it is made; the cleanup of single.py and sweep.py then removes it."""
    env = _repo(tmp_path) | {exprun.NOTE: str(tmp_path / "note")}
    script = (
        "import sys\n"
        "from dvc.repo.experiments.executor.local import TempDirExecutor\n"
        "def stopped(*a, **k): raise KeyboardInterrupt\n"
        "TempDirExecutor._from_stash_entry = classmethod(stopped)\n"
        "from cnn_denoise.recipes import exprun\n"
        "sys.exit(exprun.main(['exp', 'run', '--temp', '-n', 'a']))\n"
    )
    ran = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ran.returncode != 0, ran.stderr
    copy = (tmp_path / "note").read_text()
    assert copy.startswith(str(tmp_path / ".dvc" / "tmp" / "exps")) and os.path.isdir(copy), copy
    monkeypatch.chdir(tmp_path)  # the project, as the recipe's command runs in it
    exprun.drop_copy(tmp_path / "note")
    assert not os.path.exists(copy)


def test_put_back_removes_the_git_locks_a_killed_dvc_left_and_keeps_older_ones(tmp_path, monkeypatch):
    """DVC killed while it stashed left .git/index.lock (and a ref's lock, HEAD's): the next command
    failed with "the index is locked" although the message had said the workspace was as it was.
    put_back removes the locks that were not there at the snapshot (HEAD's first: git cannot move
    HEAD past it), puts HEAD back on its branch, and leaves one that was, a person's or a tool's."""
    from cnn_denoise.recipes import workspace

    env = _repo(tmp_path)
    ref = subprocess.run(["git", "symbolic-ref", "HEAD"], cwd=tmp_path, capture_output=True, text=True)
    branch = ref.stdout.strip()
    old = tmp_path / ".git" / "config.lock"
    old.write_text("")
    monkeypatch.chdir(tmp_path)
    snap = workspace.Snapshot.take()
    subprocess.run(["git", "checkout", "-q", "--detach"], cwd=tmp_path, check=True)
    stale = [tmp_path / ".git" / name for name in ("index.lock", "HEAD.lock", f"{branch}.lock")]
    for lock in stale:
        lock.write_text("")
    held = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        said = workspace.put_back(snap)
    finally:  # put_back ignores Ctrl-C and kill (its process is ending): not this test process's
        for sig, handler in held.items():
            signal.signal(sig, handler)
    assert said.startswith(f"the workspace is as it was (branch {branch.removeprefix('refs/heads/')} at "), said
    assert "; removed the git locks its DVC left: .git/HEAD.lock, .git/index.lock, .git/refs/heads/" in said, said
    assert not [lock for lock in stale if lock.exists()] and old.exists()
    head = subprocess.run(["git", "symbolic-ref", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout
    assert head.strip() == branch
    # the index is usable again: git can write it
    subprocess.run(["git", "add", "params.yaml"], cwd=tmp_path, env=env, check=True, capture_output=True)

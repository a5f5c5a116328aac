"""DVC's run cache shared by experiments running at once: another process's half-written entry
is left to it, in the project's code and in DVC's own processes of this environment."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnn_denoise import runcache

HALF = "cmd: python train.py\nouts:\n- path: 'model"  # cut mid-string, as a write in progress


def test_a_half_written_entry_reads_as_none_and_stays(tmp_path):
    """DVC alone deletes a writer's temporary entry that it reads half written (then the writer's
    move fails); guarded, it reads as no entry and stays, and a finished entry still loads."""
    from dvc.repo import Repo
    from dvc.stage.cache import StageCache

    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    cache = Repo(str(tmp_path)).stage_cache
    key, partial = "ab" * 32, ".half-written.tmp"
    path = Path(cache._get_cache_path(key, partial))
    path.parent.mkdir(parents=True)
    before = StageCache._load_cache, StageCache._load
    dvc_own = getattr(before[0], "__wrapped__", before[0])  # the .pth may have guarded it already
    try:
        StageCache._load_cache, StageCache._load = dvc_own, getattr(before[1], "__wrapped__", before[1])
        path.write_text(HALF)
        assert cache._load_cache(key, partial) is None and not path.exists()  # DVC alone: the writer's file is gone
        runcache.spare_half_written(StageCache)
        runcache.spare_half_written(StageCache)  # once: no guard around the guard
        assert StageCache._load_cache.__wrapped__ is dvc_own
        path.write_text(HALF)
        assert cache._load_cache(key, partial) is None and path.exists()
        done = Path(cache._get_cache_path(key, "cd" * 32))
        done.write_text("cmd: python train.py\n")
        assert cache._load_cache(key, done.name) == {"cmd": "python train.py"}
    finally:
        StageCache._load_cache, StageCache._load = before


def _project(tmp_path: Path) -> Path:
    """A one-stage DVC project, reproduced once: its run cache holds one entry."""
    project = tmp_path / "p"
    project.mkdir()
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=project, check=True)
    (project / "in.txt").write_text("in\n")
    (project / "dvc.yaml").write_text(
        "stages:\n  copy:\n    cmd: python -c \"open('out.txt', 'w').write(open('in.txt').read())\"\n"
        "    deps: [in.txt]\n    outs: [out.txt]\n"
    )
    subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=project, check=True, timeout=120)
    return project


def test_an_entry_moved_away_while_listed_is_looked_for_again(tmp_path, monkeypatch):
    """A writer's temporary entry that DVC lists, then finds gone when it asks its age (the
    writer has moved it into place): DVC alone fails the stage; guarded, it lists again and
    finds the entry."""
    from dvc.repo import Repo
    from dvc.stage import cache as stage_cache

    project = _project(tmp_path)
    monkeypatch.chdir(project)  # where DVC looks for dvc.yaml
    repo = Repo(str(project))
    stage = repo.stage.load_one(name="copy")
    listdir, calls = os.listdir, []

    def listed_then_gone(path):
        calls.append(path)
        names = listdir(path)
        return [*names, ".moved-away.tmp"] if len(calls) == 1 else names

    monkeypatch.setattr(stage_cache.os, "listdir", listed_then_gone)
    before = stage_cache.StageCache._load_cache, stage_cache.StageCache._load
    try:
        stage_cache.StageCache._load_cache = getattr(before[0], "__wrapped__", before[0])
        stage_cache.StageCache._load = getattr(before[1], "__wrapped__", before[1])
        with pytest.raises(FileNotFoundError, match="moved-away"):
            repo.stage_cache._load(stage)  # DVC alone
        calls.clear()
        runcache.spare_half_written(stage_cache.StageCache)
        assert repo.stage_cache._load(stage)["cmd"].startswith("python -c") and len(calls) == 2
    finally:
        stage_cache.StageCache._load_cache, stage_cache.StageCache._load = before
        repo.close()


def _repro(project: Path, guarded: bool) -> tuple[subprocess.CompletedProcess, Path]:
    """`dvc repro` (DVC's CLI in a process of its own) with a half-written entry newest in the stage's
    run-cache folder, the stage's output and lock gone, so DVC looks there; guarded or not."""
    (entry,) = (project / ".dvc" / "cache" / "runs").glob("*/*/*")
    half = entry.parent / ".another-process.tmp"
    half.write_text(HALF)
    later = time.time() + 60
    os.utime(half, (later, later))  # the newest file of the folder: what DVC's _load takes
    (project / "out.txt").unlink()
    (project / "dvc.lock").unlink()
    unguard = (
        "" if guarded else "import sys; sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != '_Guard']; "
    )
    code = unguard + "import sys; from dvc.cli import main; sys.exit(main(['repro']))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=120)
    return proc, half


def test_dvc_processes_of_this_environment_leave_another_writers_entry(tmp_path):
    """What a queue worker or `dvc exp exec-run` does, started as its own process from this
    environment (where `make setup` wrote runcache's .pth): the half-written entry stays and the
    stage runs. The same process with the guard taken out before DVC loads deletes it."""
    site_pth = Path(runcache.sysconfig.get_path("purelib")) / runcache.PTH
    assert site_pth.is_file(), f"{site_pth} missing: make setup writes it (python -m cnn_denoise.runcache)"
    project = _project(tmp_path)
    proc, half = _repro(project, guarded=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert half.exists() and "corrupted" not in proc.stdout + proc.stderr
    assert (project / "out.txt").read_text() == "in\n"  # a miss: the stage ran

    half.unlink()
    proc, half = _repro(project, guarded=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not half.exists() and "corrupted cache file" in proc.stdout + proc.stderr  # DVC alone

"""DVC's run cache shared by experiments running at once: entries other processes are still
writing are passed over, in the project's code and in DVC's own processes of this environment."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnn_denoise.recipes import runcache

HALF = "cmd: python train.py\nouts:\n- path: 'model"  # cut mid-string, as a write in progress


def _project(tmp_path: Path) -> Path:
    """A one-stage DVC project, reproduced once: its run cache holds one finished entry."""
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


def _newest(folder: Path, name: str, text: str = HALF) -> Path:
    """A file in the stage's run-cache folder, made its newest: what DVC's _load takes."""
    path = folder / name
    path.write_text(text)
    later = time.time() + 60
    os.utime(path, (later, later))
    return path


@pytest.mark.slow  # dvc init and repro
def test_the_newest_finished_entry_loads_whatever_is_being_written_beside_it(tmp_path, monkeypatch):
    """DVC alone takes a writer's half-written temporary entry, newest in its folder, as corrupt and
    deletes it (then the writer's move fails), and fails on a file listed then moved away; guarded,
    both are passed over and the finished entry loads, the writer's file left alone."""
    from dvc.repo import Repo
    from dvc.stage import cache as stage_cache

    project = _project(tmp_path)
    monkeypatch.chdir(project)  # where DVC looks for dvc.yaml
    repo = Repo(str(project))
    stage = repo.stage.load_one(name="copy")
    (entry,) = (project / ".dvc" / "cache" / "runs").glob("*/*/*")
    StageCache = stage_cache.StageCache
    before = StageCache._load
    dvc_own = getattr(before, "__wrapped__", before)  # the .pth may have guarded it already
    listdir, gone = os.listdir, []

    def listed_then_gone(path):  # the folder's listing names a file moved away just after
        return [*listdir(path), *gone] if Path(path) == entry.parent else listdir(path)

    monkeypatch.setattr(stage_cache.os, "listdir", listed_then_gone)
    try:
        StageCache._load = dvc_own
        half = _newest(entry.parent, ".another-writer.tmp")
        assert repo.stage_cache._load(stage) is None and not half.exists()  # DVC alone: the writer's file is gone
        gone.append(".moved-away.tmp")
        with pytest.raises(FileNotFoundError, match="moved-away"):
            repo.stage_cache._load(stage)

        runcache.spare_half_written(StageCache, stage_cache._get_stage_hash)
        runcache.spare_half_written(StageCache, stage_cache._get_stage_hash)  # once: no guard around the guard
        assert StageCache._load.__wrapped__ is dvc_own
        half = _newest(entry.parent, ".another-writer.tmp")
        moving = _newest(entry.parent, f"{entry.name}.token.tmp", entry.read_text())  # a move's second step
        loaded = repo.stage_cache._load(stage)
        assert loaded["cmd"].startswith("python -c") and half.exists() and moving.exists()
        half.unlink(), moving.unlink()
        assert repo.stage_cache._load(stage) == loaded  # the same entry with nothing beside it
    finally:
        StageCache._load = before
        repo.close()


def _repro(project: Path, guarded: bool) -> tuple[subprocess.CompletedProcess, Path]:
    """`dvc repro` (DVC's CLI in a process of its own) with a half-written entry newest in the stage's
    run-cache folder and the stage's output and lock gone, so DVC looks there; guarded or not."""
    (entry,) = (project / ".dvc" / "cache" / "runs").glob("*/*/[!.]*")
    half = _newest(entry.parent, ".another-process.tmp")
    (project / "out.txt").unlink()
    (project / "dvc.lock").unlink()
    unguard = (
        "" if guarded else "import sys; sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != '_Guard']; "
    )
    code = unguard + "import sys; from dvc.cli import main; sys.exit(main(['repro']))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=120)
    return proc, half


@pytest.mark.slow  # dvc init and three repros
def test_dvc_processes_of_this_environment_leave_another_writers_entry(tmp_path):
    """What a queue worker or `dvc exp exec-run` does, started as its own process from this
    environment (where `make setup` wrote runcache's .pth): the half-written entry stays and the
    stage's finished entry restores its output. The same process with the guard taken out before
    DVC loads deletes the entry as corrupt and runs the stage."""
    import sysconfig

    site_pth = Path(sysconfig.get_path("purelib")) / runcache.PTH
    assert site_pth.read_text() == runcache.PTH_LINE, f"{site_pth}: make setup writes it (runcache.main)"
    project = _project(tmp_path)

    proc, half = _repro(project, guarded=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert half.exists() and "corrupted" not in out and "is cached" in out
    assert (project / "out.txt").read_text() == "in\n"

    half.unlink()
    proc, half = _repro(project, guarded=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert not half.exists() and "corrupted cache file" in out and "is cached" not in out  # DVC alone
    assert (project / "out.txt").read_text() == "in\n"

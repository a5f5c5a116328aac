"""One recipe's experiment: run in a copy, then brought into the workspace once it has finished.

`dvc exp run` in the workspace detaches HEAD and rewrites params.yaml, dvc.lock, models/ and
metrics/ for as long as the experiment runs (an hour or more for `speech`); stopped midway, it
leaves them so, and the stage's "run dvc repro again" would then train the recipe's settings in
the workspace. Here the experiment runs in a copy (exprun: DVC's `exp run --temp`, taking its own
stash entry) in a process group of its own, and only once it has finished does `dvc exp apply`
bring it into the workspace, in seconds (with --temp it stays out). Ctrl-C and `kill` are passed
on to the experiment's group; a workspace.Snapshot taken first puts back whatever DVC left
changed; one line says what state the workspace is in and the one command that goes on.
"""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from cnn_denoise.recipes import workspace
from cnn_denoise.recipes.exprun import NOTE, drop_copy

GRACE = 60  # seconds an experiment has to stop after Ctrl-C before its group is killed


def _kill(pgid: int, sig) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait(proc: subprocess.Popen, forward: bool) -> tuple[int, bool]:
    """Wait for `proc` (the leader of its own group); return its exit status and whether this
    process was interrupted meanwhile. On Ctrl-C or `kill` the group hears SIGINT (unless not
    `forward`: a short step that must finish is waited for), a second one or GRACE seconds later
    SIGKILL. What the group leaves running is killed at the end."""
    interrupted, told = False, 0
    try:
        while True:
            try:
                return proc.wait(timeout=GRACE if told else None), interrupted
            except KeyboardInterrupt:
                interrupted = True
                if forward or told:
                    told += 1
                    _kill(proc.pid, signal.SIGINT if told == 1 else signal.SIGKILL)
                forward = True  # a second Ctrl-C stops even a short step
            except subprocess.TimeoutExpired:
                told += 1
                _kill(proc.pid, signal.SIGKILL)
    finally:
        _kill(proc.pid, signal.SIGKILL)  # stages DVC started that outlived it


def _start(cmd: list[str], env=None) -> subprocess.Popen:
    return subprocess.Popen(cmd, start_new_session=True, env=env)


def _exp_ref(name: str) -> str | None:
    """The commit of DVC's experiment `name` (refs/exps/.../NAME), or None."""
    out = subprocess.run(
        ["git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps/"], capture_output=True, text=True
    ).stdout
    return next((line.split()[0] for line in out.splitlines() if line.endswith(f"/{name}")), None)


def run(name: str, recipe: str, exp_args: list[str], temp: bool, again: str) -> int:
    """Run experiment `name` (exp_args: dvc exp run's after `--temp`, e.g. -n NAME -S ...); register
    its model as @recipe; apply it to the workspace unless `temp`. 0 when all of that happened."""
    snap, before = workspace.Snapshot.take(), _exp_ref(name)
    with tempfile.TemporaryDirectory(prefix="cnn-denoise-exp-") as tmp:
        note = Path(tmp) / "copy"
        cmd = [sys.executable, "-m", "cnn_denoise.recipes.exprun", "exp", "run", "--temp", *exp_args]
        code, interrupted = _wait(_start(cmd, dict(os.environ, **{NOTE: str(note)})), forward=True)
        if code:
            drop_copy(note)
    finished = code == 0 or _exp_ref(name) not in (None, before)  # Ctrl-C as DVC was ending
    if not finished:
        state = workspace.put_back(snap)
        if interrupted:
            print(f"error: interrupted; experiment {name} stopped; {state}; to go on: {again}", file=sys.stderr)
            return 130
        if code < 0:
            print(f"error: experiment {name} was killed ({signal.Signals(-code).name}); {state}; to go on: {again}",
                  file=sys.stderr)  # fmt: skip
        else:
            print(
                f"error: experiment {name} failed (its error is above); {state}; once fixed: {again}", file=sys.stderr
            )
        return 1
    kept = f"experiment {name} finished and is kept (make exps)"
    if not interrupted:
        try:
            register(name, recipe)
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        kept += f", not registered as @{recipe} (make promote EXP={name} ALIAS={recipe})"
    if not interrupted and temp:
        print(f"{kept}; the workspace is as it was; dvc exp apply {name} brings it in", file=sys.stderr)
        return 0
    if not interrupted:
        code, interrupted = _wait(_start(["dvc", "exp", "apply", name]), forward=False)
    if interrupted or code:
        state = workspace.put_back(snap)
        why = "interrupted" if interrupted else f"dvc exp apply {name} failed (above)"
        print(f"error: {why}; {kept}; {state}; to go on: dvc exp apply {name}", file=sys.stderr)
        return 130 if interrupted else 1
    print(
        f"the workspace now holds experiment {name} (params.yaml, dvc.lock, metrics/, models/); back to the "
        "committed setup: git checkout HEAD -- params.yaml dvc.lock metrics && dvc checkout",
        file=sys.stderr,
    )
    return 0


def register(run: str, recipe: str) -> None:
    """models:/cnn-denoise@<recipe> -> the model the recipe's experiment `run` trained (when tracked)."""
    from cnn_denoise import tracking

    def alias():
        version = tracking.promote(run, recipe)
        print(f"models:/{tracking.REGISTERED_MODEL}@{recipe} is version {version} (experiment {run})", file=sys.stderr)

    tracking.guarded(f"registering {run} as @{recipe}", alias)

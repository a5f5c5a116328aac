"""A sweep's experiments run from one warm process.

Each experiment is DVC's own `dvc exp run --temp -n NAME -S ...` (through exprun, which takes its
own stash entry, so several can run at once), called in a fork of a process that has already
imported what DVC and the stages import (torch, MLflow, SciPy), and each stage command of the form
`python SCRIPT.py ARGS` runs in a fork of it too, instead of a new interpreter. DVC still decides
what runs, hashes the outputs, writes dvc.lock and commits the experiment; only the interpreter's
start and the imports are paid once. DVC's queue paid them per experiment: a celery worker started
`dvc exp exec-run`, which started each stage, and on the lab's data that was more CPU than the
training (bench/README.md). A stage command in any other form (shell syntax, another interpreter,
other start-up variables) runs as DVC runs it, as a process of its own.
"""

import contextlib
import functools
import importlib
import os
import runpy
import shlex
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from cnn_denoise.common import numerics
from cnn_denoise.common.errors import PipelineError, exit_now
from cnn_denoise.recipes import exprun

# what the stages and DVC import, loaded once before the forks (each costs a stage seconds)
PRELOAD = (
    "numpy",
    "torch",
    "scipy.signal",
    "soundfile",
    "pystoi",
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "dvc.cli",
    "dvc.repo",
    "dvc.repo.experiments.executor.local",
)
SHELL = set("|&;<>()$`\\\"'*?[]~{}#\n")  # a command holding any of these is left to the shell
# read once when an interpreter (PYTHON*) or torch's thread pools start: a stage whose values differ
# from those this process started with needs a process of its own
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_PROC_BIND", "KMP_AFFINITY")
_started_with: dict | None = None  # those variables as preload() saw them
LOGS = Path(".dvc") / "tmp" / "sweep"  # one log per experiment: DVC's output and its stages'
GRACE = 20  # seconds an experiment has to clean up after Ctrl-C before it is killed


def preload() -> None:
    """Import PRELOAD in this process (MLflow's environment defaults first, as open_store does)."""
    global _started_with
    import tqdm

    # its monitor thread (DVC's bars start it) would keep the stages from forking (fork_stages)
    tqdm.tqdm.monitor_interval = 0
    numerics.pin()  # first: the stages forked from here compute with the kernels `python stages/X.py` pins
    from cnn_denoise.tracking import store

    store.configure()
    _started_with = _start_vars(os.environ)
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _start_vars(env) -> dict:
    return {k: v for k, v in env.items() if k.startswith("PYTHON") or k in THREAD_VARS or k == numerics.SWITCH}


def script_argv(cmd: str, env: dict) -> list[str] | None:
    """`python SCRIPT.py ARGS` as the argv of the script, when this interpreter would run it as a
    new process would: `python` on the command's PATH is this one, and the variables read at start
    are the same; else None (the command runs as a process of its own)."""
    if SHELL & set(cmd):
        return None
    argv = shlex.split(cmd)
    if len(argv) < 2 or argv[0] not in ("python", "python3") or not argv[1].endswith(".py"):
        return None
    mine = Path(sys.executable)
    folders = [Path(d) for d in env.get("PATH", "").split(os.pathsep) if d]
    found = next((d / argv[0] for d in folders if os.access(d / argv[0], os.X_OK)), None)
    # the same file in the same folder: a venv's python is a link to the base one, with other packages
    if found is None or found.parent.resolve() != mine.parent.resolve() or not found.samefile(mine):
        return None
    if _start_vars(env) != (_started_with if _started_with is not None else _start_vars(os.environ)):
        return None
    if numerics.pinned() != (env.get(numerics.SWITCH) != "native"):  # loaded with other kernels than a stage pins
        return None
    return argv[1:]


def _fork(body, register=None) -> int:
    """Start body() in a fork; return its pid. Ctrl-C and `kill` are held back until the child has
    its handler and the parent has called register(pid): a process stopped in between is known."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        pid = os.fork()
        if pid == 0:
            _child(body, held)
        if register is not None:
            register(pid)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return pid


def _child(body, mask) -> None:
    """In a fork: run body() for the process's exit status and end it as python ends a script
    (SystemExit's code; 130 after Ctrl-C; 1 and the traceback after an error; then other threads
    joined, at-exit handlers run, the streams flushed: errors.exit_now): a fork never returns."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        code = body()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        traceback.print_exc()
    finally:
        exit_now(code)


def _run_script(argv: list[str], cwd: str, env: dict) -> int:
    """Run the script as `python SCRIPT ARGS` would in `cwd` with `env` (in a fork: it changes the process)."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = list(argv)
    sys.path[0] = str(Path(argv[0]).resolve().parent)  # a script's own folder comes first, as python puts it
    runpy.run_path(os.path.abspath(argv[0]), run_name="__main__")  # __file__ absolute, as python's
    return 0


def fork_stages() -> None:
    """Make DVC run `python SCRIPT.py ...` stage commands in a fork of this process."""
    from dvc.stage import run as stage_run
    from dvc.stage.exceptions import StageCmdFailedError

    cold = stage_run._run

    def run(executable, cmd, **kwargs):
        argv = script_argv(cmd, kwargs.get("env") or {})
        # a fork copies only the thread that forks: a lock another thread held then (stderr's,
        # while it wrote) stays held in the stage for ever, so forks come from one thread only
        if argv is None or kwargs.get("shell") or threading.active_count() > 1:
            return cold(executable, cmd, **kwargs)
        pid = _fork(functools.partial(_run_script, argv, kwargs.get("cwd") or os.getcwd(), kwargs["env"]))
        main = threading.current_thread() is threading.main_thread()
        old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None  # the stage hears Ctrl-C, as DVC's does
        try:
            _, status = os.waitpid(pid, 0)
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)
        if code := os.waitstatus_to_exitcode(status):
            raise StageCmdFailedError(cmd, code)

    stage_run._run = run


def _experiment(args: list[str], log: Path) -> int:
    """`dvc exp run --temp -n NAME ...` (exprun's) with this process's output in `log` (in a fork),
    in a process group of its own: the sweep passes Ctrl-C and `kill` on to it and its stages."""
    os.setpgid(0, 0)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    note = _note(log)
    note.unlink(missing_ok=True)  # a stopped sweep's, of an experiment of the same name
    os.environ[exprun.NOTE] = str(note)
    return exprun.main(["exp", "run", "--temp", *args])


def _note(log: Path) -> Path:
    """Where the experiment writes the folder of its temporary copy (exprun.NOTE)."""
    return log.with_suffix(".copy").absolute()


def _stop(running: dict) -> None:
    """Ctrl-C to each experiment's group; DVC then removes its copy and the stages their temporary
    files. One that has not ended GRACE seconds later is killed, group and all; then what is left
    of each group (a stage forked as Ctrl-C came) is killed and the copies removed. Ctrl-C and
    `kill` are held meanwhile: a second one cannot cut this short."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        _stop_held(running)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _stop_held(running: dict) -> None:
    print(f"sweep: stopping {len(running)} experiment(s), up to {GRACE} s", file=sys.stderr)
    for pid in running:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGINT)
    deadline = time.monotonic() + GRACE
    left = dict(running)
    while left and time.monotonic() < deadline:
        for pid in list(left):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            del left[pid]
        time.sleep(0.05)
    for pid, (name, log, _) in left.items():
        print(f"sweep: {name} had not stopped {GRACE} s after it was told to; killed (log: {log})", file=sys.stderr)
        with contextlib.suppress(ChildProcessError):
            _kill_group(pid)
            os.waitpid(pid, 0)
    for pid, (_, log, _) in running.items():
        _kill_group(pid)
        _drop_copy(log)


def _kill_group(pid: int) -> None:
    """SIGKILL to what is left of the experiment's process group (its id is the experiment's pid,
    which the kernel keeps from reuse while any member lives)."""
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def _drop_copy(log: Path) -> None:
    """Remove the experiment's temporary copy if it is still there (DVC removes it when the
    experiment ends any way but a signal that kills it: exprun.drop_copy) and the note of its folder."""
    note = _note(log)
    exprun.drop_copy(note)
    note.unlink(missing_ok=True)


def _started(running: dict, name: str, log: Path, pid: int) -> None:
    with contextlib.suppress(OSError):  # the child does the same: whichever runs first
        os.setpgid(pid, pid)
    running[pid] = (name, log, time.perf_counter())


def _tail(log: Path, lines: int = 3) -> str:
    with contextlib.suppress(OSError):
        text = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        return " | ".join(text[-lines:])
    return ""


def sweep(experiments: list[tuple[str, list[str]]], jobs: int) -> int:
    """Run each (name, dvc exp run arguments after `--temp`) as a DVC experiment, `jobs` at a time,
    in the order given (put the longest first: the last ones then finish together); say how each
    ended, with its log. 0 when every one succeeded, else 1; experiments that finished are kept."""
    if jobs < 1:
        raise PipelineError(f"--jobs {jobs}: give at least 1")
    LOGS.mkdir(parents=True, exist_ok=True)
    preload()
    fork_stages()
    pending, running, failed = list(experiments), {}, []
    began = time.perf_counter()
    try:
        while pending or running:
            while pending and len(running) < jobs:
                name, args = pending.pop(0)
                log = LOGS / f"{name}.log"
                _fork(functools.partial(_experiment, args, log), functools.partial(_started, running, name, log))
                print(f"sweep: {name} started (log: {log})", file=sys.stderr)
            pid, status = os.wait()
            if pid not in running:
                continue
            name, log, start = running.pop(pid)
            if os.WIFSIGNALED(status):  # killed: DVC removed nothing, and a stage may live on
                _kill_group(pid)
            _drop_copy(log)
            took = time.perf_counter() - start
            if code := os.waitstatus_to_exitcode(status):
                failed.append(name)
                print(
                    f"sweep: {name} FAILED (exit {code}) after {took:.1f} s: {_tail(log)}; log: {log}", file=sys.stderr
                )
            else:
                print(f"sweep: {name} done in {took:.1f} s", file=sys.stderr)
    except KeyboardInterrupt:  # Ctrl-C, or kill (SIGTERM: run_stage's handler)
        _stop(running)
        raise
    done = len(experiments) - len(failed)
    total = time.perf_counter() - began
    print(
        f"sweep: {done} of {len(experiments)} experiments done in {total:.1f} s ({done * 60 / total:.2f} a minute)"
        + (f"; failed: {', '.join(failed)} (their logs in {LOGS})" if failed else "")
        + "; compare them with make exps",
        file=sys.stderr,
    )
    return 1 if failed else 0

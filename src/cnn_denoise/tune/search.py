"""`tune run`: the workers started, watched and stopped; the best trial recorded."""

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time

from cnn_denoise.recipes import book, workspace
from cnn_denoise.tune.parents import parent_run, tracking_on
from cnn_denoise.tune.report import best_trial, exp_name, table
from cnn_denoise.tune.space import load, redact
from cnn_denoise.tune.storage import ENV_STORAGE, load_study, open_study, reap, reload_study, started, storage_url
from cnn_denoise.tune.worker import Worker, git_remote

# ---- the command ----


def _start_workers(argv: list[str], count: int, url: str) -> list[subprocess.Popen]:
    """Worker processes, each the leader of its own process group: what a dead worker leaves
    (dvc and its stages) is stopped by killing the group. The storage URL (its password with it)
    goes in their environment, which only its user reads, never their arguments, which `ps`
    shows every user."""
    cmd = [sys.executable, "-m", "cnn_denoise.tune", "worker", *argv]
    env = dict(os.environ, **{ENV_STORAGE: url})
    return [subprocess.Popen(cmd, start_new_session=True, env=env) for _ in range(count)]


def _stop(procs, sig=signal.SIGTERM) -> None:
    for p in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, sig)


def run(args) -> int:
    tune = load(args.name, extra=book._parse_set(args.set))
    url = storage_url(args.storage)
    name = args.study or args.name
    study, created = open_study(tune, url, name, args.trials)
    parent_run(study, created)
    budget = study.user_attrs["trials"]
    remote = git_remote(args.remote)
    workers = max(1, min(args.workers, budget))
    print(
        f"study {name} in {redact(url)} ({'new' if created else 'joined'}): {started(study)} of {budget} trials "
        f"started; {workers} worker(s) here{f', pushing to {remote}' if remote else ''}",
        file=sys.stderr,
    )
    forward = [args.name, "--study", name, *sum((["-S", s] for s in args.set), [])]
    forward += ["--remote", remote or ""]
    snap = workspace.Snapshot.take()  # each trial's `dvc exp run --temp` stashes itself through the workspace
    procs = _start_workers(forward, workers, url)
    lost = []
    try:
        while any(p.poll() is None for p in procs):
            for p in procs:
                if p.poll() is not None and p.returncode < 0 and p not in lost:
                    lost.append(p)
                    _stop([p], signal.SIGKILL)  # what the worker left running: dvc, its stages
                    reap(study)
                    held = [t.number for t in reload_study(study).trials if t.user_attrs.get("pid") == p.pid]
                    what = f"its trial {held[-1]} is FAILED" if held else "it held no trial"
                    print(
                        f"worker pid {p.pid} was killed ({signal.Signals(-p.returncode).name}); {what}; the other "
                        "workers go on",
                        file=sys.stderr,
                    )
            time.sleep(0.5)
    except BaseException as exc:
        _stop(procs)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)
        _stop(procs, signal.SIGKILL)
        if not isinstance(exc, KeyboardInterrupt):
            raise
        with contextlib.suppress(Exception):
            reap(reload_study(study))  # the stopped trials are FAILED now, not RUNNING
        print(
            f"error: interrupted; the workers were stopped; trials that finished are kept in study {name} "
            "(make tune-report); "
            f"{workspace.put_back(snap)}; to go on with the budget: {_again(args)}",
            file=sys.stderr,
        )
        return 130
    for p in procs:  # first: what is left of a killed worker's group could still be writing
        if p.returncode < 0 and p not in lost:
            lost.append(p)
            _stop([p], signal.SIGKILL)
    if any(p.returncode for p in procs) and snap.changes():  # a worker killed while DVC stashed its trial
        print(f"tune: {workspace.put_back(snap)}", file=sys.stderr)
    study = load_study(url, name)
    reap(study)
    if tracking_on():
        with contextlib.suppress(Exception):
            from cnn_denoise.tracking.runs import reap as reap_runs
            from cnn_denoise.tracking.store import open_store

            mlflow, exp_id = open_store()
            reap_runs(mlflow.MlflowClient(), exp_id)
            _record_best(study)
    print("\n".join(table(study)))
    best = best_trial(study)
    if best:
        print(f"best: {exp_name(study, best)}; make tune-promote NAME={args.name}", file=sys.stderr)
    failed = [p.returncode for p in procs if p.returncode]
    return 1 if failed else 0


def _again(args) -> str:
    """The command that goes on with the study: `make tune` under make, else this module's (the
    storage left out: it may hold a password; $OPTUNA_STORAGE or --storage names it again)."""
    if os.environ.get("MAKELEVEL"):
        return f"make tune NAME={shlex.quote(args.name)} WORKERS={args.workers}"
    argv = ["python", "-m", "cnn_denoise.tune", "run", args.name, "--workers", str(args.workers)]
    argv += ["--study", args.study] if args.study else []
    return shlex.join(argv + [a for s in args.set for a in ("-S", s)])


def _record_best(study) -> None:
    best = best_trial(study)
    parent = study.user_attrs.get("mlflow_run")
    if not best or not parent:
        return
    from cnn_denoise.tracking.store import open_store

    mlflow, _ = open_store()
    client = mlflow.MlflowClient()
    metric = study.user_attrs["space"]["metric"]
    client.log_metric(parent, f"best.{metric}", best.value, step=len(study.trials))
    client.set_tag(parent, "best_trial", exp_name(study, best))


def worker(args) -> int:
    tune = load(args.name, extra=book._parse_set(args.set))
    return Worker(tune, storage_url(args.storage), args.study or args.name, git_remote(args.remote)).loop()

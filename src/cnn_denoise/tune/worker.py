"""A worker: trials one after another until the study's budget is spent, each a DVC experiment."""

import contextlib
import fcntl
import io
import json
import os
import random
import shlex
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

from cnn_denoise.config import params
from cnn_denoise.recipes import book
from cnn_denoise.tracking.store import main_root
from cnn_denoise.tune.exps import exp_ref, git
from cnn_denoise.tune.parents import tracking_on, trial_run
from cnn_denoise.tune.space import Tune, suggest
from cnn_denoise.tune.storage import open_study, optuna_module, reap, reload_study, started

# ---- a worker: trials until the budget is spent ----


class TrialFailed(Exception):
    """A trial that ended without a result (its experiment failed); Optuna marks it FAILED."""


def log_tail(log: Path) -> str:
    """The trial's cause of failure: a stage's own one-line error (run_stage's `error: ...`) before
    DVC's `ERROR: failed to reproduce ...`, which follows it and names only the stage."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    ours = [line for line in lines if line.startswith("error:")]
    dvc = [line for line in lines if line.startswith("ERROR:")]
    return (ours or dvc or lines or ["no output"])[-1][:300]


class BudgetLock:
    """Held by one worker of the study at a time while it counts the trials started and starts
    one: a file lock beside a SQLite database (one machine), a PostgreSQL advisory lock
    (released by the server when its holder dies), nothing elsewhere."""

    def __init__(self, url: str, study):
        self.url, self.study, self.held = url, study, None
        self.key = zlib.crc32(f"cnn-denoise-tune:{study.study_name}".encode())

    def __enter__(self):
        if self.url.startswith("sqlite:///"):
            f = open(self.url.removeprefix("sqlite:///") + ".budget.lock", "a")  # noqa: SIM115 (held until release)
            fcntl.flock(f, fcntl.LOCK_EX)
            self.held = f
        elif self.url.startswith("postgresql"):
            conn = getattr(self.study._storage, "_backend", self.study._storage).engine.raw_connection()
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s)", (self.key,))
            self.held = conn
        return self

    def release(self):
        held, self.held = self.held, None
        if held is None:
            return
        if isinstance(held, io.IOBase):
            fcntl.flock(held, fcntl.LOCK_UN)
            held.close()
            return
        with contextlib.suppress(Exception):
            with held.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            held.commit()
        held.close()

    def __exit__(self, *exc):
        self.release()


class Worker:
    def __init__(self, tune: Tune, url: str, study_name: str, remote: str | None):
        self.tune, self.url, self.remote = tune, url, remote
        self.study, _ = open_study(tune, url, study_name)
        self.lock = BudgetLock(url, self.study)
        self.parent = self.study.user_attrs.get("mlflow_run") if tracking_on() else None
        self.logs = main_root() / ".dvc" / "tmp" / "tune"
        self.logs.mkdir(parents=True, exist_ok=True)

    def budget_left(self) -> bool:
        self.study = reload_study(self.study)
        return started(self.study) < int(self.study.user_attrs.get("trials", self.tune.search.trials))

    def loop(self) -> int:
        while True:
            reap(self.study)
            with self.lock:  # held from counting to the new trial's row: the budget is exact
                if not self.budget_left():
                    return 0
                self.study.optimize(self.objective, n_trials=1, catch=(TrialFailed,))

    def objective(self, trial) -> float:
        optuna = optuna_module()
        self.lock.release()
        chosen = suggest(trial, self.tune.search)
        same = self._same_as(trial)
        if same is not None:  # DVC and MLflow would restore this very model: take its result
            trial.set_user_attr("same_as", same.number)
            self.say(trial, f"COMPLETE, the params of trial {same.number}: its {self.tune.search.metric}")
            return same.value
        name = f"{self.study.study_name}-{trial.number}"
        for key, value in (("host", socket.gethostname()), ("pid", os.getpid()), ("dvc_exp", name)):
            trial.set_user_attr(key, value)
        trial.set_user_attr("git_commit", git("rev-parse", "HEAD"))
        spec = {
            "storage": self.url,
            "study": self.study.study_name,
            "trial_id": trial._trial_id,
            "number": trial.number,
            "worker_pid": os.getpid(),
            "prune": self.tune.search.prune and self.tune.search.prune.model_dump(),
            "maximize": self.tune.search.direction == "maximize",
        }
        env = dict(os.environ, CNN_DENOISE_TRIAL=json.dumps(spec))
        if self.parent:
            env["CNN_DENOISE_PARENT_RUN"] = self.parent
        # exprun, not dvc itself: DVC's temporary runs started together can swap experiments
        args = ["exp", "run", "--temp", "-n", name, *book.set_args({**self.tune.base, **chosen})]
        cmd = [sys.executable, "-m", "cnn_denoise.recipes.exprun", *args]
        log = self.logs / f"{name}.log"
        shown = shlex.join(["dvc", *args])
        print(f"trial {trial.number}: {shown}  (log: {log})", file=sys.stderr)
        with open(log, "w") as out:
            code = subprocess.run(cmd, cwd=main_root(), env=env, stdout=out, stderr=subprocess.STDOUT).returncode
        if code != 0:
            attrs = self.study._storage.get_trial(trial._trial_id).user_attrs
            if "pruned_at" in attrs:
                self.say(trial, f"PRUNED at epoch {attrs['pruned_at']}")
                raise optuna.TrialPruned(f"pruned at epoch {attrs['pruned_at']}")
            trial.set_user_attr("error", log_tail(log))
            self.say(trial, f"FAILED: {log_tail(log)} (log: {log})")
            raise TrialFailed(f"trial {trial.number}: dvc exp run failed: {log_tail(log)} (log: {log})")
        ref = exp_ref(name)
        metrics = params.flatten(json.loads(git("show", f"{ref}:metrics/eval.json") or "{}")) if ref else {}
        value = metrics.get(self.tune.search.metric)
        if not isinstance(value, int | float) or isinstance(value, bool):
            trial.set_user_attr("error", f"no {self.tune.search.metric} in metrics/eval.json")
            self.say(trial, f"FAILED: experiment {name} has no {self.tune.search.metric} in metrics/eval.json")
            raise TrialFailed(f"trial {trial.number}: experiment {name} has no {self.tune.search.metric}")
        rev = git("rev-parse", ref)
        trial.set_user_attr("dvc_rev", rev)
        self._link_run(trial, name)
        self._push(trial, name, ref, rev)
        self.say(trial, f"COMPLETE, {self.tune.search.metric} {value:.6g}")
        return float(value)

    def say(self, trial, what: str) -> None:
        print(f"trial {trial.number} ({self.study.study_name}-{trial.number}): {what}", file=sys.stderr)

    def _same_as(self, trial):
        complete = optuna_module().trial.TrialState.COMPLETE
        for t in self.study.get_trials(deepcopy=False, states=(complete,)):
            if t.params == trial.params and t.number != trial.number:
                return t
        return None

    def _link_run(self, trial, name: str) -> None:
        """The trial's MLflow run: its id in the trial, the trial in its tags; the study's best so far."""
        if not self.parent:
            return
        with contextlib.suppress(Exception):  # tracking must not cost a finished trial
            mlflow, run = trial_run(name)
            if run is None:
                return
            trial.set_user_attr("mlflow_run", run.info.run_id)
            client = mlflow.MlflowClient()
            client.set_tag(run.info.run_id, "optuna_study", self.study.study_name)
            client.set_tag(run.info.run_id, "optuna_trial", str(trial.number))

    def _push(self, trial, name: str, ref: str, rev: str) -> None:
        """`dvc exp push` the finished trial, then check that the remote holds its ref; tried five
        times over about half a minute (machines pushing at the same moment can find the
        remote's refs locked). What the last try said is kept in the trial and its log."""
        if not self.remote:
            return
        why = "?"
        for attempt in range(5):
            proc = subprocess.run(
                ["dvc", "exp", "push", self.remote, name], cwd=main_root(), capture_output=True, text=True
            )
            held = git("ls-remote", self.remote, ref).split()[:1]
            if proc.returncode == 0 and held == [rev]:
                trial.set_user_attr("pushed", True)
                return
            said = proc.stderr.strip().splitlines() if proc.returncode else []
            why = (said or [f"the remote does not hold {ref}"])[-1][:300]
            with open(self.logs / f"{name}.log", "a") as log:
                print(f"dvc exp push {self.remote} {name}, try {attempt + 1}: {why}", file=log)
            if attempt < 4:
                time.sleep(1 + 2**attempt + random.random())
        trial.set_user_attr("pushed", False)
        trial.set_user_attr("push_error", why)
        print(
            f"warning: dvc exp push {self.remote} {name} failed: {why}; the experiment stays in this clone "
            "(push it by hand)",
            file=sys.stderr,
        )


def git_remote(flag: str | None) -> str | None:
    """Where finished trials are pushed: --remote, else origin, else the only remote, else none."""
    if flag is not None:
        return flag or None
    remotes = git("remote").split()
    return "origin" if "origin" in remotes else (remotes[0] if len(remotes) == 1 else None)

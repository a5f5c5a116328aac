"""One hyperparameter search across many machines: Optuna picks, DVC runs, MLflow records.

A recipe with a `search:` section (recipes/tune.yaml) names ranges and choices over
params.yaml's dotted keys, a trial budget, the metric and its direction:

    search:
      metric: test.l1              # a key of metrics/eval.json
      direction: minimize          # or maximize
      trials: 8                    # the study's budget: trials started, on every machine together
      prune: {startup_trials: 2, warmup_epochs: 1}   # median pruning on the per-epoch test L1; false: none
      params:
        train.lr: {low: 0.1, high: 1.0, log: true}   # a float range (ints for an int range; step: optional)
        model.taps: {choices: [[20, 20], [40, 40]]}  # any values params.yaml takes

    python -m cnn_denoise.tune run NAME [--trials N] [--workers W] [--storage URL] [--study S] [-S k=v]
    python -m cnn_denoise.tune report NAME [--out DIR]     # the table, plots in tuning/<study>/
    python -m cnn_denoise.tune promote NAME [--alias best] # the best trial's model: models:/cnn-denoise@best

Every corner of the space (each range's ends, each choice, in every combination) is checked
against the params schema before a trial runs. The study lives in $OPTUNA_STORAGE (or
--storage): by default optuna.db, SQLite, in the main clone (one machine); a team points every
clone at one PostgreSQL database (the team server's `optuna` database) and runs the same
command on each machine: they all draw trials from the one study until its budget is spent.
Each trial is `dvc exp run --temp -n <study>-<number>` (a copy of the workspace, so workers
never share one; through exprun.py, so that each command runs its own experiment) and an MLflow
run of that name nested under the study's run (same name as the study); the train stage reports
each epoch's test L1 to Optuna (tracking/trial.py), so the pruner stops a poor trial early. With
a git remote, finished trials are pushed (`dvc exp push`), so any clone can `dvc exp apply`
them. A worker killed mid-trial: the trial is marked FAILED (at once by a process on its
machine, which sees its PID gone; elsewhere by Optuna's heartbeat), its processes are stopped,
and the other workers go on.
"""

import argparse
import contextlib
import datetime
import fcntl
import io
import itertools
import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import params, recipes
from .errors import PipelineError, first_line, run_stage
from .procs import pid_alive
from .tracking.store import main_root
from .urls import redact as _redact

ENV_STORAGE = "OPTUNA_STORAGE"
HEARTBEAT_S = int(os.environ.get("CNN_DENOISE_TUNE_HEARTBEAT", "10"))  # Optuna's heartbeat of a running trial
GRACE_S = int(os.environ.get("CNN_DENOISE_TUNE_GRACE", str(6 * HEARTBEAT_S)))  # silent this long: FAILED
MAX_CORNERS = 20_000  # combinations of range ends and choices checked against the schema
WIDTH = 160
REPORTS = "tuning"  # tuning/<study>/: the report's table and plots, in the main clone


# ---- the search section of a recipe ----


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Range(_Strict):
    low: float | int
    high: float | int
    log: bool = False
    step: float | int | None = None

    @model_validator(mode="after")
    def _order(self):
        if any(isinstance(v, bool) for v in (self.low, self.high, self.step)):
            raise ValueError("low, high and step are numbers, not true/false")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("a log range needs low > 0 and no step")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0, got {self.step}")
        return self

    @property
    def integer(self) -> bool:
        return all(isinstance(v, int) for v in (self.low, self.high, self.step or 1))

    def ends(self) -> list:
        """The two values Optuna can draw at the edges (with a step, high rounds down to the grid)."""
        high = self.high
        if self.step is not None:
            high = self.low + int((self.high - self.low) // self.step) * self.step
        return [self.low, high]


class Choices(_Strict):
    choices: list[Any] = Field(min_length=1)


class Prune(_Strict):
    startup_trials: int = Field(default=2, ge=0)  # trials that finish before any is pruned
    warmup_epochs: int = Field(default=1, ge=0)  # epochs of a trial before it may be pruned


class Search(_Strict):
    metric: str = Field(default="test.l1", min_length=1)
    direction: Literal["minimize", "maximize"] = "minimize"
    trials: Annotated[int, Field(ge=1, le=100_000)]
    prune: Prune | Literal[False] = Field(default_factory=Prune)
    params: dict[str, Range | Choices] = Field(min_length=1)


class Tune(BaseModel):
    """A recipe's search: its name, the params every trial starts from, the search."""

    recipe: str
    base: dict  # dotted overrides of params.yaml (the recipe's params and -S)
    search: Search

    def space(self) -> dict:
        """What identifies the search: a study made from another space is not joined."""
        return {"recipe": self.recipe, "base": self.base, **self.search.model_dump(exclude={"trials"})}


def redact(url: str) -> str:
    """A storage URL as printed: without its password (a SQLite path as it is)."""
    return _redact(url) if "@" in url else url


def _primitive(value) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _encode(value):
    """A choice as Optuna stores it: plain values as they are, lists and mappings as flow YAML."""
    return value if _primitive(value) else yaml.safe_dump(value, default_flow_style=True).strip()


def load(name: str, root=None, extra: dict | None = None) -> Tune:
    """The recipe's search, every corner of it checked against the params schema."""
    raw = recipes._read(name, root)
    path = recipes.folder(root) / f"{name}.yaml"
    if "search" not in raw:
        raise PipelineError(f"recipe {name} has no search section; add one ({__name__}'s doc) or pick another")
    if "variants" in raw:
        raise PipelineError(f"{path}: a search starts from one experiment's params, not variants; remove variants")
    try:
        search = Search.model_validate(raw["search"])
    except ValidationError as exc:
        raise PipelineError(f"{path}: search.{params.one_line(exc)}; fix the search section") from None
    [base] = recipes.load(name, root, extra)
    tree = yaml.safe_load((Path(root or Path.cwd()) / "params.yaml").read_text())
    keys = list(search.params)
    values = [spec.ends() if isinstance(spec, Range) else spec.choices for spec in search.params.values()]
    total = 1
    for v in values:
        total *= len(v)
    if total > MAX_CORNERS:
        raise PipelineError(
            f"{path}: the search has {total} corners to check (more than {MAX_CORNERS}); search fewer keys or choices"
        )
    for key, spec in search.params.items():
        for value in spec.choices if isinstance(spec, Choices) else ():
            if not _primitive(value) and isinstance(_encode(value), str) and yaml.safe_load(_encode(value)) != value:
                raise PipelineError(f"{path}: search.params.{key}: choice {value!r} does not survive YAML; simplify it")
    for corner in itertools.product(*values):
        setting = dict(zip(keys, corner, strict=True))
        try:
            params.Params.model_validate(recipes.set_dotted(tree, {**base.overrides, **setting}))
        except ValidationError as exc:
            shown = ", ".join(f"{k}={_encode(v)}" for k, v in setting.items())
            raise PipelineError(
                f"{path}: the search reaches params the schema refuses ({shown}): {params.one_line(exc)}; "
                "narrow the search"
            ) from None
    _check_metric(search.metric, root, path)
    return Tune(recipe=name, base=base.overrides, search=search)


def _check_metric(metric: str, root, path) -> None:
    """The metric must be a number in metrics/eval.json (as committed, when there is one)."""
    eval_json = Path(root or Path.cwd()) / "metrics" / "eval.json"
    try:
        known = params.flatten(json.loads(eval_json.read_text()))
    except (OSError, ValueError):
        return  # nothing run yet: a trial that lacks the metric fails and says so
    if metric not in known:
        numbers = ", ".join(k for k, v in known.items() if isinstance(v, int | float) and k.startswith("test."))
        raise PipelineError(f"{path}: search.metric {metric!r} is not in {eval_json.name}; choose one of {numbers}")


def suggest(trial, search: Search) -> dict:
    """The trial's params {dotted key: value as params.yaml holds it}."""
    out = {}
    for key, spec in search.params.items():
        if isinstance(spec, Choices):
            encoded = [_encode(c) for c in spec.choices]
            picked = trial.suggest_categorical(key, encoded)
            out[key] = spec.choices[encoded.index(picked)]
        elif spec.integer:
            out[key] = trial.suggest_int(key, spec.low, spec.high, step=spec.step or 1, log=spec.log)
        else:
            out[key] = trial.suggest_float(key, spec.low, spec.high, step=spec.step, log=spec.log)
    return out


def make_pruner(prune: dict | None):
    import optuna

    if not prune:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=prune["startup_trials"], n_warmup_steps=prune["warmup_epochs"])


# ---- the study's storage ----


def storage_url(flag: str | None = None) -> str:
    """--storage, else $OPTUNA_STORAGE, else optuna.db (SQLite) in the main clone."""
    return flag or os.environ.get(ENV_STORAGE) or f"sqlite:///{main_root() / 'optuna.db'}"


def open_storage(url: str, heartbeat: bool = True):
    """Optuna's RDBStorage at `url`, checked by a query; one line naming it when it can't be reached.
    With `heartbeat`, running trials record a heartbeat, and one silent for GRACE_S is FAILED."""
    import optuna
    import sqlalchemy.exc

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = {"connect_args": {"timeout": 120}}  # workers wait for each other's writes
    elif url.startswith("postgresql"):
        engine = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    else:
        engine = {}
    beat = {"heartbeat_interval": HEARTBEAT_S, "grace_period": GRACE_S} if heartbeat else {}
    for attempt in itertools.count():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeats are "experimental" in Optuna's words
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine, **beat)
            storage.get_all_studies()
            return storage
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, OSError) as exc:
            # machines starting together on an empty database all create its tables and stamp its
            # schema version: all but one find them made meanwhile, and the next try reads them
            made = isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc)
            if made and attempt < 4:
                time.sleep(0.5 + random.random())
                continue
            raise PipelineError(
                f"Optuna storage {redact(url)} cannot be reached ({first_line(exc, 160)}); start it, or fix "
                f"${ENV_STORAGE} / --storage"
            ) from None


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial's end is said in one line by Worker.say
    return optuna


def open_study(tune: Tune, url: str, name: str, budget: int | None = None, heartbeat: bool = True):
    """The study `name` in the storage: created from `tune`, or joined when it searches the same
    space (a study made from another recipe or space is refused). `budget` sets its trials."""
    optuna = _optuna()
    storage = open_storage(url, heartbeat)
    direction = tune.search.direction
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction=direction)
        if clash := earlier_experiments(name):
            optuna.delete_study(study_name=name, storage=storage)
            raise PipelineError(
                f"experiments {', '.join(clash[:3])}{', ...' if len(clash) > 3 else ''} exist from an earlier study "
                f"{name}; start with --study ANOTHER, or remove them: dvc exp remove {' '.join(clash[:3])} ..."
            )
        study.set_user_attr("space", tune.space())
        study.set_user_attr("trials", budget or tune.search.trials)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        pass
    study = optuna.load_study(study_name=name, storage=storage)
    space = _wait_for(lambda: _reload(study).user_attrs.get("space"), 30)
    if space != json.loads(json.dumps(tune.space())):
        raise PipelineError(
            f"study {name!r} in {redact(url)} searches another space (made from another recipe or commit); "
            "run the same recipe, or start a new study with --study NAME"
        )
    if budget:
        study.set_user_attr("trials", budget)
    return study, False


def load_study(url: str, name: str, heartbeat: bool = False):
    optuna = _optuna()
    storage = open_storage(url, heartbeat)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = ", ".join(s.study_name for s in storage.get_all_studies()) or "none"
        raise PipelineError(
            f"no study {name!r} in {redact(url)} (studies: {names}); run make tune NAME=... first, or set "
            f"${ENV_STORAGE}"
        ) from None


def _reload(study):
    return _optuna().load_study(study_name=study.study_name, storage=study._storage)


def _wait_for(get, seconds: float):
    deadline = time.monotonic() + seconds
    while (value := get()) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    return value


def reap(study) -> list[int]:
    """Mark RUNNING trials whose worker ran on this machine and is gone as FAILED (a process
    elsewhere relies on Optuna's heartbeat); return their numbers."""
    optuna = _optuna()
    gone = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
                study._storage.set_trial_user_attr(t._trial_id, "failed", f"worker pid {pid} died")
                if study._storage.set_trial_state_values(t._trial_id, state=optuna.trial.TrialState.FAIL):
                    gone.append(t.number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)  # silent for GRACE_S, wherever they ran
    return gone


def started(study) -> int:
    """Trials that count against the budget: every one that started (finished, failed or running)."""
    waiting = _optuna().trial.TrialState.WAITING
    return sum(t.state != waiting for t in study.get_trials(deepcopy=False))


# ---- MLflow: the study's run, and each trial's run nested under it ----


def _tracking_on() -> bool:
    from .tracking.store import mode

    return mode() != "off"


def parent_run(study, created: bool) -> str | None:
    """The MLflow run of the study (named after it): made by whoever created the study, read by
    the others from the study's user attributes. Ended at once (FINISHED): a killed worker never
    leaves it RUNNING; trials still nest under it and it collects the best value."""
    if not _tracking_on():
        return None
    if not created:
        return _wait_for(lambda: _reload(study).user_attrs.get("mlflow_run"), 60) or None
    from .tracking.store import guarded, tracking_uri

    made = []
    if guarded("creating the study's run", lambda: made.append(_new_parent(study))):
        raise PipelineError(f"no MLflow run for study {study.study_name} at {tracking_uri()}; fix the store, run again")
    study.set_user_attr("mlflow_run", made[0] if made else "")
    if made:
        print(f"MLflow: the study's run is {made[0]} ({study.study_name}) in {tracking_uri()}", file=sys.stderr)
    return made[0] if made else None


def _new_parent(study) -> str:
    from .tracking.store import open_store

    mlflow, _ = open_store()
    space = study.user_attrs["space"]
    with mlflow.start_run(run_name=study.study_name, tags={"kind": "study", "optuna_study": study.study_name}) as run:
        mlflow.log_params(
            {
                "search.metric": space["metric"],
                "search.direction": space["direction"],
                **{f"search.{k}": json.dumps(v)[:500] for k, v in space["params"].items()},
            }
        )
        mlflow.set_tag("mlflow.note.content", f"Optuna study {study.study_name} of recipe {space['recipe']}.")
    return run.info.run_id


def _trial_run(name: str):
    """The MLflow run that trial `name`'s train stage logged (its DVC experiment's name)."""
    from .tracking.store import open_store

    mlflow, exp_id = open_store()
    runs = mlflow.MlflowClient().search_runs(
        [exp_id], f"tags.dvc_exp_name = '{name}' and tags.kind = 'cnn'", order_by=["start_time DESC"], max_results=1
    )
    return (mlflow, runs[0]) if runs else (mlflow, None)


# ---- a worker: trials until the budget is spent ----


class TrialFailed(Exception):
    """A trial that ended without a result (its experiment failed); Optuna marks it FAILED."""


def _git(*args, cwd=None) -> str:
    out = subprocess.run(["git", *args], cwd=cwd or main_root(), capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def earlier_experiments(study: str) -> list[str]:
    """DVC experiments named <study>-<number> in this clone (a new study's trials would clash)."""
    names = [r.rsplit("/", 1)[-1] for r in _git("for-each-ref", "--format=%(refname)", "refs/exps").split()]
    return sorted({n for n in names if re.fullmatch(rf"{re.escape(study)}-\d+", n)})


def exp_ref(name: str) -> str | None:
    """The git ref of the DVC experiment `name` (refs/exps/<..>/<baseline>/<name>)."""
    refs = _git("for-each-ref", "--format=%(refname)", "refs/exps").splitlines()
    found = [r for r in refs if r.rsplit("/", 1)[-1] == name]
    return found[-1] if found else None


def _log_tail(log: Path) -> str:
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
        self.parent = self.study.user_attrs.get("mlflow_run") if _tracking_on() else None
        self.logs = main_root() / ".dvc" / "tmp" / "tune"
        self.logs.mkdir(parents=True, exist_ok=True)

    def budget_left(self) -> bool:
        self.study = _reload(self.study)
        return started(self.study) < int(self.study.user_attrs.get("trials", self.tune.search.trials))

    def loop(self) -> int:
        while True:
            reap(self.study)
            with self.lock:  # held from counting to the new trial's row: the budget is exact
                if not self.budget_left():
                    return 0
                self.study.optimize(self.objective, n_trials=1, catch=(TrialFailed,))

    def objective(self, trial) -> float:
        optuna = _optuna()
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
        trial.set_user_attr("git_commit", _git("rev-parse", "HEAD"))
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
        args = ["exp", "run", "--temp", "-n", name, *recipes.set_args({**self.tune.base, **chosen})]
        cmd = [sys.executable, "-m", "cnn_denoise.exprun", *args]
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
            trial.set_user_attr("error", _log_tail(log))
            self.say(trial, f"FAILED: {_log_tail(log)} (log: {log})")
            raise TrialFailed(f"trial {trial.number}: dvc exp run failed: {_log_tail(log)} (log: {log})")
        ref = exp_ref(name)
        metrics = params.flatten(json.loads(_git("show", f"{ref}:metrics/eval.json") or "{}")) if ref else {}
        value = metrics.get(self.tune.search.metric)
        if not isinstance(value, int | float) or isinstance(value, bool):
            trial.set_user_attr("error", f"no {self.tune.search.metric} in metrics/eval.json")
            self.say(trial, f"FAILED: experiment {name} has no {self.tune.search.metric} in metrics/eval.json")
            raise TrialFailed(f"trial {trial.number}: experiment {name} has no {self.tune.search.metric}")
        rev = _git("rev-parse", ref)
        trial.set_user_attr("dvc_rev", rev)
        self._link_run(trial, name)
        self._push(trial, name, ref, rev)
        self.say(trial, f"COMPLETE, {self.tune.search.metric} {value:.6g}")
        return float(value)

    def say(self, trial, what: str) -> None:
        print(f"trial {trial.number} ({self.study.study_name}-{trial.number}): {what}", file=sys.stderr)

    def _same_as(self, trial):
        complete = _optuna().trial.TrialState.COMPLETE
        for t in self.study.get_trials(deepcopy=False, states=(complete,)):
            if t.params == trial.params and t.number != trial.number:
                return t
        return None

    def _link_run(self, trial, name: str) -> None:
        """The trial's MLflow run: its id in the trial, the trial in its tags; the study's best so far."""
        if not self.parent:
            return
        with contextlib.suppress(Exception):  # tracking must not cost a finished trial
            mlflow, run = _trial_run(name)
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
            held = _git("ls-remote", self.remote, ref).split()[:1]
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
    remotes = _git("remote").split()
    return "origin" if "origin" in remotes else (remotes[0] if len(remotes) == 1 else None)


# ---- the command ----


def _start_workers(argv: list[str], count: int) -> list[subprocess.Popen]:
    """Worker processes, each the leader of its own process group: what a dead worker leaves
    (dvc and its stages) is stopped by killing the group."""
    cmd = [sys.executable, "-m", "cnn_denoise.tune", "worker", *argv]
    return [subprocess.Popen(cmd, start_new_session=True) for _ in range(count)]


def _stop(procs, sig=signal.SIGTERM) -> None:
    for p in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, sig)


def run(args) -> int:
    tune = load(args.name, extra=recipes._parse_set(args.set))
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
    forward = [args.name, "--storage", url, "--study", name, *sum((["-S", s] for s in args.set), [])]
    forward += ["--remote", remote or ""]
    procs = _start_workers(forward, workers)
    lost = []
    try:
        while any(p.poll() is None for p in procs):
            for p in procs:
                if p.poll() is not None and p.returncode < 0 and p not in lost:
                    lost.append(p)
                    _stop([p], signal.SIGKILL)  # what the worker left running: dvc, its stages
                    reap(study)
                    held = [t.number for t in _reload(study).trials if t.user_attrs.get("pid") == p.pid]
                    what = f"its trial {held[-1]} is FAILED" if held else "it held no trial"
                    print(
                        f"worker pid {p.pid} was killed ({signal.Signals(-p.returncode).name}); {what}; the other "
                        "workers go on",
                        file=sys.stderr,
                    )
            time.sleep(0.5)
    except BaseException:
        _stop(procs)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)
        _stop(procs, signal.SIGKILL)
        raise
    for p in procs:
        if p.returncode < 0 and p not in lost:
            lost.append(p)
            _stop([p], signal.SIGKILL)
    study = load_study(url, name)
    reap(study)
    if _tracking_on():
        with contextlib.suppress(Exception):
            from .tracking.runs import reap as reap_runs
            from .tracking.store import open_store

            mlflow, exp_id = open_store()
            reap_runs(mlflow.MlflowClient(), exp_id)
            _record_best(study)
    print("\n".join(table(study)))
    best = _best(study)
    if best:
        print(f"best: {exp_name(study, best)}; make tune-promote NAME={args.name}", file=sys.stderr)
    failed = [p.returncode for p in procs if p.returncode]
    return 1 if failed else 0


def _record_best(study) -> None:
    best = _best(study)
    parent = study.user_attrs.get("mlflow_run")
    if not best or not parent:
        return
    from .tracking.store import open_store

    mlflow, _ = open_store()
    client = mlflow.MlflowClient()
    metric = study.user_attrs["space"]["metric"]
    client.log_metric(parent, f"best.{metric}", best.value, step=len(study.trials))
    client.set_tag(parent, "best_trial", exp_name(study, best))


def exp_name(study, trial) -> str:
    """The DVC experiment (and MLflow run) holding a trial's model: its own, or the one it repeats."""
    if "same_as" in trial.user_attrs:
        trial = study.trials[trial.user_attrs["same_as"]]
    return trial.user_attrs.get("dvc_exp") or f"{study.study_name}-{trial.number}"


def _best(study):
    try:
        return study.best_trial
    except ValueError:  # no trial complete yet
        return None


def worker(args) -> int:
    tune = load(args.name, extra=recipes._parse_set(args.set))
    return Worker(tune, storage_url(args.storage), args.study or args.name, git_remote(args.remote)).loop()


# ---- the report ----


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def table(study, width: int = WIDTH) -> list[str]:
    """trial (its DVC experiment), state, the metric, each param, minutes; within `width` columns."""
    space = study.user_attrs.get("space", {})
    metric = space.get("metric", "value")
    keys = list(space.get("params", {})) or sorted({k for t in study.trials for k in t.params})
    rows = []
    for t in study.trials:
        took = (t.datetime_complete or datetime.datetime.now()) - t.datetime_start if t.datetime_start else None
        note = f"same as {t.user_attrs['same_as']}" if "same_as" in t.user_attrs else ""
        if "pruned_at" in t.user_attrs:
            note = f"epoch {t.user_attrs['pruned_at']}"
        note = note or t.user_attrs.get("failed", t.user_attrs.get("error", ""))
        rows.append(
            [
                f"{study.study_name}-{t.number}",
                t.state.name,
                _cell(t.value),
                *(_cell(t.params.get(k)) for k in keys),
                f"{took.total_seconds() / 60:.1f}" if took else "-",
                note,
            ]
        )
    head = ["trial", "state", metric, *(k.split(".", 1)[-1] for k in keys), "min", "note"]
    cells = [head, *rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    return [line if len(line) <= width else line[: width - 1] + "…" for line in lines]


def report(args) -> int:
    url = storage_url(args.storage)
    name = args.study or args.name
    study = load_study(url, name, heartbeat=True)  # so that reap() fails trials whose heartbeat stopped
    reap(study)
    lines = table(study)
    print(f"study {name} in {redact(url)}: {len(study.trials)} trials, budget {study.user_attrs.get('trials')}"[:WIDTH])
    print("\n".join(lines))
    out = Path(args.out) if args.out else main_root() / REPORTS / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "trials.txt").write_text("\n".join(lines) + "\n")
    for path in plots(study, out):
        print(f"wrote {path}")
    best = _best(study)
    if best:
        exp = exp_name(study, best)
        print(f"best: trial {best.number} ({exp}), {_cell(best.value)}: make tune-promote NAME={args.name}, or "
              f"make promote EXP={exp}; dvc exp apply {exp}")  # fmt: skip
    return 0


def plots(study, out: Path) -> list[Path]:
    """Optuna's optimization history and (with two finished trials or more) parameter
    importances, drawn with matplotlib, as PNG files in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not complete:
        return []
    drawn = [("history.png", ovm.plot_optimization_history)]
    if len(complete) >= 2 and len({json.dumps(t.params, sort_keys=True) for t in complete}) >= 2:
        drawn.append(("importance.png", ovm.plot_param_importances))
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's matplotlib plots are "experimental"
        for file, draw in drawn:
            ax = draw(study)
            if file == "history.png":
                ax.set_ylabel(study.user_attrs.get("space", {}).get("metric", "value"))
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(8, 4.5)
            fig.tight_layout()
            fig.savefig(out / file, dpi=100)
            plt.close(fig)
            written.append(out / file)
    return written


def promote(args) -> int:
    from .tracking import promote as promote_run

    study = load_study(storage_url(args.storage), args.study or args.name)
    best = _best(study)
    if best is None:
        raise PipelineError(f"study {study.study_name} has no finished trial yet; run make tune first")
    exp = exp_name(study, best)
    version = promote_run(exp, args.alias)
    print(f"models:/cnn-denoise@{args.alias} is version {version}: trial {best.number} ({exp}), {_cell(best.value)}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cnn_denoise.tune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("name", help="a recipe of recipes/ with a search section")
    common.add_argument("--storage", help=f"the study's database URL (default ${ENV_STORAGE}, else optuna.db here)")
    common.add_argument("--study", help="the study's name (default: the recipe's)")
    for cmd in ("run", "worker"):
        p = sub.add_parser(cmd, parents=[common], help="run trials here (W workers) until the budget is spent")
        p.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE", help="a fixed override")
        p.add_argument("--trials", type=int, help="the study's budget (default: the recipe's search.trials)")
        p.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
        p.add_argument("--remote", help="git remote finished trials are pushed to (default origin; '' for none)")
    sub.add_parser("report", parents=[common], help="the table of trials; plots").add_argument(
        "--out", help=f"folder for the plots (default {REPORTS}/<study>)"
    )
    sub.add_parser("promote", parents=[common], help="the best trial's model gets --alias").add_argument(
        "--alias", default="best"
    )
    args = parser.parse_args(argv)
    if getattr(args, "trials", None) is not None and args.trials < 1:
        raise PipelineError(f"--trials {args.trials}: give at least 1 (TRIALS=N)")
    if getattr(args, "workers", 1) < 1:
        raise PipelineError(f"--workers {args.workers}: give at least 1 (WORKERS=N)")
    return {"run": run, "worker": worker, "report": report, "promote": promote}[args.command](args)


if __name__ == "__main__":
    run_stage(main)

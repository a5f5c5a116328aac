"""A study's storage (SQLite or PostgreSQL) and the study in it: open, load, reap the dead."""

import contextlib
import itertools
import json
import os
import random
import socket
import time
import warnings
from pathlib import Path

from cnn_denoise.common.errors import PipelineError, first_line
from cnn_denoise.common.procs import pid_alive
from cnn_denoise.common.urls import remember
from cnn_denoise.tracking.store import main_root
from cnn_denoise.tune.exps import earlier_experiments
from cnn_denoise.tune.space import Tune, redact

ENV_STORAGE = "OPTUNA_STORAGE"
HEARTBEAT_S = int(os.environ.get("CNN_DENOISE_TUNE_HEARTBEAT", "10"))  # Optuna's heartbeat of a running trial
GRACE_S = int(os.environ.get("CNN_DENOISE_TUNE_GRACE", str(6 * HEARTBEAT_S)))  # silent this long: FAILED


# ---- the study's storage ----


def storage_url(flag: str | None = None) -> str:
    """--storage, else $OPTUNA_STORAGE, else optuna.db (SQLite) in the main clone. Its password
    is kept out of every message from here on, a library's included."""
    url = flag or os.environ.get(ENV_STORAGE) or f"sqlite:///{main_root() / 'optuna.db'}"
    remember(url)
    return url


def open_storage(url: str, heartbeat: bool = True, exists: bool = False):
    """Optuna's RDBStorage at `url`, checked by a query; one line naming it when it can't be reached.
    With `heartbeat`, running trials record a heartbeat, and one silent for GRACE_S is FAILED.
    A SQLite file is made only in a folder that exists (a mistyped path makes no folders), and
    only when not `exists` (reading a study makes no empty database)."""
    import optuna
    import sqlalchemy.exc

    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///").partition("?")[0])
        if not path.parent.is_dir() or (exists and not path.is_file()):
            missing = path if path.parent.is_dir() else path.parent
            raise PipelineError(
                f"Optuna storage {redact(url)}: {missing} does not exist; fix --storage / ${ENV_STORAGE}"
                + (", or run make tune first" if exists else f", or create the folder: mkdir -p {path.parent}")
            )
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


def optuna_module():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial's end is said in one line by Worker.say
    return optuna


def open_study(tune: Tune, url: str, name: str, budget: int | None = None, heartbeat: bool = True):
    """The study `name` in the storage: created from `tune`, or joined when it searches the same
    space (a study made from another recipe or space is refused). `budget` sets its trials."""
    optuna = optuna_module()
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
    space = wait_for(lambda: reload_study(study).user_attrs.get("space"), 30)
    if space != json.loads(json.dumps(tune.space())):
        raise PipelineError(
            f"study {name!r} in {redact(url)} searches another space (made from another recipe or commit); "
            "run the same recipe, or start a new study with --study NAME"
        )
    if budget:
        study.set_user_attr("trials", budget)
    return study, False


def load_study(url: str, name: str, heartbeat: bool = False):
    optuna = optuna_module()
    storage = open_storage(url, heartbeat, exists=True)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = ", ".join(s.study_name for s in storage.get_all_studies()) or "none"
        raise PipelineError(
            f"no study {name!r} in {redact(url)} (studies: {names}); run make tune NAME=... first, or set "
            f"${ENV_STORAGE}"
        ) from None


def reload_study(study):
    return optuna_module().load_study(study_name=study.study_name, storage=study._storage)


def wait_for(get, seconds: float):
    deadline = time.monotonic() + seconds
    while (value := get()) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    return value


def reap(study) -> list[int]:
    """Mark RUNNING trials whose worker ran on this machine and is gone as FAILED (a process
    elsewhere relies on Optuna's heartbeat); return their numbers."""
    optuna = optuna_module()
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
    waiting = optuna_module().trial.TrialState.WAITING
    return sum(t.state != waiting for t in study.get_trials(deepcopy=False))

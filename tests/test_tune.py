"""make tune: one Optuna search shared by worker processes (on one machine, or clones standing in
for machines), each trial a DVC experiment and an MLflow run under the study's; a worker killed
mid-trial leaves its trial FAILED and the others finish. Oracles: Optuna's storage API, MLflow's
client, `dvc exp show --json`."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import REPO, free_port, make_project, sh

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.tune import space, storage, worker

RECIPE = {  # two epochs on helpers.SMALL data, nothing to listen to, no model registered: seconds of work
    "description": "a test search",
    "params": {"train.epochs": 2, "evaluate.examples": 0},
    "search": {
        "metric": "test.l1",
        "direction": "minimize",
        "trials": 4,
        "prune": False,  # every trial that is not killed must end COMPLETE
        "params": {
            "model.features": {"choices": [[1, 2, 1], [1, 3, 1]]},
            "train.lr": {"low": 0.05, "high": 1.0, "log": True},
        },
    },
}


def write_recipe(root: Path, name: str, recipe: dict) -> None:
    (root / "recipes").mkdir(exist_ok=True)
    (root / "recipes" / f"{name}.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))


def project(path: Path) -> tuple[Path, dict]:
    repo, env = make_project(path)
    write_recipe(repo, "t", RECIPE)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "search"], repo, env)
    env.update(CNN_DENOISE_LOG_MODEL="0", CNN_DENOISE_TUNE_HEARTBEAT="1", OMP_NUM_THREADS="1")
    return repo, env


# ---- refused before any trial ----


@pytest.mark.parametrize(
    "search, message",
    [
        (
            {"params": {"model.taps": {"choices": [[40, 40], [40, 40, 40]]}}},
            r"reaches params the schema refuses \(model.taps=\[40, 40, 40\]\): model: features needs",
        ),
        ({"params": {"train.lr": {"low": 0.1, "high": 1e9}, "train.epochs": {"low": 0, "high": 3}}}, "train.epochs"),
        ({"params": {"train.lr": {"low": 1.0, "high": 0.5}}}, r"low \(1.0\) must be below high \(0.5\)"),
        ({"params": {"train.momentum": {"low": 0.1, "high": 0.9}}}, "'train.momentum' is not in params.yaml"),
        ({"metric": "test.nope", "params": {"train.lr": {"low": 0.1, "high": 1.0}}}, "search.metric 'test.nope'"),
        ({"params": {"train.lr": {"low": 0.1, "high": 1.0}}, "direction": "up"}, "search.direction"),
    ],
)
def test_a_search_the_schema_refuses_is_refused_before_any_trial(tmp_path, search, message):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "eval.json").write_text((REPO / "metrics" / "eval.json").read_text())
    write_recipe(tmp_path, "bad", {"description": "x", "params": {}, "search": {"trials": 2, **search}})
    with pytest.raises(PipelineError, match=message):
        space.load("bad", tmp_path)


@pytest.mark.slow
def test_the_cli_says_one_line_and_runs_nothing(tmp_path):
    """A refused space and a storage that cannot be reached: one line each, exit 1, no study made."""
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    (tmp_path / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    bad = {"description": "x", "params": {}, "search": {"trials": 2, "params": {"model.features": {"choices": [[2]]}}}}
    write_recipe(tmp_path, "bad", bad)
    write_recipe(tmp_path, "t", RECIPE)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), CNN_DENOISE_TRACKING="off")
    env.pop("OPTUNA_STORAGE", None)
    cli = [sys.executable, "-m", "cnn_denoise.tune", "run"]
    proc = subprocess.run([*cli, "bad"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert (
        proc.stderr.startswith("error: ") and "model.features=[2]" in proc.stderr and "narrow the search" in proc.stderr
    )
    assert not (tmp_path / "optuna.db").exists()
    url = f"postgresql+psycopg2://mlflow:s3cret@127.0.0.1:{free_port()}/optuna"  # nothing listens there
    start = time.monotonic()
    proc = subprocess.run([*cli, "t", "--storage", url], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert (
        "Optuna storage postgresql+psycopg2://mlflow:***@127.0.0.1" in proc.stderr
        and "cannot be reached" in proc.stderr
    )
    assert "s3cret" not in proc.stderr and "Traceback" not in proc.stderr and time.monotonic() - start < 60


# ---- the train stage's side: per-epoch test L1, pruning, stopping ----


@pytest.mark.slow
def test_the_train_stage_reports_each_epoch_and_is_pruned(tmp_path, monkeypatch):
    import optuna

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    prune = {"startup_trials": 1, "warmup_epochs": 0}
    study = optuna.create_study(study_name="s", storage=url, pruner=space.make_pruner(prune))
    first = study.ask()
    for epoch, value in ((1, 1.0), (2, 0.5)):
        first.report(value, epoch)
    study.tell(first, 0.5)

    def hook_for(trial, worker_pid=None):
        spec = {"storage": url, "study": "s", "trial_id": trial._trial_id, "number": trial.number,
                "worker_pid": worker_pid or os.getpid(), "prune": prune, "maximize": False}  # fmt: skip
        monkeypatch.setenv("CNN_DENOISE_TRIAL", json.dumps(spec))
        from cnn_denoise.tune.trial import epoch_hook

        return epoch_hook()

    good = study.ask()
    on_epoch = hook_for(good)
    on_epoch({"epoch": 0, "train_l1": 9.0, "test_l1": 9.0})  # epoch 0 is the start: not reported
    on_epoch({"epoch": 1, "train_l1": 0.9, "test_l1": 0.9})
    assert study._storage.get_trial(good._trial_id).intermediate_values == {1: 0.9}
    study.tell(good, 0.9)
    poor = study.ask()
    with pytest.raises(PipelineError, match=r"trial 2 pruned at epoch 1: test L1 5 is worse"):
        hook_for(poor)({"epoch": 1, "train_l1": 5.0, "test_l1": 5.0})
    assert study._storage.get_trial(poor._trial_id).user_attrs["pruned_at"] == 1
    study.tell(poor, state=optuna.trial.TrialState.FAIL)
    with pytest.raises(PipelineError, match="trial 2 is FAIL in the study already"):
        hook_for(poor)({"epoch": 2, "train_l1": 5.0, "test_l1": 5.0})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with pytest.raises(PipelineError, match=rf"its tune worker \(pid {dead.pid}\) is gone"):
        hook_for(study.ask(), worker_pid=dead.pid)({"epoch": 1, "train_l1": 1.0, "test_l1": 1.0})
    monkeypatch.delenv("CNN_DENOISE_TRIAL")
    from cnn_denoise.tune.trial import epoch_hook

    assert epoch_hook() is None


def test_a_failed_trial_says_its_stages_own_error_not_dvcs_wrapper(tmp_path):
    log = tmp_path / "t-2.log"
    log.write_text(
        "Running stage 'train':\n> python stages/train.py ...\nerror: trial 2 is FAIL in the study already; stopping\n"
        "ERROR: failed to reproduce 'train': failed to run: python stages/train.py ..., exited with 1\n"
    )
    assert worker.log_tail(log) == "error: trial 2 is FAIL in the study already; stopping"
    log.write_text("Running stage 'train':\nERROR: failed to reproduce 'train': exited with -9\n")
    assert worker.log_tail(log) == "ERROR: failed to reproduce 'train': exited with -9"


@pytest.mark.slow
def test_a_trial_whose_worker_fell_silent_elsewhere_is_failed(tmp_path, monkeypatch):
    """A worker on another machine (its PID means nothing here) that stops beating its trial's
    heartbeat: the next reap (any worker's, or make tune-report's) marks the trial FAILED."""
    import optuna

    monkeypatch.setattr(storage, "HEARTBEAT_S", 1)
    monkeypatch.setattr(storage, "GRACE_S", 2)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage.open_storage(url))
    here, there = study.ask(), study.ask()
    here.set_user_attr("host", storage.socket.gethostname())
    here.set_user_attr("pid", os.getpid())  # alive: left alone
    there.set_user_attr("host", "another-machine")
    there.set_user_attr("pid", os.getpid())  # a PID of another machine: not judged here
    for trial in (here, there):
        study._storage.record_heartbeat(trial._trial_id)
    assert storage.reap(study) == []
    time.sleep(3)
    study._storage.record_heartbeat(here._trial_id)  # still beating
    storage.reap(study)
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {0: optuna.trial.TrialState.RUNNING, 1: optuna.trial.TrialState.FAIL}


# ---- end to end: workers, one killed mid-trial ----


def _kill_a_worker_mid_trial(url: str, logs: list[Path], procs, deadline: float) -> int:
    """Wait until some trial's train stage runs, SIGKILL that trial's worker (that process only,
    not what it started); return the trial's number."""
    import optuna

    # one storage, not one per poll: each load_study(url) makes an RDBStorage whose connection stays open
    # until the garbage collector runs (40 polls: 24 more connections on the server), and polling every
    # 0.3 s ran PostgreSQL out of its 100 ("too many clients"), failing the workers' trials too
    store = None
    while time.monotonic() < deadline:
        ended = [p.stdout.read() for p in procs if p.poll() is not None]
        assert not ended, f"a search ended before any trial trained: {ended}"
        store = store or storage.open_storage(url, heartbeat=False)  # waits out the workers' creating the tables
        try:
            study = optuna.load_study(study_name="t", storage=store)
        except KeyError:
            time.sleep(0.5)
            continue
        for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
            name = f"t-{t.number}.log"
            if "pid" in t.user_attrs and any(
                (d / name).exists() and "Running stage 'train'" in (d / name).read_text() for d in logs
            ):
                os.kill(t.user_attrs["pid"], signal.SIGKILL)
                return t.number
        time.sleep(0.3)
    raise AssertionError("no trial reached its train stage in time")


def _check_study(url: str, mlflow_uri: str, shown: list, killed: int, killed_pid: int) -> None:
    """Every trial but the killed one COMPLETE, with its DVC experiment and its MLflow run under
    the study's; the killed one FAILED; the best trial is the best run."""
    import mlflow
    import optuna

    study = optuna.load_study(study_name="t", storage=url)
    states = {t.number: t.state for t in study.trials}
    assert len(states) == 4, states
    assert states.pop(killed) == optuna.trial.TrialState.FAIL
    assert set(states.values()) == {optuna.trial.TrialState.COMPLETE}, states
    assert study.trials[killed].user_attrs["pid"] == killed_pid

    exps = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs", []):
                exps[rev.get("name")] = rev["data"]
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("lab2b-cnn-denoise")
    parent = client.get_run(study.user_attrs["mlflow_run"])
    assert parent.info.run_name == "t" and parent.data.tags["kind"] == "study"
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=50
    )
    runs = {r.info.run_name: r for r in children}
    assert killed not in {int(n.rsplit("-", 1)[1]) for n in runs}  # the killed trial never logged a model
    statuses = [r.info.status for r in client.search_runs([experiment.experiment_id], max_results=100)]
    assert "RUNNING" not in statuses, statuses
    for t in study.trials:
        if t.number == killed:
            continue
        name = f"t-{t.number}"
        data = exps[name]  # its DVC experiment: the params it was given, the metric it reported
        dvc_params = data["params"]["params.yaml"]["data"]
        assert dvc_params["model"]["features"] == yaml.safe_load(t.params["model.features"])
        assert dvc_params["train"]["lr"] == pytest.approx(t.params["train.lr"])
        assert data["metrics"]["metrics/eval.json"]["data"]["test"]["l1"] == t.value
        run = runs[name]  # its MLflow run: params, per-epoch history, test metrics
        assert run.info.status == "FINISHED" and run.data.tags["optuna_trial"] == str(t.number)
        assert run.data.params["model.features"] == t.params["model.features"]
        assert float(run.data.params["train.lr"]) == pytest.approx(t.params["train.lr"])
        history = client.get_metric_history(run.info.run_id, "epoch.test_l1")
        assert sorted(m.step for m in history) == [0, 1, 2]
        assert {m.step: m.value for m in history if m.step} == pytest.approx(t.intermediate_values)
        assert run.data.metrics["test.l1"] == t.value and "test.si_sdr_db" in run.data.metrics
    best = min(r.data.metrics["test.l1"] for r in children)
    # two trials can tie (nearby learning rates, two epochs, the L1 kept to six digits): either is best
    best_runs = {r.info.run_name for r in children if r.data.metrics["test.l1"] == best}
    assert best == study.best_value and f"t-{study.best_trial.number}" in best_runs
    assert parent.data.tags.get("best_trial") in {None, *best_runs}


def _report(repo: Path, env: dict) -> None:
    out = sh([sys.executable, "-m", "cnn_denoise.tune", "report", "t"], repo, env).stdout.splitlines()
    assert max(map(len, out)) <= 160 and any(line.startswith("t-0 ") for line in out)
    assert any(" FAIL " in line for line in out) and "make tune-promote NAME=t" in out[-1]
    for png in ("history.png", "importance.png"):
        assert (repo / "tuning" / "t" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
def test_three_workers_on_sqlite_one_killed(tmp_path):
    repo, env = project(tmp_path)
    url = f"sqlite:///{repo / 'optuna.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnn_denoise.tune", "run", "t", "--workers", "3"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        killed = _kill_a_worker_mid_trial(url, [repo / ".dvc" / "tmp" / "tune"], [proc], time.monotonic() + 300)
        out, _ = proc.communicate(timeout=420)
    finally:
        proc.kill()
    assert proc.returncode == 1, out  # a worker was lost: said, and the exit status says so
    import optuna

    killed_pid = optuna.load_study(study_name="t", storage=url).trials[killed].user_attrs["pid"]
    assert f"worker pid {killed_pid} was killed (SIGKILL); its trial {killed} is FAILED" in out, out
    assert _gone(killed_pid)  # what it had started (dvc, the stages) was stopped with it
    shown = json.loads(sh(["dvc", "exp", "show", "--json"], repo, env).stdout)
    _check_study(url, f"sqlite:///{repo / 'mlflow.db'}", shown, killed, killed_pid)
    _report(repo, env)


@pytest.mark.slow
def test_three_machines_on_the_postgresql_server_one_killed(tmp_path, team_server):
    """Three clones of one origin, each `make tune ... WORKERS=1` against the team server's
    PostgreSQL and MLflow; finished trials are pushed, so one clone pulls and applies the best."""
    from cnn_denoise.tracking import server

    first, env = project(tmp_path / "first")
    origin = tmp_path / "origin.git"
    sh(["git", "clone", "-q", "--bare", str(first), str(origin)], tmp_path, env)
    password = (Path(team_server["folder"]) / "pgpass").read_text().strip()
    url = server.optuna_storage(team_server, password)
    env.update(OPTUNA_STORAGE=url, MLFLOW_TRACKING_URI=team_server["url"])
    clones, procs = [], []
    for i in range(3):
        clone = tmp_path / f"machine-{i}"
        sh(["git", "clone", "-q", str(origin), str(clone)], tmp_path, env)
        sh(["dvc", "remote", "modify", "--local", "team", "url", str(tmp_path / "dvc-remote")], clone, env)
        shutil.copytree(first / "sources", clone / "sources", dirs_exist_ok=True)  # each machine's local data copies
        clones.append(clone)
        cmd = [sys.executable, "-m", "cnn_denoise.tune", "run", "t", "--workers", "1"]
        procs.append(
            subprocess.Popen(cmd, cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    try:
        killed = _kill_a_worker_mid_trial(
            url, [c / ".dvc" / "tmp" / "tune" for c in clones], procs, time.monotonic() + 300
        )
        outs = [p.communicate(timeout=420)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert sorted(p.returncode for p in procs) == [0, 0, 1], outs
    import optuna

    study = optuna.load_study(study_name="t", storage=url)
    killed_pid = study.trials[killed].user_attrs["pid"]
    names = [f"t-{t.number}" for t in study.trials if t.number != killed]
    pushed = sh(["git", "ls-remote", str(origin), "refs/exps/*"], tmp_path, env).stdout
    print("\n----\n".join(outs))  # shown whole under "Captured stdout" when an assertion fails
    attrs = {t.number: (t.state.name, t.user_attrs.get("pushed"), t.user_attrs.get("push_error")) for t in study.trials}
    assert sorted(line.rsplit("/", 1)[1] for line in pushed.splitlines()) == sorted(names), attrs
    home = clones[0]  # any clone gets every trial back from origin
    sh(["dvc", "exp", "pull", "origin", *names], home, env)
    shown = json.loads(sh(["dvc", "exp", "show", "--json"], home, env).stdout)
    _check_study(url, team_server["url"], shown, killed, killed_pid)
    sh(["dvc", "exp", "apply", f"t-{study.best_trial.number}"], home, env)
    assert json.loads((home / "metrics" / "eval.json").read_text())["test"]["l1"] == study.best_value


@pytest.mark.slow
def test_machines_starting_together_on_an_empty_database_all_open_it(tmp_path):
    """Six processes open one fresh storage at the same moment: Optuna's table creation races
    (`table ... already exists`, or the schema version stamped twice), and each still gets it."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    go = tmp_path / "go"
    code = (
        "import os, sys, time\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.005)\n"
        "from cnn_denoise.tune.storage import open_storage\n"
        f"open_storage({url!r}, heartbeat=False).get_all_studies()\n"
        "print('ok')\n"
    )
    warm = "import optuna, sqlalchemy; import cnn_denoise.tune\n"  # imports done before the start line
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", warm + code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(6)
    ]
    time.sleep(8)
    go.touch()
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6 and all(o.strip() == "ok" for o in outs), outs

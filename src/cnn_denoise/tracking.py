"""MLflow logging for the train and evaluate stages: one run per trained model.

train opens the run, named after the DVC experiment (or `workspace@<commit>`), and tags it
with the SHA-256 of the model file it wrote; evaluate finds that run by the same hash and
adds the final metrics to it. The baselines (zeros, the noisy input, the least-squares
filter, the ideal low-pass) are runs of their own, tagged kind=baseline, logged once per
dataset and setting and reused, under the same metric names as the CNN runs, so charts put
them side by side. Nothing from MLflow (run ids, times) goes into a DVC output.

The store is $MLFLOW_TRACKING_URI, or else sqlite:///<project root>/mlflow.db, where the
project root is $DVC_ROOT when DVC sets it: `dvc exp run --queue/--temp` run stages in a
copy under .dvc/tmp/exps, and DVC points DVC_ROOT at the main repository, so queued
experiments land in the same store as plain `dvc repro`.
CNN_DENOISE_TRACKING picks what a tracking failure does: "warn" (default: the DVC outputs
are already written, the stage prints one line saying tracking failed and succeeds),
"require" (the stage fails after writing its outputs) or "off" (no MLflow at all).
"""

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage reports leave the machine
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # a server that is down fails in seconds,
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")  # not after MLflow's minutes of retries

EXPERIMENT = "lab2b-cnn-denoise"
REGISTERED_MODEL = "cnn-denoise"  # every run's model is a version of it; `cnn-denoise promote` sets aliases
MODES = ("warn", "require", "off")


def mode() -> str:
    value = os.environ.get("CNN_DENOISE_TRACKING", "warn").lower()
    if value not in MODES:
        from .errors import PipelineError

        raise PipelineError(f"CNN_DENOISE_TRACKING={value!r} is not one of {', '.join(MODES)}; unset it or pick one")
    return value


def project_root(start=None) -> Path:
    """The nearest folder at or above `start` holding dvc.yaml (the cwd of DVC's stages)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists():
            return folder
    return here


def main_root() -> Path:
    """The main repository: $DVC_ROOT under `dvc exp run --queue/--temp` (which run in a copy
    under .dvc/tmp/exps that DVC deletes afterwards), else the project's root."""
    return (Path(os.environ["DVC_ROOT"]) if os.environ.get("DVC_ROOT") else project_root()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{main_root() / 'mlflow.db'}"


def _git(*args) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=project_root(), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def run_tags(lock: dict) -> dict[str, str]:
    """Where the run came from: git commit and dirtiness (ignoring the pipeline's own
    outputs), the DVC experiment's name, and the dataset's hash from `lock` (upstream_lock)."""
    tags = {}
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["git_commit"] = commit
        changes = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock", ":!metrics")
        tags["git_dirty"] = str(bool(changes))
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    if lock.get("dataset_md5"):
        tags["dataset_md5"] = lock["dataset_md5"]
    return tags


def upstream_lock() -> dict:
    """From dvc.lock: the params that made the data this model trained on (fetch, split)
    and the dataset zip's md5, exactly as DVC recorded them before this stage ran."""
    path = project_root() / "dvc.lock"
    try:
        stages = yaml.safe_load(path.read_text())["stages"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return {}
    from .params import flatten
    from .urls import redact

    out = {"params": {}}
    for name in ("fetch", "split"):
        out["params"].update(flatten(stages.get(name, {}).get("params", {}).get("params.yaml", {})))
    if isinstance(out["params"].get("data.url"), str):
        out["params"]["data.url"] = redact(out["params"]["data.url"])  # no password or signed query in MLflow
    for item in stages.get("fetch", {}).get("outs", []):
        if item.get("path", "").endswith(".zip"):
            out["dataset_md5"] = item.get("md5")
    return out


def file_sha256(path, algorithm: str = "sha256") -> str:
    """The file's hash (hex); with "md5", DVC's hash of a file."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def guarded(what: str, log) -> int:
    """Run `log()`; on failure say so in one line. Return the stage's exit code."""
    current = mode()
    if current == "off":
        return 0
    # MLflow's SQL store logs a whole traceback before it raises (a locked or broken
    # database); the one line below says it instead
    db_log = logging.getLogger("mlflow.store.db.utils")
    level = db_log.level
    db_log.setLevel(logging.CRITICAL)
    try:
        log()
        return 0
    except Exception as exc:  # any failure of the store must not lose the DVC outputs
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(
            f"MLflow tracking failed while {what} at {tracking_uri()}: {reason}; the DVC outputs are written, "
            "fix MLFLOW_TRACKING_URI or set CNN_DENOISE_TRACKING=off",
            file=sys.stderr,
        )
        return 1 if current == "require" else 0
    finally:
        db_log.setLevel(level)


def _artifact_root() -> str | None:
    """Where a new experiment keeps artifacts: mlartifacts/ in the main repository for local
    stores; a server decides for itself (None)."""
    if tracking_uri().split(":")[0] in ("http", "https", "databricks"):
        return None
    return (main_root() / "mlartifacts").as_uri()


def experiment_id(client) -> str:
    """The experiment's id. Created with its artifacts in the main repository, whichever
    command runs first (a temporary DVC copy would take them along when it is deleted), and
    safe when parallel workers create it at once; a local store whose experiment points into
    .dvc/tmp (made by an older version) is repaired."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        try:
            return client.create_experiment(EXPERIMENT, artifact_location=_artifact_root())
        except MlflowException:  # another worker created it between the two calls
            exp = client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                raise
    if "/.dvc/tmp/" in exp.artifact_location and tracking_uri().startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(tracking_uri().removeprefix("sqlite:///")) as db:
            db.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                (_artifact_root(), int(exp.experiment_id)),
            )
        print(
            f"MLflow: the experiment kept its artifacts in a temporary DVC copy; they go to {_artifact_root()} "
            "from now on",
            file=sys.stderr,
        )
    return exp.experiment_id


def reap(client, exp_id: str) -> None:
    """Mark runs that a process on this machine left RUNNING and that process is gone (killed,
    or its machine restarted) as KILLED."""
    import socket

    for run in client.search_runs([exp_id], "attributes.status = 'RUNNING'", max_results=200):
        tags = run.data.tags
        if (
            tags.get("host") == socket.gethostname()
            and tags.get("pid", "").isdigit()
            and not pid_alive(int(tags["pid"]))
        ):
            fresh = client.get_run(
                run.info.run_id
            )  # read again: its process may have finished it (or handed it on) meanwhile
            if fresh.info.status == "RUNNING" and fresh.data.tags.get("pid") == tags["pid"]:
                client.set_terminated(run.info.run_id, status="KILLED")


def pid_alive(pid) -> bool:
    """Whether a process with this PID runs; a zombie (exited, not yet waited for) counts as gone."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _mlflow():
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    client = mlflow.MlflowClient()
    exp = experiment_id(client)
    reap(client, exp)
    mlflow.set_experiment(experiment_id=exp)
    return mlflow


def run_name(tags: dict) -> str:
    """The DVC experiment's name, else where the run came from: workspace@<commit>[+changes]."""
    if tags.get("dvc_exp_name"):
        return tags["dvc_exp_name"]
    commit = tags.get("git_commit", "")[:7]
    return f"workspace@{commit}{'+changes' if tags.get('git_dirty') == 'True' else ''}" if commit else "workspace"


def _log_datasets(mlflow, splits: dict) -> None:
    """The train and test splits as the run's dataset inputs, digest = DVC's md5 of the file."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    for name, path in splits.items():
        source = resolve_dataset_source(str(Path(path).resolve()))
        dataset = MetaDataset(source=source, name=name, digest=file_sha256(path, "md5"))
        mlflow.log_input(dataset, context="training" if name == "train" else "testing")


def _signature():
    """Any batch, one channel, any length: float32 (-1, 1, -1) in and out."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    spec_ = Schema([TensorSpec(np.dtype(np.float32), (-1, 1, -1))])
    return ModelSignature(inputs=spec_, outputs=spec_)


def log_training(
    params: dict, history: list[dict], model, model_path, history_path=None, splits: dict | None = None
) -> None:
    """A new run: params (with the data's, from dvc.lock), per-epoch losses as metric
    history, the datasets, the curves as CSV and PNG, the checkpoint, the model (unless
    CNN_DENOISE_LOG_MODEL=0) registered as a version of REGISTERED_MODEL, tags. A model
    that a run already holds (DVC restored a stage from its run cache) gets no second run."""
    import socket

    import torch

    mlflow = _mlflow()
    from mlflow.entities import Metric

    sha = file_sha256(model_path)
    seen = mlflow.search_runs(
        filter_string=f"tags.model_sha256 = '{sha}' and tags.kind = 'cnn'", max_results=1, output_format="list"
    )
    if seen and seen[0].info.status == "FINISHED":
        print(
            f"MLflow: this model is run {seen[0].info.run_id} ({seen[0].info.run_name}) already; nothing new logged",
            file=sys.stderr,
        )
        return
    lock = upstream_lock()  # read dvc.lock once, for the tags and the data's params
    tags = {"model_sha256": sha, "kind": "cnn", "host": socket.gethostname(), "pid": str(os.getpid()), **run_tags(lock)}
    with mlflow.start_run(run_name=run_name(tags)) as run:
        mlflow.set_tags(tags)
        mlflow.log_params({**{k: str(v) for k, v in lock.get("params", {}).items()}, **params})
        if splits:
            _log_datasets(mlflow, splits)
        mlflow.log_artifact(str(model_path), artifact_path="checkpoint")  # what cnn-denoise enhance -m runs:/<id> loads
        if history_path:
            mlflow.log_artifact(str(history_path), artifact_path="plots")
        with tempfile.TemporaryDirectory() as tmp:
            from .report import history_png

            mlflow.log_artifact(str(history_png(history, Path(tmp) / "history.png")), artifact_path="plots")
        metrics = [
            Metric(f"epoch.{key}", row[key], 0, row["epoch"]) for row in history for key in row if key != "epoch"
        ]
        mlflow.tracking.MlflowClient().log_batch(run.info.run_id, metrics=metrics)
        if os.environ.get("CNN_DENOISE_LOG_MODEL", "1") != "0":
            import numpy as np
            import scipy

            mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).with_name("mlflow_model.py")),  # models from code: no pickle
                artifacts={"checkpoint": str(model_path)},
                code_paths=[str(Path(__file__).parent)],
                signature=_signature(),
                pip_requirements=[
                    f"torch=={torch.__version__.split('+')[0]}",
                    f"numpy=={np.__version__}",
                    f"scipy=={scipy.__version__}",
                ],
                registered_model_name=REGISTERED_MODEL,
            )
        print(f"MLflow: logged run {run.info.run_id} ({run.info.run_name}) to {tracking_uri()}", file=sys.stderr)


def log_evaluation(model_path, metrics: dict, reports=None) -> None:
    """Attach the final metrics (and the reports folder) to the run that trained this model
    file, found by the file's hash; a new run only if that one is gone."""
    from .params import flatten

    mlflow = _mlflow()
    sha = file_sha256(model_path)
    runs = mlflow.search_runs(
        filter_string=f"tags.model_sha256 = '{sha}'", order_by=["start_time DESC"], max_results=1, output_format="list"
    )
    run_id = runs[0].info.run_id if runs else None
    if run_id:  # this process holds the run now: other workers' reap() must not take it for a dead one
        import socket

        from mlflow.entities import RunTag

        mlflow.MlflowClient().log_batch(
            run_id, tags=[RunTag("pid", str(os.getpid())), RunTag("host", socket.gethostname())]
        )
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name(run_tags(upstream_lock()))) as run:
        if run_id is None:
            mlflow.set_tags({"model_sha256": sha, "kind": "cnn"})
        mlflow.log_metrics({k: v for k, v in flatten(metrics).items() if v is not None})
        if reports:
            mlflow.log_artifacts(str(reports), artifact_path="reports")
        print(f"MLflow: final metrics added to run {run.info.run_id} ({run.info.run_name})", file=sys.stderr)


def log_baselines(baselines: dict[str, dict], settings: dict[str, dict], dataset_md5: str) -> None:
    """One run per baseline, dataset and setting (e.g. the linear filter's taps), logged once
    and reused: metrics under the CNN runs' names (test.l1, test.si_sdr_db, ...)."""
    from .params import flatten

    mlflow = _mlflow()
    for name, measures in baselines.items():
        key = hashlib.sha256(f"{name}|{dataset_md5}|{sorted(settings.get(name, {}).items())}".encode()).hexdigest()[:16]
        if mlflow.search_runs(filter_string=f"tags.baseline_key = '{key}'", max_results=1, output_format="list"):
            continue
        tags = {"kind": "baseline", "baseline": name, "baseline_key": key, "dataset_md5": dataset_md5}
        with mlflow.start_run(run_name=f"baseline: {name}", tags=tags):
            mlflow.log_params({k: str(v) for k, v in settings.get(name, {}).items()})
            mlflow.log_metrics({k: v for k, v in flatten({"test": measures}).items() if v is not None})


def promote(name: str, alias: str = "best") -> str:
    """Set `alias` on the registered model version of the newest finished run called `name`
    (a DVC experiment's name or a run name); return the version."""
    from .errors import PipelineError

    mlflow = _mlflow()
    runs = mlflow.search_runs(
        filter_string=f"attributes.run_name = '{name}' and tags.kind = 'cnn'",
        order_by=["start_time DESC"],
        output_format="list",
    )
    runs = [r for r in runs if r.info.status == "FINISHED"]
    if not runs:
        raise PipelineError(
            f"no finished run named {name!r} in {tracking_uri()}; give a DVC experiment's name (dvc exp show) "
            "or a run name"
        )
    client = mlflow.MlflowClient()
    versions = client.search_model_versions(f"name = '{REGISTERED_MODEL}' and run_id = '{runs[0].info.run_id}'")
    if not versions:
        raise PipelineError(
            f"run {name!r} has no registered model (it was logged with CNN_DENOISE_LOG_MODEL=0); rerun it"
        )
    version = max(versions, key=lambda v: int(v.version)).version
    client.set_registered_model_alias(REGISTERED_MODEL, alias, version)
    return version

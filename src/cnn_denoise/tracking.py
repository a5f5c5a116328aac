"""MLflow logging for the train and evaluate stages: one run per trained model.

train opens the run and tags it with the SHA-256 of the model file it wrote; evaluate finds
that run by the same hash and adds the final metrics to it. Nothing from MLflow (run ids,
times) goes into a DVC output, so outputs stay reproducible.

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


def tracking_uri() -> str:
    root = Path(os.environ["DVC_ROOT"]) if os.environ.get("DVC_ROOT") else project_root()
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root.resolve() / 'mlflow.db'}"


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

    out = {"params": {}}
    for name in ("fetch", "split"):
        out["params"].update(flatten(stages.get(name, {}).get("params", {}).get("params.yaml", {})))
    for item in stages.get("fetch", {}).get("outs", []):
        if item.get("path", "").endswith(".zip"):
            out["dataset_md5"] = item.get("md5")
    return out


def file_sha256(path) -> str:
    digest = hashlib.sha256()
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
        print(f"MLflow tracking failed while {what} at {tracking_uri()}: {reason}; the DVC outputs are written, "
              "fix MLFLOW_TRACKING_URI or set CNN_DENOISE_TRACKING=off", file=sys.stderr)
        return 1 if current == "require" else 0
    finally:
        db_log.setLevel(level)


def _mlflow():
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(EXPERIMENT)
    return mlflow


def log_training(params: dict, history: list[dict], model, model_path, history_path=None) -> None:
    """A new run: params (with the data's, from dvc.lock), per-epoch losses as metric
    history, the curves as CSV and PNG, the model (unless CNN_DENOISE_LOG_MODEL=0), tags."""
    import numpy as np
    import torch

    mlflow = _mlflow()
    from mlflow.entities import Metric

    with mlflow.start_run() as run:
        lock = upstream_lock()  # read dvc.lock once, for the tags and the data's params
        mlflow.set_tags({"model_sha256": file_sha256(model_path), **run_tags(lock)})
        mlflow.log_params({**{k: str(v) for k, v in lock.get("params", {}).items()}, **params})
        mlflow.log_artifact(str(model_path), artifact_path="checkpoint")  # what cnn-denoise enhance -m runs:/<id> loads
        if history_path:
            mlflow.log_artifact(str(history_path), artifact_path="plots")
        with tempfile.TemporaryDirectory() as tmp:
            from .report import history_png

            mlflow.log_artifact(str(history_png(history, Path(tmp) / "history.png")), artifact_path="plots")
        stamp = 0
        metrics = [Metric(f"epoch.{key}", row[key], stamp, row["epoch"]) for row in history for key in row if key != "epoch"]
        mlflow.tracking.MlflowClient().log_batch(run.info.run_id, metrics=metrics)
        if os.environ.get("CNN_DENOISE_LOG_MODEL", "1") != "0":
            mlflow.pytorch.log_model(
                model,
                name="model",
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                input_example=np.zeros((2, model.features[0], 256), dtype=np.float32),
                # pt2 (torch.export) would fix the signal length to the example's; a pickle
                # with the package's code beside it takes any length
                serialization_format="pickle",
                code_paths=[str(Path(__file__).parent)],
            )
        print(f"MLflow: logged run {run.info.run_id} to {tracking_uri()}", file=sys.stderr)


def log_evaluation(model_path, metrics: dict, reports=None) -> None:
    """Attach the final metrics (and the reports folder) to the run that trained this model
    file, found by the file's hash; a new run only if that one is gone."""
    from .params import flatten

    mlflow = _mlflow()
    sha = file_sha256(model_path)
    runs = mlflow.search_runs(filter_string=f"tags.model_sha256 = '{sha}'", order_by=["start_time DESC"], max_results=1, output_format="list")
    run_id = runs[0].info.run_id if runs else None
    with mlflow.start_run(run_id=run_id) as run:
        if run_id is None:
            mlflow.set_tag("model_sha256", sha)
        mlflow.log_metrics({k: v for k, v in flatten(metrics).items() if v is not None})
        if reports:
            mlflow.log_artifacts(str(reports), artifact_path="reports")
        print(f"MLflow: final metrics added to run {run.info.run_id}", file=sys.stderr)

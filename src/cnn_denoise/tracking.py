"""MLflow logging for the train and evaluate stages: one run per trained model.

train opens the run and tags it with the SHA-256 of the model file it wrote; evaluate finds
that run by the same hash and adds the final metrics to it. Nothing from MLflow (run ids,
times) goes into a DVC output, so outputs stay reproducible.

The store is $MLFLOW_TRACKING_URI, or else sqlite:///<project root>/mlflow.db.
CNN_DENOISE_TRACKING picks what a tracking failure does: "warn" (default: the DVC outputs
are already written, the stage prints one line saying tracking failed and succeeds),
"require" (the stage fails after writing its outputs) or "off" (no MLflow at all).
"""

import hashlib
import os
import sys
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage reports leave the machine

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
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


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
    try:
        log()
        return 0
    except Exception as exc:  # any failure of the store must not lose the DVC outputs
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"MLflow tracking failed while {what} at {tracking_uri()}: {reason}; the DVC outputs are written, "
              "fix MLFLOW_TRACKING_URI or set CNN_DENOISE_TRACKING=off", file=sys.stderr)
        return 1 if current == "require" else 0


def _mlflow():
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(EXPERIMENT)
    return mlflow


def log_training(params: dict, history: list[dict], model, model_path) -> None:
    """A new run: params, the per-epoch losses as metric history, the model, the model's hash."""
    import numpy as np
    import torch

    mlflow = _mlflow()
    from mlflow.entities import Metric

    with mlflow.start_run() as run:
        mlflow.set_tag("model_sha256", file_sha256(model_path))
        mlflow.log_params(params)
        stamp = 0
        metrics = [Metric(f"epoch.{key}", row[key], stamp, row["epoch"]) for row in history for key in row if key != "epoch"]
        mlflow.tracking.MlflowClient().log_batch(run.info.run_id, metrics=metrics)
        mlflow.pytorch.log_model(
            model,
            name="model",
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            input_example=np.zeros((2, model.features[0], 256), dtype=np.float32),
            # pt2 (torch.export) would fix the signal length to the example's; a pickle with
            # the package's code beside it takes any length
            serialization_format="pickle",
            code_paths=[str(Path(__file__).parent)],
        )
        print(f"MLflow: logged run {run.info.run_id} to {tracking_uri()}", file=sys.stderr)


def log_evaluation(model_path, metrics: dict) -> None:
    """Attach the final metrics to the run that trained this model file (or a new run)."""
    from .params import flatten

    mlflow = _mlflow()
    sha = file_sha256(model_path)
    runs = mlflow.search_runs(filter_string=f"tags.model_sha256 = '{sha}'", order_by=["start_time DESC"], max_results=1, output_format="list")
    run_id = runs[0].info.run_id if runs else None
    with mlflow.start_run(run_id=run_id) as run:
        if run_id is None:
            mlflow.set_tag("model_sha256", sha)
        mlflow.log_metrics(flatten(metrics))
        print(f"MLflow: final metrics added to run {run.info.run_id}", file=sys.stderr)

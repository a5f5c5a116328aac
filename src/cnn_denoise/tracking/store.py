"""Where the MLflow store is, how it is opened, and what a tracking failure does.

The store is $MLFLOW_TRACKING_URI, or else sqlite:///<project root>/mlflow.db, where the
project root is $DVC_ROOT when DVC sets it: `dvc exp run --queue/--temp` run stages in a
copy under .dvc/tmp/exps, and DVC points DVC_ROOT at the main repository, so queued
experiments land in the same store as plain `dvc repro`.

CNN_DENOISE_TRACKING picks what a tracking failure does: "warn" (default: the DVC outputs
are already written, the stage prints one line saying tracking failed and succeeds),
"require" (the stage fails after writing its outputs) or "off" (no MLflow at all).
"""

import contextlib
import fcntl
import json
import logging
import os
import sys
from pathlib import Path

from cnn_denoise.common.errors import PipelineError, first_line

EXPERIMENT = "lab2b-cnn-denoise"
# MLflow 3's UI opens an experiment on the view its kind names; without it, on an empty
# GenAI "Overview" of traces. These are model-training runs.
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
# A saved view of the runs table (MLflow's shared view state: ?viewStateShareKey=headline):
# the columns a person compares first, best SI-SDR on top; without it the table shows no metric
# (MLflow 3's UI keeps its default columns in the browser, so this link is how a person gets them).
VIEW_KEY = "headline"
HEADLINE_BARS = {  # the chart view's first section, values that read at a glance
    "test.si_sdr_db": "test SI-SDR, dB (higher is better)",
    "test.stoi": "test STOI (0 to 1, higher is better)",
    "test.l1_vs_zeros_db": "test L1, dB against outputting silence (lower is better)",
    "test.mse_vs_zeros_db": "test MSE, dB against outputting silence (lower is better)",
}
HIDDEN = ("test.l1", "test.mse", "train.l1")  # ~1e-4 and less: MLflow's bars label them all 0.00 (dB above instead)


def _charts() -> list[dict]:
    """The chart view's cards: the headline as bars, L1 per epoch as lines, and the raw L1 and
    MSE bars marked deleted (MLflow adds a bar for every metric without a card)."""
    bars = [
        {"type": "BAR", "uuid": f"headline-{key}", "metricSectionId": "headline", "metricKey": key, "displayName": name}
        for key, name in HEADLINE_BARS.items()
    ]
    curve = {
        "type": "LINE",
        "uuid": "epochs-l1",
        "metricSectionId": "epochs",
        "metricKey": "epoch.test_l1",
        "selectedMetricKeys": ["epoch.train_l1", "epoch.test_l1"],
        "displayName": "L1 per epoch, train and test",
        "xAxisKey": "step",
        "scaleType": "log",
        "xAxisScaleType": "linear",
        "yAxisKey": "metric",
        "yAxisExpressions": [],
        "lineSmoothness": 0,
        "useGlobalXaxisKey": False,
        "useGlobalLineSmoothing": False,
        "range": {},
    }
    gone = [
        {"type": "BAR", "uuid": f"hidden-{key}", "metricSectionId": "headline", "metricKey": key, "deleted": True}
        for key in HIDDEN
    ]
    return [
        {"isGenerated": False, "deleted": False, "runsCountToCompare": 20, **card} for card in (*bars, curve, *gone)
    ]


VIEW = {
    "selectedColumns": [
        "tags.`mlflow.note.content`",
        *(f"metrics.`test.{m}`" for m in ("si_sdr_db", "stoi", "l1_vs_zeros_db", "l1")),
        *(f"params.`{p}`" for p in ("model.taps", "model.features", "train.optimizer", "train.epochs")),
    ],
    "orderByKey": "metrics.`test.si_sdr_db`",
    "orderByAsc": False,
    "compareRunCharts": _charts(),
    "compareRunSections": [  # sorted by name in the UI, before MLflow's own "Model metrics"
        {"uuid": "headline", "name": "Headline: the test set", "display": True, "isReordered": False},
        {"uuid": "epochs", "name": "Training: L1 per epoch", "display": True, "isReordered": False},
    ],
}


def view_url(base: str, experiment_id: str) -> str:
    """The runs table with the headline columns, at a tracking server or UI at `base`."""
    return f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}"


def registry_url(base: str, name: str) -> str:
    """The registered model's versions, their aliases and descriptions."""
    return f"{base}/#/models/{name}"


MODES = ("warn", "require", "off")
# MLflow's defaults, unless the user set them: no usage reports leave the machine, and a
# server that is down fails in seconds, not after MLflow's minutes of retries
DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # a one-file download's bar is noise in enhance's output
}


def configure() -> None:
    """Apply DEFAULTS to the environment (what the user set wins); called before MLflow loads."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)


def mode() -> str:
    value = os.environ.get("CNN_DENOISE_TRACKING", "warn").lower()
    if value not in MODES:
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


def shown_uri() -> str:
    """The tracking URI as messages show it: without its password or query."""
    from cnn_denoise.common.urls import redact

    return redact(tracking_uri())


def is_remote(uri: str) -> bool:
    return uri.split(":")[0] in ("http", "https", "databricks")


def artifact_root() -> str | None:
    """Where a new experiment keeps artifacts: mlartifacts/ in the main repository for local
    stores (a temporary DVC copy would take them along when it is deleted); a server decides."""
    return None if is_remote(tracking_uri()) else (main_root() / "mlartifacts").as_uri()


@contextlib.contextmanager
def _creation_lock(uri: str):
    """Held while a SQLite store may be created: two processes creating MLflow's schema at
    once fail in one of them (`table ... already exists`). Servers need no lock."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _tags() -> dict:
    return {KIND_TAG: KIND, f"mlflow.sharedViewState.{VIEW_KEY}": json.dumps(VIEW)}


def open_store():
    """MLflow pointed at the store and the project's experiment (created if new, once even
    when parallel workers start together); returns (mlflow, experiment id)."""
    configure()
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        exp_id = _experiment(mlflow, MlflowException, uri)
    except Exception as exc:  # a server down or refusing, a database missing its driver or unreadable
        raise PipelineError(
            f"MLflow store {shown_uri()} cannot be reached ({type(exc).__name__}: {first_line(exc, 200)}); "
            "start it, or fix "
            "MLFLOW_TRACKING_URI (unset: the project's mlflow.db)"
        ) from None
    mlflow.set_experiment(experiment_id=exp_id)
    return mlflow, exp_id


def _experiment(mlflow, MlflowException, uri: str) -> str:
    with _creation_lock(uri):
        client = mlflow.MlflowClient()
        exp = client.get_experiment_by_name(EXPERIMENT)
        if exp is None:
            try:
                exp_id = client.create_experiment(EXPERIMENT, artifact_location=artifact_root(), tags=_tags())
            except MlflowException:  # another machine created it between the two calls
                exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
        else:
            exp_id = exp.experiment_id
            for key, value in _tags().items():
                if exp.tags.get(key) != value:  # made by an older version
                    client.set_experiment_tag(exp_id, key, value)
    return exp_id


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
        print(
            f"MLflow tracking failed while {what} at {shown_uri()}: {first_line(exc)}; the DVC outputs are "
            "written, fix MLFLOW_TRACKING_URI or set CNN_DENOISE_TRACKING=off",
            file=sys.stderr,
        )
        return 1 if current == "require" else 0
    finally:
        db_log.setLevel(level)

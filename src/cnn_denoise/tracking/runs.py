"""The runs: one per trained model, one per baseline, read back for comparing.

log_training opens the run, named after the DVC experiment (or `workspace@<commit>`), and tags
it with the SHA-256 of the model file; log_evaluation finds that run by the same hash and adds
the final metrics to it. The evaluate stage calls both, from the train stage's model and
history, so a pipeline opens the store in one process. The baselines (zeros, the noisy input,
the least-squares filter, the ideal low-pass; on a test matrix the neural peers) are runs of
their own, tagged kind=baseline, logged once per dataset and setting and reused, under the same
metric names as the CNN runs, so charts put them side by side. A run whose process died (killed,
machine restarted) is marked KILLED by the next process on the same machine that opens the store.
"""

import contextlib
import hashlib
import math
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from cnn_denoise.common.hashing import sha256_file
from cnn_denoise.common.procs import pid_alive
from cnn_denoise.config.params import flatten
from cnn_denoise.tracking.provenance import committed_params, run_name, run_tags, upstream_lock
from cnn_denoise.tracking.registry import (
    MODEL_DESCRIPTION,
    NAMED_AT,
    REGISTERED_MODEL,
    WHICH,
    version_description,
)
from cnn_denoise.tracking.store import EXPERIMENT, open_store, shown_uri, tracking_uri


def reap(client, exp_id: str) -> None:
    """Mark runs that a process on this machine left RUNNING and that process is gone as KILLED."""
    for run in client.search_runs([exp_id], "attributes.status = 'RUNNING'", max_results=200):
        tags = run.data.tags
        if (
            tags.get("host") == socket.gethostname()
            and tags.get("pid", "").isdigit()
            and not pid_alive(int(tags["pid"]))
        ):
            fresh = client.get_run(run.info.run_id)  # read again: its process may have finished it meanwhile
            if fresh.info.status == "RUNNING" and fresh.data.tags.get("pid") == tags["pid"]:
                client.set_terminated(run.info.run_id, status="KILLED")


_opened: dict[str, str] = {}  # tracking URI -> the experiment's id, for this process


def _open():
    """MLflow on the store, opened and reaped once a process: evaluate logs its run and the
    baselines' (opening again builds MLflow's SQL store again); pointed at it every time."""
    uri = tracking_uri()
    if uri not in _opened:
        mlflow, exp_id = open_store()
        reap(mlflow.MlflowClient(), exp_id)
        _opened[uri] = exp_id
        return mlflow
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=_opened[uri])
    return mlflow


DUPLICATE_KEY = ("UNIQUE constraint failed", "duplicate key value", "Duplicate entry")  # SQLite, PostgreSQL, MySQL


def _log_datasets(mlflow, splits: dict) -> None:
    """The train and test splits as the run's dataset inputs, digest = DVC's md5 of the file."""
    from mlflow.data.dataset_source_registry import get_registered_sources
    from mlflow.data.meta_dataset import MetaDataset

    # MLflow registers a local-file source class twice: pick the first, as it would, but quietly
    local = next(s for s in get_registered_sources() if s._get_source_type() == "local")
    for name, path in splits.items():
        source = local.from_dict({"uri": str(Path(path).resolve())})
        dataset = MetaDataset(source=source, name=name, digest=sha256_file(path, "md5"))
        context = "training" if name == "train" else "testing"
        try:
            mlflow.log_input(dataset, context=context)
        except mlflow.exceptions.MlflowException as e:
            # MLflow looks a dataset up, then inserts it: a run logging the same split at that moment
            # can insert it first, and this insert breaks the table's key. The call is one transaction,
            # rolled back whole, and the dataset is there now: once more links this run to it.
            if not any(word in str(e) for word in DUPLICATE_KEY):
                raise
            mlflow.log_input(dataset, context=context)


def _signature():
    """Any batch, one channel, any length: float32 (-1, 1, -1) in and out."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    audio = Schema([TensorSpec(np.dtype(np.float32), (-1, 1, -1))])
    return ModelSignature(inputs=audio, outputs=audio)


def _log_pyfunc(mlflow, model_path):
    """mlflow.pyfunc.log_model of the checkpoint, requiring this environment's torch, numpy, scipy."""
    import numpy as np
    import scipy
    import torch

    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(Path(__file__).with_name("mlflow_model.py")),
        artifacts={"checkpoint": str(model_path)},
        code_paths=[str(Path(__file__).parent.parent)],
        signature=_signature(),
        input_example=np.zeros((1, 1, 64), dtype=np.float32),  # what a caller sends: (batch, 1, samples)
        pip_requirements=[
            f"torch=={torch.__version__.split('+')[0]}",
            f"numpy=={np.__version__}",
            f"scipy=={scipy.__version__}",
        ],
        registered_model_name=REGISTERED_MODEL,
    )


@contextlib.contextmanager
def _requirements_unchecked():
    """MLflow checks a model's pip requirements against this environment by mapping every
    installed distribution to its modules, a large part of logging a model (bench/README.md):
    once when it writes them, and again when it loads the model back to check the input
    example. Ours are this environment's own versions, so the check cannot find a mismatch."""
    import mlflow.pyfunc
    from mlflow.utils import environment

    name = "warn_dependency_requirement_mismatches"
    checks = {m: getattr(m, name) for m in (environment, mlflow.pyfunc) if hasattr(m, name)}  # another MLflow: none
    for module in checks:
        setattr(module, name, lambda requirements: None)
    try:
        yield
    finally:
        for module, check in checks.items():
            setattr(module, name, check)


def _log_model(mlflow, model_path, tags: dict) -> None:
    """The checkpoint as an MLflow model ("models from code": no pickle), registered as a
    version of REGISTERED_MODEL that says which run, experiment and commit made it."""
    with _requirements_unchecked():
        info = _log_pyfunc(mlflow, model_path)
    version = info.registered_model_version
    if version is not None:
        client = mlflow.MlflowClient()
        name = run_name(tags)
        for key in ("dvc_exp_name", "git_commit", "model_sha256"):
            if tags.get(key):
                client.set_model_version_tag(REGISTERED_MODEL, version, key, tags[key])
        client.update_model_version(REGISTERED_MODEL, version, description=version_description(_trained_by(name, tags)))
        client.update_registered_model(REGISTERED_MODEL, description=MODEL_DESCRIPTION)


def _trained_by(name: str, tags: dict) -> str:
    return f"Trained by run {name} at {tags.get('git_commit', '')[:7] or 'no commit'}."


def _describe_version(mlflow, run, metrics: dict, baselines: dict) -> None:
    """The run's registered version's description, now that its test set is scored: whether it
    improves on the noisy input."""
    client = mlflow.MlflowClient()
    noisy = baselines.get("noisy", {}).get("si_sdr_db")
    for version in client.search_model_versions(f"name = '{REGISTERED_MODEL}' and run_id = '{run.info.run_id}'"):
        trained_by = _trained_by(run.info.run_name, {**run.data.tags, **version.tags})
        text = version_description(trained_by, metrics.get("test", {}).get("si_sdr_db"), noisy)
        client.update_model_version(REGISTERED_MODEL, version.version, description=text)


def _renamed(mlflow, run) -> None:
    """A DVC experiment that trained a model some run already holds (a rerun of a recipe, which is
    deterministic) names that run too: its dvc_exp_name tag becomes the experiment's and NAMED_AT
    says when, so `promote` by the experiment's name finds this model. Without it an older run of
    that name (a trial that trained another model) would be promoted in its place."""
    if name := os.environ.get("DVC_EXP_NAME"):
        client = mlflow.MlflowClient()
        client.set_tag(run.info.run_id, "dvc_exp_name", name)
        client.set_tag(run.info.run_id, NAMED_AT, str(int(time.time() * 1000)))


def log_training(params: dict, history: list[dict], model_path, history_path=None, splits: dict | None = None):
    """A new run: params (with the data's, from dvc.lock), per-epoch losses as metric
    history, the datasets, the curves as CSV and PNG, the checkpoint, the model (unless
    CNN_DENOISE_LOG_MODEL=0) registered as a version of REGISTERED_MODEL, tags. A model
    that a run already holds (DVC restored a stage from its run cache) gets no second run."""
    mlflow = _open()
    from mlflow.entities import Metric

    from cnn_denoise.scoring.figures import history_png

    sha = sha256_file(model_path)
    seen = mlflow.search_runs(
        filter_string=f"tags.model_sha256 = '{sha}' and tags.kind = 'cnn'", max_results=1, output_format="list"
    )
    if seen and seen[0].info.status == "FINISHED":
        _renamed(mlflow, seen[0])
        print(f"MLflow: this model is run {seen[0].info.run_id} ({seen[0].info.run_name}) already; nothing new logged",
              file=sys.stderr)  # fmt: skip
        return
    lock = upstream_lock()  # read dvc.lock once, for the tags and the data's params
    host = {"host": socket.gethostname(), "pid": str(os.getpid())}
    tags = {"model_sha256": sha, "kind": "cnn", **host, **run_tags(lock)}
    if os.environ.get("CNN_DENOISE_PARENT_RUN"):  # a search's trial (cnn_denoise.tune): nested under the study's run
        tags["mlflow.parentRunId"] = os.environ["CNN_DENOISE_PARENT_RUN"]
    with mlflow.start_run(run_name=run_name(tags)) as run:
        mlflow.set_tags(tags)
        mlflow.log_params({**{k: str(v) for k, v in lock.get("params", {}).items()}, **params})
        if splits:
            _log_datasets(mlflow, splits)
        mlflow.log_artifact(str(model_path), artifact_path="checkpoint")  # what enhance -m runs:/<id> loads
        if history_path:
            mlflow.log_artifact(str(history_path), artifact_path="plots")
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_artifact(str(history_png(history, Path(tmp) / "history.png")), artifact_path="plots")
        metrics = [
            Metric(f"epoch.{key}", row[key], 0, row["epoch"]) for row in history for key in row if key != "epoch"
        ]
        mlflow.MlflowClient().log_batch(run.info.run_id, metrics=metrics)
        if os.environ.get("CNN_DENOISE_LOG_MODEL", "1") != "0":
            _log_model(mlflow, model_path, tags)
        print(f"MLflow: logged run {run.info.run_id} ({run.info.run_name}) to {shown_uri()}", file=sys.stderr)


def log_shipped(weights, card: dict, alias: str = "shipped") -> str:
    """The model shipped with the project as a run of its own (kind=shipped, its card's facts as
    params and tags) and a registered version aliased `alias`, whose description says what made
    it and how it scores on voices it never heard; return the version. Once per weights: a
    second call finds the run by the file's SHA-256 and only sets the alias."""
    mlflow = _open()
    client = mlflow.MlflowClient()
    sha = sha256_file(weights)
    seen = [
        v for v in client.search_model_versions(f"name = '{REGISTERED_MODEL}'") if v.tags.get("model_sha256") == sha
    ]
    if seen:
        version = max(seen, key=lambda v: int(v.version)).version
    else:
        tags = {
            "kind": "shipped",
            "model_sha256": sha,
            "git_commit": card.get("commit", ""),
            "recipe": card.get("recipe", ""),
        }
        with mlflow.start_run(run_name=f"shipped-{card.get('recipe', 'model')}"):
            mlflow.set_tags(tags)
            mlflow.log_params(
                {k: str(card[k])[:500] for k in ("recipe", "commit", "trained", "latency_ms", "weights") if k in card}
            )
            with tempfile.TemporaryDirectory() as tmp:  # named as runs log it: checkpoint/model.pt, what -m loads
                named = Path(tmp) / "model.pt"
                named.write_bytes(Path(weights).read_bytes())
                mlflow.log_artifact(str(named), artifact_path="checkpoint")
                with _requirements_unchecked():
                    version = _log_pyfunc(mlflow, named).registered_model_version
            client.set_model_version_tag(REGISTERED_MODEL, version, "model_sha256", sha)
    held_out = " ".join(line.rstrip(".") + "." for line in card.get("headline", []))
    client.update_model_version(
        REGISTERED_MODEL,
        version,
        description=f"The speech model shipped with the project (recipe {card.get('recipe', '?')} at commit "
        f"{card.get('commit', '?')}, trained {card.get('trained', '?')}). On voices it never heard: {held_out} "
        f"It is @{alias}. {WHICH}",
    )
    client.set_registered_model_alias(REGISTERED_MODEL, alias, version)
    return version


def numbers(tree: dict) -> dict:
    """The numeric leaves of a nested dict under dotted names (a set's noise kind is text)."""
    return {k: v for k, v in flatten(tree).items() if isinstance(v, int | float) and not isinstance(v, bool)}


def chart_units(metrics: dict, baselines: dict) -> dict:
    """The test L1 and MSE also in dB relative to outputting zeros on the same test set (the
    lab's L1 is ~1e-4, which MLflow's charts label 0.00): 0 dB = as far from the speech as
    silence, lower is better."""
    test, zeros = metrics.get("test", {}), baselines.get("zeros", {})
    return {
        f"test.{key}_vs_zeros_db": power * math.log10(test[key] / zeros[key])
        for key, power in (("l1", 20), ("mse", 10))
        if test.get(key) and zeros.get(key)
    }


def describe(params: dict, metrics: dict, baselines: dict) -> str:
    """A run's description, in MLflow's note: what differs from the lab's recipe (params.yaml
    as committed) and its headline beside the baselines."""
    lab = committed_params()
    changed = [f"{k}={v}" for k, v in params.items() if k in lab and str(lab[k]) != str(v)]
    what = "The lab's recipe" + (f" with {', '.join(changed)}" if changed else "") + "."
    test = metrics.get("test", {})
    if test.get("si_sdr_db") is None:
        return what
    beside = ", ".join(
        f"{name} {baselines[name]['si_sdr_db']:.1f} dB"
        for name in ("noisy", "linear", "lowpass")
        if baselines.get(name, {}).get("si_sdr_db") is not None
    )
    return f"{what} Test SI-SDR {test['si_sdr_db']:.1f} dB (baselines: {beside})." if beside else what


def log_evaluation(model_path, metrics: dict, reports=None, baselines: dict | None = None) -> None:
    """Attach the final metrics (and the reports folder) to the run that trained this model
    file, found by the file's hash; a new run only if that one is gone. With `baselines`
    ({name: measures}), also the metrics in chart units and a description."""
    mlflow = _open()
    from mlflow.entities import RunTag

    sha = sha256_file(model_path)
    runs = mlflow.search_runs(
        filter_string=f"tags.model_sha256 = '{sha}'", order_by=["start_time DESC"], max_results=1, output_format="list"
    )
    run_id = runs[0].info.run_id if runs else None
    if run_id:  # this process holds the run now: other workers' reap() must not take it for a dead one
        host = [RunTag("pid", str(os.getpid())), RunTag("host", socket.gethostname())]
        mlflow.MlflowClient().log_batch(run_id, tags=host)
    name = None if run_id else run_name(run_tags(upstream_lock()))
    with mlflow.start_run(run_id=run_id, run_name=name) as run:
        if run_id is None:
            mlflow.set_tags({"model_sha256": sha, "kind": "cnn"})
        mlflow.log_metrics(numbers(metrics))
        if baselines:
            mlflow.log_metrics(chart_units(metrics, baselines))
            logged = mlflow.get_run(run.info.run_id)
            mlflow.set_tag("mlflow.note.content", describe(logged.data.params, metrics, baselines))
            _describe_version(mlflow, logged, metrics, baselines)
        if reports:
            mlflow.log_artifacts(str(reports), artifact_path="reports")
        print(f"MLflow: final metrics added to run {run.info.run_id} ({run.info.run_name})", file=sys.stderr)


def _baseline_run(mlflow, name: str, setting: dict, dataset: str, metrics: dict) -> None:
    """A baseline's run, unless one of this name, dataset and setting is logged already."""
    items = sorted(setting.items())
    key = hashlib.sha256(f"{name}|{dataset}|{items}".encode()).hexdigest()[:16]
    if mlflow.search_runs(filter_string=f"tags.baseline_key = '{key}'", max_results=1, output_format="list"):
        return
    tags = {"kind": "baseline", "baseline": name, "baseline_key": key, "dataset_md5": dataset}
    label = f" ({', '.join(f'{k} {v}' for k, v in items)})" if items else ""  # two linear filters: two names
    with mlflow.start_run(run_name=f"baseline: {name}{label}", tags=tags):
        mlflow.log_params({k: str(v) for k, v in setting.items()})
        mlflow.log_metrics(metrics)


def log_baselines(baselines: dict[str, dict], settings: dict[str, dict], dataset_md5: str) -> None:
    """One run per baseline, dataset and setting (e.g. the linear filter's taps), logged once
    and reused: metrics under the CNN runs' names (test.l1, test.si_sdr_db, ...)."""
    mlflow = _open()
    for name, measures in baselines.items():
        metrics = {k: v for k, v in flatten({"test": measures}).items() if v is not None}
        metrics.update(chart_units({"test": measures}, baselines))
        _baseline_run(mlflow, name, settings.get(name, {}), dataset_md5, metrics)


def log_set_baselines(sets: dict, settings: dict[str, dict], dataset: str) -> None:
    """One run per system scored beside the CNN on a test matrix (evaluate.sets: the neural peers),
    `settings`' keys, with its version: logged once per matrix and setting and reused, like the
    baselines'. Its measures on each set go under the CNN run's names for its own
    (sets.<set>.cnn.si_sdr_db, ...), so MLflow's charts and make compare's per-set columns put
    the peers beside the CNN runs, as the baselines' test.* do."""
    mlflow = _open()
    for name, setting in settings.items():
        own = {s: {"cnn": row[name]} for s, row in sets.items() if isinstance(row.get(name), dict)}
        if own:
            _baseline_run(mlflow, name, setting, dataset, numbers({"sets": own}))


def search(max_runs: int = 20):
    """The experiment's runs, newest first, as MLflow's DataFrame (params.*, metrics.*, tags.*)."""
    mlflow, _ = open_store()
    return mlflow.search_runs(
        experiment_names=[EXPERIMENT], order_by=["attributes.start_time DESC"], max_results=max_runs
    )

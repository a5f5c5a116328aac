"""Registered model versions: every CNN run's model is a version of REGISTERED_MODEL, an
alias (`best`, a recipe's name) points at one, and a checkpoint loads by MLflow URI."""

from cnn_denoise.common.errors import PipelineError, first_line
from cnn_denoise.tracking.store import open_store, shown_uri

REGISTERED_MODEL = "cnn-denoise"
NAMED_AT = "named_at"  # tag: when (ms since 1970) a later experiment that trained a run's model named it
ENHANCE_ALIASES = ("speech", "best")  # what `cnn-denoise enhance` takes when no -m is given, first registered first
WHICH = (
    f"cnn-denoise enhance with no -m takes the version aliased @{ENHANCE_ALIASES[0]}, else @{ENHANCE_ALIASES[1]}, "
    "else the speech model shipped with the project (make promote EXP=name ALIAS=speech sets one)."
)
# Plain text: MLflow's UI reads descriptions as Markdown, where <run> is an HTML tag and vanishes.
MODEL_DESCRIPTION = (
    "One version per CNN run (the run that trained it, its commit). Each version's description says whether the "
    f"model improves its own test set over the noisy input (SI-SDR). {WHICH}"
)


def version_description(trained_by: str, test_db: float | None = None, noisy_db: float | None = None) -> str:
    """What a version's description says: which run trained it, whether it improves its test set
    over the noisy input (a lab model that makes recordings worse says so), which alias enhance takes."""
    verdict = ""
    if test_db is not None and noisy_db is not None:
        verdict = (
            f" It improves its test set over the noisy input: SI-SDR {test_db:.1f} dB vs {noisy_db:.1f} dB."
            if test_db > noisy_db
            else f" It makes its test set worse than the noisy input: SI-SDR {test_db:.1f} dB vs {noisy_db:.1f} dB;"
            " not a model to enhance recordings with."
        )
    return f"{trained_by}{verdict} {WHICH}"


def promote(name: str, alias: str = "best") -> str:
    """Set `alias` on the registered model version of the finished run called `name` (a DVC
    experiment's name or a run name) that was last so named; return the version. A run is named
    when it starts, or later when an experiment of that name trained the model it holds (tags
    dvc_exp_name and NAMED_AT, tracking.runs)."""
    mlflow, _ = open_store()
    found = {
        r.info.run_id: r
        for where in (f"attributes.run_name = '{name}'", f"tags.dvc_exp_name = '{name}'")
        for r in mlflow.search_runs(filter_string=f"{where} and tags.kind = 'cnn'", output_format="list")
        if r.info.status == "FINISHED"
    }
    runs = sorted(found.values(), key=lambda r: int(r.data.tags.get(NAMED_AT, r.info.start_time)), reverse=True)
    if not runs:
        raise PipelineError(
            f"no finished run named {name!r} in {shown_uri()}; "
            "give a DVC experiment's name (make exps lists them) or a run name"
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


def registered_alias(aliases) -> str | None:
    """The first of `aliases` that names a version of REGISTERED_MODEL in the store, or None."""
    from mlflow.exceptions import MlflowException

    mlflow, _ = open_store()
    client = mlflow.MlflowClient()
    for alias in aliases:
        try:
            client.get_model_version_by_alias(REGISTERED_MODEL, alias)
            return alias
        except MlflowException:  # no such model or alias
            continue
    return None


def checkpoint_path(uri: str, folder: str) -> str:
    """The checkpoint logged with an MLflow run (artifact checkpoint/model.pt), downloaded into
    `folder`, for runs:/<id>[/...] or a registered model, models:/<name>@<alias> or models:/<name>/<version>."""
    mlflow, _ = open_store()
    client = mlflow.MlflowClient()
    try:
        if uri.startswith("runs:/"):
            run_id = uri.removeprefix("runs:/").split("/")[0]
        else:
            name, _, alias = uri.removeprefix("models:/").partition("@")
            version = (
                client.get_model_version_by_alias(name, alias)
                if alias
                else client.get_model_version(*name.split("/")[:2])
            )
            run_id = version.run_id
        return mlflow.artifacts.download_artifacts(f"runs:/{run_id}/checkpoint/model.pt", dst_path=folder)
    except Exception as exc:  # MLflow raises its own exception types for unknown runs, names and aliases
        raise PipelineError(
            f"{uri}: no model checkpoint found in {shown_uri()} ({first_line(exc, 200)}); "
            "check the run id or name, or MLFLOW_TRACKING_URI"
        ) from None

"""MLflow's side of a study: the study's run, and each trial's run nested under it."""

import json
import sys

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.tune.storage import reload_study, wait_for

# ---- MLflow: the study's run, and each trial's run nested under it ----


def tracking_on() -> bool:
    from cnn_denoise.tracking.store import mode

    return mode() != "off"


def parent_run(study, created: bool) -> str | None:
    """The MLflow run of the study (named after it): made by whoever created the study, read by
    the others from the study's user attributes. Ended at once (FINISHED): a killed worker never
    leaves it RUNNING; trials still nest under it and it collects the best value."""
    if not tracking_on():
        return None
    if not created:
        return wait_for(lambda: reload_study(study).user_attrs.get("mlflow_run"), 60) or None
    from cnn_denoise.tracking.store import guarded, shown_uri

    made = []
    if guarded("creating the study's run", lambda: made.append(_new_parent(study))):
        raise PipelineError(f"no MLflow run for study {study.study_name} at {shown_uri()}; fix the store, run again")
    study.set_user_attr("mlflow_run", made[0] if made else "")
    if made:
        print(f"MLflow: the study's run is {made[0]} ({study.study_name}) in {shown_uri()}", file=sys.stderr)
    return made[0] if made else None


def _new_parent(study) -> str:
    from cnn_denoise.tracking.store import open_store

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


def trial_run(name: str):
    """The MLflow run that trial `name`'s train stage logged (its DVC experiment's name)."""
    from cnn_denoise.tracking.store import open_store

    mlflow, exp_id = open_store()
    runs = mlflow.MlflowClient().search_runs(
        [exp_id], f"tags.dvc_exp_name = '{name}' and tags.kind = 'cnn'", order_by=["start_time DESC"], max_results=1
    )
    return (mlflow, runs[0]) if runs else (mlflow, None)

"""The tracking platform: every trained model an MLflow run, its versions in a registry.

    store.py       where the store is, opening it, what a tracking failure does
    provenance.py  where a run came from: git, dvc.lock, file hashes, its name
    runs.py        the runs of training, evaluation, the baselines and the shipped model; reading them back
    registry.py    registered model versions: promote one, load a checkpoint by URI
    server.py      the team's server: `mlflow server` on PostgreSQL
    record.py      its server.json: status, stop, only of the processes it started
    roles.py       its PostgreSQL roles: an older folder's superuser split from the `mlflow` role
    mlflow_model.py  the model a run logs ("models from code")

Only this package imports MLflow, and only inside functions: the stages import it for
free and pay for MLflow when they log. The names below are what the rest of the project uses.
"""

from cnn_denoise.tracking.registry import REGISTERED_MODEL, checkpoint_path, promote, registered_alias
from cnn_denoise.tracking.runs import (
    log_baselines,
    log_evaluation,
    log_set_baselines,
    log_shipped,
    log_training,
    search,
)
from cnn_denoise.tracking.store import EXPERIMENT, guarded, shown_uri, tracking_uri

__all__ = [
    "EXPERIMENT",
    "REGISTERED_MODEL",
    "checkpoint_path",
    "guarded",
    "log_baselines",
    "log_evaluation",
    "log_set_baselines",
    "log_shipped",
    "log_training",
    "promote",
    "registered_alias",
    "search",
    "shown_uri",
    "tracking_uri",
]

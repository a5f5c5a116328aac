"""The train stage's side of a search trial (cnn_denoise.tune): per-epoch test L1 to Optuna.

A tune worker runs each trial as `dvc exp run --temp`, with CNN_DENOISE_TRIAL (JSON: the
storage, study, trial id, pruner settings, the worker's PID) in the environment; DVC passes it
to the stages. The train stage then reports each epoch's test L1 to the trial as its
intermediate value and asks the study's pruner; training stops, with one line and no outputs,
when the pruner says so, when the trial is no longer RUNNING (another worker marked it FAILED),
or when the worker that started it is gone. Without CNN_DENOISE_TRIAL nothing happens.
"""

import json
import os

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.common.procs import pid_alive

ENV = "CNN_DENOISE_TRIAL"


def epoch_hook():
    """fit()'s on_epoch for this process: None unless a tune worker started it."""
    raw = os.environ.get(ENV)
    if not raw:
        return None
    spec = json.loads(raw)
    import optuna

    from cnn_denoise.tune.space import make_pruner
    from cnn_denoise.tune.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(spec["storage"], heartbeat=False)
    study = optuna.load_study(study_name=spec["study"], storage=storage, pruner=make_pruner(spec["prune"]))
    trial = optuna.trial.Trial(study, spec["trial_id"])
    sign = -1.0 if spec.get("maximize") else 1.0  # the pruner compares in the study's direction
    number = spec["number"]

    def on_epoch(row: dict) -> None:
        if not pid_alive(spec["worker_pid"]):
            raise PipelineError(f"trial {number}: its tune worker (pid {spec['worker_pid']}) is gone; stopping")
        state = storage.get_trial(spec["trial_id"]).state
        if state != optuna.trial.TrialState.RUNNING:
            raise PipelineError(f"trial {number} is {state.name} in the study already; stopping")
        if row["epoch"] == 0:
            return
        trial.report(sign * row["test_l1"], row["epoch"])
        if spec["prune"] and trial.should_prune():
            trial.set_user_attr("pruned_at", row["epoch"])
            raise PipelineError(
                f"trial {number} pruned at epoch {row['epoch']}: test L1 {row['test_l1']:.4g} is worse than "
                "the other trials' at that epoch (search.prune in the recipe)"
            )

    return on_epoch

"""One hyperparameter search across many machines: Optuna picks, DVC runs, MLflow records.

A recipe with a `search:` section (recipes/tune.yaml) names ranges and choices over
params.yaml's dotted keys, a trial budget, the metric and its direction:

    search:
      metric: test.l1              # a key of metrics/eval.json
      direction: minimize          # or maximize
      trials: 8                    # the study's budget: trials started, on every machine together
      prune: {startup_trials: 2, warmup_epochs: 1}   # median pruning on the per-epoch test L1; false: none
      params:
        train.lr: {low: 0.1, high: 1.0, log: true}   # a float range (ints for an int range; step: optional)
        model.taps: {choices: [[20, 20], [40, 40]]}  # any values params.yaml takes

    python -m cnn_denoise.tune run NAME [--trials N] [--workers W] [--storage URL] [--study S] [-S k=v]
    python -m cnn_denoise.tune report NAME [--out DIR]     # the table, plots in tuning/<study>/
    python -m cnn_denoise.tune promote NAME [--alias best] # the best trial's model: models:/cnn-denoise@best

Every corner of the space (each range's ends, each choice, in every combination) is checked
against the params schema before a trial runs. The study lives in $OPTUNA_STORAGE (or
--storage): by default optuna.db, SQLite, in the main clone (one machine); a team points every
clone at one PostgreSQL database (the team server's `optuna` database) and runs the same
command on each machine: they all draw trials from the one study until its budget is spent.
Each trial is `dvc exp run --temp -n <study>-<number>` (a copy of the workspace, so workers
never share one; through exprun.py, so that each command runs its own experiment) and an MLflow
run of that name nested under the study's run (same name as the study); the train stage reports
each epoch's test L1 to Optuna (trial.py), so the pruner stops a poor trial early. With
a git remote, finished trials are pushed (`dvc exp push`), so any clone can `dvc exp apply`
them. A worker killed mid-trial: the trial is marked FAILED (at once by a process on its
machine, which sees its PID gone; elsewhere by Optuna's heartbeat), its processes are stopped,
and the other workers go on.

    space.py    the search: section checked whole (load), sampled (suggest), make_pruner
    storage.py  the study's storage and the study: open_storage, open_study, load_study, reap
    parents.py  the MLflow run of the study and of each trial
    worker.py   Worker: trials one after another, BudgetLock, TrialFailed
    exps.py     the git refs of the study's DVC experiments
    search.py   run: workers started, watched, stopped; the best trial recorded
    report.py   table, plots, report, promote
    trial.py    the train stage's side of a trial: per-epoch test L1 to Optuna, pruning
    command.py  main: the command line (`python -m cnn_denoise.tune`)
"""

"""Experiments: recipes (params overrides kept as data) run as DVC experiments.

book.py      the recipe book: list, show, run (`python -m cnn_denoise.recipes`)
single.py    one recipe's experiment: in a copy, then into the workspace; stopped, the workspace as it was
workspace.py Snapshot: HEAD, params.yaml, dvc.lock, models/, metrics/ kept and put back byte for byte
sweep.py     a sweep's experiments from one warm process
exprun.py    `dvc exp run --temp` that runs its own experiment
runcache.py  DVC's run cache, sparing another process's unfinished entries
"""

"""make compare: the MLflow runs side by side, newest first.

Shows only the params that differ between the runs listed (the rest is printed once
above the table) and the final train/test metrics, so a sweep reads at a glance.
"""

import argparse
import sys

from . import tracking

METRICS = ["train.l1", "test.l1", "train.l1_sum", "test.l1_sum", "train.mse", "test.mse"]


def runs_table(max_runs: int = 20):
    """(table of differing params + metrics, dict of params shared by every run)."""
    import mlflow

    mlflow.set_tracking_uri(tracking.tracking_uri())
    runs = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], order_by=["attributes.start_time DESC"], max_results=max_runs)
    if runs.empty:
        return runs, {}
    params = sorted(c for c in runs.columns if c.startswith("params."))
    differ = [c for c in params if runs[c].astype(str).nunique(dropna=False) > 1]
    shared = {c.removeprefix("params."): runs[c].iloc[0] for c in params if c not in differ}
    columns = ["start_time", "tags.dvc_exp_name"] + differ + [f"metrics.{m}" for m in METRICS]
    table = runs.reindex(columns=columns).rename(columns=lambda c: c.split(".", 1)[1] if c.startswith(("params.", "metrics.", "tags.")) else c)
    table.insert(0, "run", runs["run_id"].str[:8])
    table["start_time"] = table["start_time"].dt.strftime("%Y-%m-%d %H:%M")
    return table, shared


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--max-runs", type=int, default=20, help="newest runs to show")
    args = parser.parse_args(argv)
    import pandas as pd

    table, shared = runs_table(args.max_runs)
    if table.empty:
        print(f"no runs in {tracking.tracking_uri()} yet: run `make repro` or `dvc exp run` first", file=sys.stderr)
        return 1
    print(f"MLflow store: {tracking.tracking_uri()}  (experiment {tracking.EXPERIMENT}, {len(table)} runs, newest first)")
    if shared:
        print("same in every run: " + ", ".join(f"{k}={v}" for k, v in shared.items()))
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.float_format", "{:.4e}".format):
        print(table.to_string(index=False, na_rep="-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

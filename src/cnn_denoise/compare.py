"""Runs side by side, so a sweep reads at a glance: only the params that differ, then the losses.

- make compare: the MLflow runs, newest first (the params they share printed once above);
- make exps: DVC's experiments (`dvc exp show --json`), within 160 columns, readable piped.
"""

import argparse
import sys

from . import tracking

METRICS = ["train.l1", "test.l1", "train.l1_sum", "test.l1_sum", "train.mse", "test.mse"]


def runs_table(max_runs: int = 20):
    """(table of differing params + metrics, dict of params shared by every run)."""
    runs = tracking.search(max_runs)
    if runs.empty:
        return runs, {}
    params = sorted(c for c in runs.columns if c.startswith("params."))
    differ = [c for c in params if runs[c].astype(str).nunique(dropna=False) > 1]
    shared = {c.removeprefix("params."): runs[c].iloc[0] for c in params if c not in differ}
    columns = ["start_time", "tags.dvc_exp_name"] + differ + [f"metrics.{m}" for m in METRICS]
    table = runs.reindex(columns=columns).rename(
        columns=lambda c: c.split(".", 1)[1] if c.startswith(("params.", "metrics.", "tags.")) else c
    )
    table.insert(0, "run", runs["run_id"].str[:8])
    table["start_time"] = table["start_time"].dt.strftime("%Y-%m-%d %H:%M")
    return table, shared


EXP_METRICS = {
    "train.l1": "train L1",
    "test.l1": "test L1",
    "test.si_sdr_db": "SI-SDR dB",
    "linear.si_sdr_db": "linear SI-SDR",
}
WIDTH = 160


def _flat_rows(shown: list) -> list[dict]:
    """[{"name", "params": {dotted: value}, "metrics": {dotted: value}}] from dvc exp show --json."""
    from .params import flatten

    def row(name, rev):
        data = rev.get("data") or {}
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
        metrics = ((data.get("metrics") or {}).get("metrics/eval.json") or {}).get("data") or {}
        return {"name": name, "params": flatten(params), "metrics": flatten(metrics)}

    rows = []
    for baseline in shown:
        rev = baseline.get("rev", "")
        rows.append(row(rev if rev == "workspace" else (baseline.get("name") or rev[:7]), baseline))
        for exp in baseline.get("experiments") or []:
            for r in exp.get("revs", []):
                rows.append(row(f"  {r.get('name') or r.get('rev', '')[:7]}", r))
    return rows


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ",".join(map(str, v))
    return "-" if v is None else str(v)


def exps_table(shown: list, width: int = WIDTH) -> list[str]:
    """Lines of a table: experiment, the params that differ between rows, key metrics."""
    rows = _flat_rows(shown)
    order = {"model": 0, "train": 1, "data": 2}  # what a person varies most comes first; the rest is cut first
    keys = sorted({k for r in rows for k in r["params"]}, key=lambda k: (order.get(k.split(".")[0], 3), k))
    differ = [k for k in keys if len({_cell(r["params"].get(k)) for r in rows}) > 1]
    metric_cols = [(f"m:{k}", label) for k, label in EXP_METRICS.items()]
    param_cols = [(f"p:{k}", k.split(".", 1)[1]) for k in differ]

    def value(r, col):
        kind, key = col.split(":", 1)
        if kind == "m":
            return _cell(
                r["metrics"].get(key, r["metrics"].get(f"baselines.{key}"))
            )  # older eval.json: baselines.linear
        return _cell(r["params"].get(key))

    def render(cols):
        cells = [["experiment", *(label for _, label in cols)]] + [
            [r["name"], *(value(r, c) for c, _ in cols)] for r in rows
        ]
        widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
        return ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells]

    shown_params = list(param_cols)
    lines = render(shown_params + metric_cols)
    while shown_params and max(map(len, lines)) > width:
        shown_params.pop()
        lines = render(shown_params + metric_cols)
    left = [label for _, label in param_cols[len(shown_params) :]]
    if left:
        lines.append(f"(also differ: {', '.join(left)}; dvc exp show --csv has every column)"[:width])
    return lines


def exps_main() -> int:
    import json
    import subprocess

    proc = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True)
    if proc.returncode:
        print(f"error: dvc exp show failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}", file=sys.stderr)
        return 1
    print("\n".join(exps_table(json.loads(proc.stdout))))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "what", nargs="?", choices=["runs", "exps"], default="runs", help="MLflow runs (default) or DVC experiments"
    )
    parser.add_argument("-n", "--max-runs", type=int, default=20, help="newest runs to show")
    args = parser.parse_args(argv)
    if args.what == "exps":
        return exps_main()
    import pandas as pd

    table, shared = runs_table(args.max_runs)
    if table.empty:
        print(f"no runs in {tracking.tracking_uri()} yet: run `make repro` or `dvc exp run` first", file=sys.stderr)
        return 1
    print(
        f"MLflow store: {tracking.tracking_uri()}  (experiment {tracking.EXPERIMENT}, {len(table)} runs, newest first)"
    )
    if shared:
        print("same in every run: " + ", ".join(f"{k}={v}" for k, v in shared.items()))
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.float_format", "{:.4e}".format):
        print(table.to_string(index=False, na_rep="-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

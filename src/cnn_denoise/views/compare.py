"""Runs side by side, so a sweep reads at a glance: a name, the params that differ, the headline.

- make compare: MLflow's runs, newest first: CNN runs and baselines (blank params; the neural
  peers are baselines with a test matrix's scores only), the params that differ among the CNN
  runs, test L1, SI-SDR, STOI and a test matrix's per-set SI-SDR;
- make exps: DVC's experiments (`dvc exp show --json`).
Both fit in 160 columns, piped or not: params are dropped from the right, and named, first.
"""

import argparse
import sys

from cnn_denoise import tracking
from cnn_denoise.common.tables import WIDTH, cell

# the headline of a run, as a person compares runs first; a test matrix adds its own columns
RUN_METRICS = {"test.l1": "test L1", "test.si_sdr_db": "SI-SDR dB", "test.stoi": "STOI"}
HEADLINE = 3  # metric columns always shown (the first of RUN_METRICS or EXP_METRICS); the rest give way
# a test matrix (evaluate.sets): the CNN's SI-SDR per set, one column each; a peer's run logs its own under these names
MATRIX = ("sets.", ".cnn.si_sdr_db")


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def runs_rows(max_runs: int = 20) -> tuple[list[dict], list[str]]:
    """The newest runs as rows {"name", "params", "metrics"} (baselines with blank params) and
    the metric columns to show: the headline, then a test matrix's per-set SI-SDR if logged."""
    runs = tracking.search(max_runs)
    if runs.empty:
        return [], []
    rows = []
    for _, r in runs.iterrows():
        kind = r.get("tags.kind") or "-"
        name = r.get("tags.mlflow.runName") or r["run_id"][:8]
        logged = {c: r[c] for c in runs.columns if not _missing(r[c])}  # pandas: NaN where a run lacks a column
        params = {c.removeprefix("params."): v for c, v in logged.items() if c.startswith("params.") and kind == "cnn"}
        metrics = {c.removeprefix("metrics."): v for c, v in logged.items() if c.startswith("metrics.")}
        rows.append({"name": name, "kind": "CNN" if kind == "cnn" else kind, "params": params, "metrics": metrics})
    matrix = sorted({k for r in rows for k in r["metrics"] if k.startswith(MATRIX[0]) and k.endswith(MATRIX[1])})
    return rows, [*RUN_METRICS, *matrix]


EXP_METRICS = {
    "train.l1": "train L1",
    "test.l1": "test L1",
    "test.si_sdr_db": "SI-SDR dB",
    "linear.si_sdr_db": "linear SI-SDR",
}


def _flat_rows(shown: list) -> list[dict]:
    """[{"name", "params": {dotted: value}, "metrics": {dotted: value}}] from dvc exp show --json."""
    from cnn_denoise.config.params import flatten

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


def table(rows: list[dict], metric_cols: list[tuple[str, str]], first: str, width: int = WIDTH) -> list[str]:
    """Lines of a table within `width`: name (and kind, when rows have one), the params that
    differ between the rows that have params, then `metric_cols` [(dotted key, label)]. Params
    are dropped from the right until it fits; a last line names those left out."""
    order = {"model": 0, "train": 1, "data": 2}  # what a person varies most comes first; the rest is cut first
    with_params = [r for r in rows if r["params"]]
    keys = sorted({k for r in with_params for k in r["params"]}, key=lambda k: (order.get(k.split(".")[0], 3), k))
    differ = [k for k in keys if len({cell(r["params"].get(k)) for r in with_params}) > 1]
    param_cols = [(f"p:{k}", k.split(".", 1)[1]) for k in differ]
    metric_cols = [(f"m:{k}", label) for k, label in metric_cols]
    kinds = any("kind" in r for r in rows)

    def value(r, col):
        kind, key = col.split(":", 1)
        if kind == "m":
            return cell(r["metrics"].get(key, r["metrics"].get(f"baselines.{key}")))  # older eval.json
        return cell(r["params"].get(key)) if r["params"] else ""

    def render(cols):
        head = [first, *(["kind"] if kinds else []), *(label for _, label in cols)]
        cells = [head] + [
            [r["name"], *([r.get("kind", "")] if kinds else []), *(value(r, c) for c, _ in cols)] for r in rows
        ]
        widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
        return ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells]

    shown, metrics = list(param_cols), list(metric_cols)
    lines = render(shown + metrics)
    while shown and max(map(len, lines)) > width:
        shown.pop()
        lines = render(shown + metrics)
    while len(metrics) > HEADLINE and max(map(len, lines)) > width:  # then a test matrix's sets, from the right
        metrics.pop()
        lines = render(shown + metrics)
    left = [label for _, label in param_cols[len(shown) :]]
    if left:
        lines.append(f"(also differ: {', '.join(left)})"[:width])
    if cut := [label for _, label in metric_cols[len(metrics) :]]:
        lines.append(f"(not shown: {len(cut)} more sets: {', '.join(cut)})"[:width])
    return [line[:width] for line in lines]


def exps_table(shown: list, width: int = WIDTH) -> list[str]:
    """Lines of a table: experiment, the params that differ between rows, key metrics."""
    rows = _flat_rows(shown)
    matrix = sorted({k for r in rows for k in r["metrics"] if k.startswith(MATRIX[0]) and k.endswith(MATRIX[1])})
    labels = [*EXP_METRICS.items(), *((k, k.removeprefix(MATRIX[0]).removesuffix(MATRIX[1]) + " dB") for k in matrix)]
    lines = table(rows, labels, "experiment", width)
    if lines[-1].startswith("(also differ"):
        lines[-1] = lines[-1].removesuffix(")") + "; dvc exp show --csv has every column)"
    return [line[:width] for line in lines]


def exps_main() -> int:
    import json
    import subprocess

    proc = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True)
    if proc.returncode:
        print(f"error: dvc exp show failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}", file=sys.stderr)
        return 1
    print("\n".join(exps_table(json.loads(proc.stdout))))
    from pathlib import Path

    from cnn_denoise.views.summary import table as baselines

    measures = Path("reports/measures.json")
    if measures.exists():  # what the numbers above stand against (the workspace's test set)
        print("\nthe workspace's model and baselines:\n" + "\n".join(baselines(json.loads(measures.read_text()))))
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
    rows, metrics = runs_rows(args.max_runs)
    if not rows:
        print(f"no runs in {tracking.shown_uri()} yet: run `make repro` or `dvc exp run` first", file=sys.stderr)
        return 1
    print(f"MLflow store: {tracking.shown_uri()}  ({len(rows)} runs, newest first)"[:WIDTH])
    labels = [(k, RUN_METRICS.get(k, k.removeprefix(MATRIX[0]).removesuffix(MATRIX[1]) + " dB")) for k in metrics]
    print("\n".join(table(rows, labels, "run")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

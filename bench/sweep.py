"""The four-variant sweep's rate, experiments a minute, at two commits side by side.

    python bench/sweep.py [BEFORE] [AFTER] [--rounds 2] [--epochs 5]

Each commit is cloned into a temporary folder (its data made once: dvc repro of the data
stages, tracking off), then `python -m cnn_denoise.recipes run sweep -S train.epochs=E -S train.seed=S` (make
sweep, queued, two at a time, tracked in the clone's SQLite store) runs there, the commits
taking turns, each round with seeds never used before so DVC's run cache restores nothing.
Beside the rates: the training arithmetic, each variant's fit() timed in this process, one at
a time. Writes bench/sweep.json and prints a table. Not a test: nothing here asserts a time.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MODEL_STAGES = ("train", "evaluate")  # what each experiment runs
NAMES = [v["name"] for v in yaml.safe_load((ROOT / "recipes" / "sweep.yaml").read_text())["variants"]]


def run(cmd, cwd, env) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"error: {' '.join(map(str, cmd))} failed in {cwd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def arithmetic(clone: Path, epochs: int) -> dict:
    """Seconds of fit() for each variant of recipes/sweep.yaml, on the clone's data."""
    sys.path.insert(0, str(clone / "src"))
    from cnn_denoise.config import params
    from cnn_denoise.lab.dataset import load_split
    from cnn_denoise.models import model as cnn
    from cnn_denoise.recipes import book
    from cnn_denoise.training.fit import fit

    base = yaml.safe_load((clone / "params.yaml").read_text())
    train, test = load_split(clone / "data/split/train.pt"), load_split(clone / "data/split/test.pt")
    out = {}
    for variant in book.load("sweep", clone, extra={"train.epochs": epochs}):
        p = params.Params.model_validate(book.set_dotted(base, variant.overrides))
        start = time.perf_counter()
        fit(cnn.build(p.model, seed=p.train.seed), train, test, p.train, progress=False)
        out[variant.name] = round(time.perf_counter() - start, 2)
    return out


def experiments(clone: Path) -> int:
    """CNN runs FINISHED with final metrics in the clone's store."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{clone / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lab2b-cnn-denoise")
    runs = client.search_runs([exp.experiment_id], "tags.kind = 'cnn'", max_results=500) if exp else []
    return sum(r.info.status == "FINISHED" and "test.l1" in r.data.metrics for r in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", nargs="?", default="HEAD~1")
    parser.add_argument("after", nargs="?", default="HEAD")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cnn-denoise-sweep-bench-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "CNN_DENOISE_"))}
    base_env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{base_env['PATH']}", MLFLOW_DISABLE_TELEMETRY="true"
    )
    revs = {
        name: subprocess.run(
            ["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        for name, rev in (("before", args.before), ("after", args.after))
    }
    clones, envs = {}, {}
    cpus = len(os.sched_getaffinity(0))  # those it may run on (taskset), not the machine's
    results = {"revs": revs, "epochs": args.epochs, "cpus": cpus, "sweeps": []}
    try:
        for name, rev in revs.items():
            clone = work / name
            run(["git", "clone", "-q", str(ROOT), str(clone)], work, base_env)
            run(["git", "checkout", "-q", rev], clone, base_env)
            envs[name] = dict(base_env, PYTHONPATH=str(clone / "src"))
            # every stage that is not the model's (the data, the speech sets evaluate reads, the
            # baselines), as `make repro` leaves them: else the first round also makes them
            stages = [s for s in yaml.safe_load((clone / "dvc.yaml").read_text())["stages"] if s not in MODEL_STAGES]
            print(f"{name} ({rev}): dvc repro {' '.join(stages)}", file=sys.stderr)
            run(["dvc", "repro", *stages], clone, dict(envs[name], CNN_DENOISE_TRACKING="off"))
            clones[name] = clone
        results["fit_s"] = arithmetic(clones["after"], args.epochs)
        print(f"training arithmetic: {results['fit_s']}", file=sys.stderr)
        seed = 1000
        for r in range(args.rounds):
            for name in ("before", "after") if r % 2 == 0 else ("after", "before"):
                seed += 1
                print(f"round {r + 1}: {name}", file=sys.stderr)
                cmd = [sys.executable, "-m", "cnn_denoise.recipes", "run", "sweep"]
                cmd += ["-S", f"train.epochs={args.epochs}", "-S", f"train.seed={seed}"]
                took = run(cmd, clones[name], envs[name])
                run(["dvc", "queue", "remove", "--success"], clones[name], envs[name])
                run(["dvc", "exp", "remove", *NAMES], clones[name], envs[name])  # the next round reuses the names
                print(f"  {took:.1f} s: {4 * 60 / took:.2f} experiments/min", file=sys.stderr)
                results["sweeps"].append({"rev": name, "round": r + 1, "wall_s": round(took, 1),
                                          "experiments_per_min": round(4 * 60 / took, 2)})  # fmt: skip
                (ROOT / "bench" / "sweep.json").write_text(json.dumps(results, indent=2) + "\n")  # so far
        for name, clone in clones.items():
            results[f"complete_runs_{name}"] = experiments(clone)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (ROOT / "bench" / "sweep.json").write_text(json.dumps(results, indent=2) + "\n")
    fit_total = sum(results["fit_s"].values())
    print(f"\nfour-variant sweep at {args.epochs} epochs, {results['cpus']} CPUs; before {revs['before']}, after "
          f"{revs['after']}; training arithmetic {fit_total:.1f} s for the four, one at a time")  # fmt: skip
    print("round  commit  wall (s)  experiments/min")
    for s in results["sweeps"]:
        print(f"{s['round']:5}  {s['rev']:6}  {s['wall_s']:8.1f}  {s['experiments_per_min']:15.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

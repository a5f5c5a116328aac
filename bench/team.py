"""make bench-team: what the team's infrastructure costs, measured side by side in one run.

In a fresh clone of this repository (committed state) on the default data:
- `dvc repro -f` with tracking off, with the SQLite store, with the PostgreSQL-backed server
  (python -m cnn_denoise.tracking.server): the time each store adds to a pipeline run;
- `dvc push` to a folder remote, and `dvc pull` into a second fresh clone;
- four queued experiments (5 epochs, distinct seeds) with `dvc queue start -j 1, 2, 4` on the
  SQLite store and -j 4 on the server: wall time, throughput, and whether every run is
  complete (FINISHED with final metrics);
- `make sweep`'s four variants at 5 epochs from one warm process (warm.py), on each store;
- beside them, the training arithmetic: the four variants' fit(), one at a time in this process.
Writes bench/team.json and prints a table. Not a test: nothing here asserts a time.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = 4  # queued at once
JOBS = (1, 2, 4)


def run(cmd, cwd, env) -> float:
    """Seconds `cmd` took; it must succeed."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"error: {' '.join(cmd)} failed in {cwd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def sweep(repo: Path, env: dict, jobs: int, tag: str, first_seed: int) -> float:
    """Queue EXPERIMENTS experiments (seeds never used before, so DVC's run cache cannot
    restore them), start jobs workers, wait: seconds until all are done."""
    for i in range(EXPERIMENTS):
        run(
            [
                "dvc",
                "exp",
                "run",
                "--queue",
                "-n",
                f"{tag}-{i}",
                "-S",
                "train.epochs=5",
                "-S",
                f"train.seed={first_seed + i}",
            ],
            repo,
            env,
        )
    start = time.perf_counter()
    run(["dvc", "queue", "start", "-j", str(jobs)], repo, env)
    while True:
        status = subprocess.run(["dvc", "queue", "status"], cwd=repo, env=env, capture_output=True, text=True).stdout
        if not any(word in status for word in ("Running", "Queued")):
            break
        time.sleep(2)
    took = time.perf_counter() - start
    if status.count("Success") != EXPERIMENTS:
        sys.exit(f"error: not every experiment succeeded with -j {jobs}:\n{status}")
    run(["dvc", "queue", "remove", "--success"], repo, env)
    return took


def complete_runs(uri: str, where: str) -> int:
    """CNN runs matching `where` (an MLflow filter) that are FINISHED with final metrics."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("lab2b-cnn-denoise")
    runs = client.search_runs([exp.experiment_id], f"tags.kind = 'cnn' and {where}", max_results=100)
    return sum(r.info.status == "FINISHED" and "test.l1" in r.data.metrics for r in runs)


def main() -> int:
    from sweep import NAMES, arithmetic  # bench/sweep.py (make bench-sweep)

    from cnn_denoise.tracking import server

    work = Path(
        tempfile.mkdtemp(prefix="cnn-denoise-team-bench-")
    )  # in /tmp itself: PostgreSQL runs as postgres under root
    work.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "CNN_DENOISE_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        MLFLOW_DISABLE_TELEMETRY="true",
        CNN_DENOISE_TRACKING="require",
    )
    a, b, remote = work / "a", work / "b", work / "dvc-remote"
    results = {
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "cpus": os.cpu_count(),
    }
    try:
        run(["git", "clone", "-q", str(ROOT), str(a)], work, env)
        run(["dvc", "remote", "modify", "--local", "team", "url", str(remote)], a, env)
        print("warm-up: dvc repro (fresh clone, tracking off)", file=sys.stderr)
        results["repro_fresh_clone_s"] = run(["dvc", "repro"], a, dict(env, CNN_DENOISE_TRACKING="off"))
        repro = {"off": dict(env, CNN_DENOISE_TRACKING="off"), "sqlite": env}
        for store, store_env in repro.items():
            print(f"dvc repro -f, tracking {store}", file=sys.stderr)
            results[f"repro_{store}_s"] = run(["dvc", "repro", "-f"], a, store_env)
        start = time.perf_counter()
        state = server.start(work / "server", "127.0.0.1", server.free_port(), 2)
        results["server_start_s"] = time.perf_counter() - start
        server_env = dict(env, MLFLOW_TRACKING_URI=state["url"])
        print("dvc repro -f, tracking on the PostgreSQL server", file=sys.stderr)
        results["repro_server_s"] = run(["dvc", "repro", "-f"], a, server_env)
        results["push_s"] = run(["dvc", "push"], a, env)
        run(["git", "clone", "-q", str(ROOT), str(b)], work, env)
        run(["dvc", "remote", "modify", "--local", "team", "url", str(remote)], b, env)
        results["pull_s"] = run(["dvc", "pull"], b, env)
        results["remote_mb"] = round(sum(f.stat().st_size for f in remote.rglob("*") if f.is_file()) / 2**20, 1)
        run(["git", "add", "-A"], a, env)
        run(
            ["git", "commit", "-qm", "bench", "--allow-empty"],
            a,
            dict(env, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b"),
        )
        results["sweeps"] = []
        sweeps = [
            *(("sqlite", j, env, f"sqlite:///{a / 'mlflow.db'}") for j in JOBS),
            ("server", 4, server_env, state["url"]),
        ]
        for n, (store, jobs, store_env, uri) in enumerate(sweeps):
            print(f"{EXPERIMENTS} queued experiments, -j {jobs}, {store}", file=sys.stderr)
            tag = f"{store}-j{jobs}"
            took = sweep(a, store_env, jobs, tag, first_seed=100 * (n + 1))
            results["sweeps"].append(
                {
                    "how": "queue",
                    "store": store,
                    "jobs": jobs,
                    "wall_s": took,
                    "experiments_per_min": 60 * EXPERIMENTS / took,
                    "complete_runs": complete_runs(uri, f"attributes.run_name LIKE '{tag}-%'"),
                }
            )
        for n, (store, store_env, uri) in enumerate(
            (("sqlite", env, sweeps[0][3]), ("server", server_env, state["url"]))
        ):
            print(f"make sweep's {len(NAMES)} variants from one warm process, {store}", file=sys.stderr)
            began = time.time()
            cmd = [sys.executable, "-m", "cnn_denoise.recipes", "run", "sweep", "-S", "train.epochs=5"]
            took = run([*cmd, "-S", f"train.seed={900 + n}"], a, store_env)
            results["sweeps"].append(
                {
                    "how": "warm",
                    "store": store,
                    "jobs": 2,
                    "wall_s": took,
                    "experiments_per_min": 60 * len(NAMES) / took,
                    "complete_runs": complete_runs(uri, f"attributes.start_time >= {int(began * 1000)}"),
                }
            )
        print("training arithmetic: fit() of the four variants, one at a time", file=sys.stderr)
        results["fit_s"] = arithmetic(a, 5)
    finally:
        server.stop(work / "server")
        shutil.rmtree(work, ignore_errors=True)
    (ROOT / "bench" / "team.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\ncommit {results['commit']}, {results['cpus']} CPUs; seconds:")
    print(
        f"dvc repro in a fresh clone {results['repro_fresh_clone_s']:.1f}; dvc repro -f: tracking off "
        f"{results['repro_off_s']:.1f}, "
        f"SQLite {results['repro_sqlite_s']:.1f}, PostgreSQL server {results['repro_server_s']:.1f} (server "
        f"start {results['server_start_s']:.1f})"
    )
    print(
        f"dvc push {results['push_s']:.1f}, dvc pull in a fresh clone {results['pull_s']:.1f} "
        f"({results['remote_mb']} MiB)"
    )
    print("how    store   jobs  wall (s)  experiments/min  complete runs")
    for s in results["sweeps"]:
        print(
            f"{s.get('how', 'queue'):6} {s['store']:7} {s['jobs']:4}  {s['wall_s']:8.1f}  "
            f"{s['experiments_per_min']:15.2f}  {s['complete_runs']}/{EXPERIMENTS}"
        )
    fit = results["fit_s"]
    print(f"training arithmetic (5 epochs, one at a time): {sum(fit.values()):.1f} s for the four ({fit})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

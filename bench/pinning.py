"""What the same bits on every machine cost: the lab's train stage pinned (common/numerics.py:
SSE kernels, MKL's compatible branch, one MKL thread) beside the same stage with
CNN_DENOISE_NUMERICS=native, alternated in one run, in this clone's data/split (run `make repro`
first). Prints wall and CPU seconds of each and writes bench/pinning.json.

    python bench/pinning.py [--repeats 2]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train_once(native: bool, out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of `python stages/train.py` on the lab's split, pinned or native."""
    env = {k: v for k, v in os.environ.items() if k != "CNN_DENOISE_NUMERICS"} | {"CNN_DENOISE_TRACKING": "off"}
    if native:
        env["CNN_DENOISE_NUMERICS"] = "native"
    cmd = [sys.executable, "stages/train.py", "data/split/train.pt", "data/split/test.pt", str(out), f"{out}.csv"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "pinning.json"))
    args = parser.parse_args()
    if not (ROOT / "data" / "split" / "train.pt").exists():
        sys.exit("error: no data/split/train.pt here; run make repro first")
    runs = {"pinned": [], "native": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for mode in runs:
                wall, cpu = train_once(mode == "native", Path(tmp) / f"{mode}{i}.pt")
                runs[mode].append({"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)})
                print(f"{mode:7} wall {wall:6.1f} s  CPU {cpu:6.1f} s", file=sys.stderr)
    best = {mode: {k: min(r[k] for r in rows) for k in ("wall_s", "cpu_s")} for mode, rows in runs.items()}
    rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    result = {
        "commit": rev.stdout.strip(),
        "load_average": os.getloadavg()[0],
        "cores": os.cpu_count(),
        "stage": "train (the lab's Task 4, params.yaml as committed)",
        "runs": runs,
        "best": best,
        "wall_ratio": round(best["pinned"]["wall_s"] / best["native"]["wall_s"], 2),
        "cpu_ratio": round(best["pinned"]["cpu_s"] / best["native"]["cpu_s"], 2),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"pinned/native: {result['wall_ratio']}x the wall time, {result['cpu_ratio']}x the CPU; wrote {args.out}",
          file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()

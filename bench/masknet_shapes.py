"""Which frame, width and loss for the masking CNN: each candidate trained for the same steps, scored by ear too.

Each candidate is the speech recipe's network (recipes/speech.yaml over params.yaml) with its
frame (model.masknet.stride, filters 4 x stride), width, centred layers and loss changed, all
with the same 32 ms latency. Each trains from the filter-bank start on the first --segments
mixtures of the recipe's own training set for --epochs (Adam, cosine), one thread, the
candidates --jobs at a time in their own processes, then is scored on the recipe's test
matrix of held-out voices: mean SI-SDR change over the noisy input, PESQ-WB and DNSMOS
(OVRL, SIG, BAK), the model called directly, at the mixtures' level. Equal steps, not equal
time: the training seconds are printed beside. Writes bench/masknet_shapes.json (or --out)
and prints a table. Not a test: nothing here asserts a time or a score.

    python bench/masknet_shapes.py [--segments 3000] [--epochs 3] [--jobs 2] [--only NAME,..]
        [--data data/speech] [--out FILE]

Needs the speech recipe's data (`make recipe NAME=speech`, or its speech_* stages:
data/speech/train.pt and data/speech/matrix/).
"""

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = {  # frame/width[/loss]: (model.masknet values over the recipe's, train.loss)
    "1ms/w32/si_sdr": ({"stride": 16, "width": 32, "centred": 8}, "si_sdr"),
    "1ms/w32": ({"stride": 16, "width": 32, "centred": 8}, "si_sdr_spectral"),
    "1ms/w48": ({"stride": 16, "width": 48, "centred": 8}, "si_sdr_spectral"),
    "1ms/w64": ({"stride": 16, "width": 64, "centred": 8}, "si_sdr_spectral"),
    "2ms/w48": ({"stride": 32, "width": 48, "centred": 4}, "si_sdr_spectral"),
    "4ms/w32": ({"stride": 64, "width": 32, "centred": 2}, "si_sdr_spectral"),
    "4ms/w64": ({"stride": 64, "width": 64, "centred": 2}, "si_sdr_spectral"),
    "4ms/w128": ({"stride": 64, "width": 128, "centred": 2}, "si_sdr_spectral"),
    "8ms/w32": ({"stride": 128, "width": 32, "centred": 1}, "si_sdr_spectral"),
    "8ms/w64": ({"stride": 128, "width": 64, "centred": 1}, "si_sdr_spectral"),
}
MEASURES = ("si_sdr_gain_db", "pesq_wb", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak")


def candidate(name: str, data: str, segments: int, epochs: int) -> dict:
    """Train candidate `name` on one thread and score it on the matrix: its row of the table."""
    sys.path.insert(0, str(ROOT))
    import torch

    from bench.masknet_start import recipe_raw
    from cnn_denoise.config import params
    from cnn_denoise.lab.dataset import load_split
    from cnn_denoise.models import model as models
    from cnn_denoise.scoring import matrix, systems
    from cnn_denoise.training.fit import calibrate_gain, fit

    torch.set_num_threads(1)
    shape, loss = CANDIDATES[name]
    p = params.Params.model_validate(recipe_raw())  # recipes/speech.yaml over params.yaml
    net_params = p.model.masknet.model_copy(update={**shape, "filters": 4 * shape["stride"]})
    m = p.model.model_copy(update={"masknet": net_params})
    t = p.train.model_copy(update={"loss": loss, "epochs": epochs})
    full = load_split(Path(data) / "train.pt")
    train = {k: full[k][:segments].clone() for k in ("x", "y")}
    del full
    test = load_split(Path(data) / "test.pt")
    net = models.build(m, seed=t.seed)
    net.start_as_filterbank()
    start = time.perf_counter()
    fit(net, train, {k: test[k][:64] for k in ("x", "y")}, t, progress=False)
    seconds = time.perf_counter() - start
    net.eval()
    if loss == "si_sdr":  # as the train stage does: the scale-invariant loss leaves the level free
        calibrate_gain(net, train["x"], train["y"])
    rate, sets = matrix.load(Path(data) / "matrix")
    rows = {}
    with torch.no_grad():
        run = {name: lambda x: torch.cat([net(x[i : i + 24]) for i in range(0, len(x), 24)])}
        for set_name, (_, pairs) in sets.items():
            scored = systems.score(run, pairs["x"], pairs["y"], rate)[name]
            rows[set_name] = {k: scored[k] for k in MEASURES}
    mean = {k: round(sum(r[k] for r in rows.values()) / len(rows), 3) for k in MEASURES}
    weights = sum(w.numel() for w in net.parameters())
    return {"name": name, "masknet": shape, "loss": loss, "weights": weights, "latency_ms": 1000 * net.latency / rate,
            "train_seconds": round(seconds), **mean, "sets": rows}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=3000, help="training mixtures used (count, the first ones)")
    parser.add_argument("--epochs", type=int, default=3, help="passes over them")
    parser.add_argument("--jobs", type=int, default=2, help="candidates trained at once, a thread each")
    parser.add_argument("--only", default="", help="comma-separated candidate names (default: all)")
    parser.add_argument("--data", default=str(ROOT / "data" / "speech"), help="the speech recipe's data folder")
    parser.add_argument("--out", default=str(ROOT / "bench" / "masknet_shapes.json"), help="the JSON written")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(CANDIDATES)
    if unknown := [n for n in names if n not in CANDIDATES]:
        sys.exit(f"error: no candidate {unknown[0]!r}; pick from: {', '.join(CANDIDATES)}")
    if not (Path(args.data) / "train.pt").is_file() or not (Path(args.data) / "matrix" / "index.json").is_file():
        sys.exit(f"error: {args.data} has no train.pt and matrix/; run make recipe NAME=speech first (or --data)")
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        n = len(names)
        rows = list(pool.map(candidate, names, [args.data] * n, [args.segments] * n, [args.epochs] * n))
    print(f"{'candidate':14} {'weights':>8} {'train s':>8} {'SI-SDR':>7} {'PESQ':>5} {'OVRL':>5} {'SIG':>5} {'BAK':>5}")
    for r in rows:
        scores = f"{r['si_sdr_gain_db']:+7.2f} " + " ".join(f"{r[k]:5.2f}" for k in MEASURES[1:])
        print(f"{r['name']:14} {r['weights']:8d} {r['train_seconds']:8d} {scores}")
    result = {"rev": rev.stdout.strip(), "segments": args.segments, "epochs": args.epochs, "threads": 1}
    Path(args.out).write_text(json.dumps({**result, "jobs": args.jobs, "candidates": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the masking CNN starts (train.init) and how far it hears ahead (model.masknet.centred), side by side.

The speech recipe's network and data (recipes/speech.yaml over params.yaml, mixed by the
speech_mix stage from the workspace's corpus) trained for the same wall-clock budget from
each start, one after the other in this process, then scored on the speech test matrix:
the mean SI-SDR change over the noisy input per noise kind. Equal time, not equal steps,
because time is what a user waits for. Writes bench/masknet_start.json (or --out) and prints a table.
Not a test: nothing here asserts a time or a score.

    python bench/masknet_start.py [--seconds 240] [--segments 1000] [--variants 0,1,..] [--out FILE]

Needs `dvc repro` first (data/speech/corpus).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
STARTS = [  # (name, train.init, Adam's lr, model.masknet.centred)
    ("random filters, lr 0.001", "xavier", 0.001, 0),
    ("filter bank, lr 0.001", "filterbank", 0.001, 0),
    ("filter bank, lr 0.002", "filterbank", 0.002, 0),
    ("filter bank, lr 0.002, centred 8", "filterbank", 0.002, 8),
    ("filter bank, lr 0.002, centred 128", "filterbank", 0.002, 128),
]


def recipe_raw() -> dict:
    """The speech recipe's params (recipes/speech.yaml over params.yaml), as a dict."""
    from cnn_denoise.recipes import book

    (variant,) = book.load("speech", ROOT)
    return book.set_dotted(yaml.safe_load((ROOT / "params.yaml").read_text()), variant.overrides)


def mixed(folder: Path, segments: int) -> dict:
    """The recipe's params (training segments as given) in folder/params.yaml, and its data."""
    from cnn_denoise.config import params

    raw = recipe_raw()
    raw["speech"]["train_segments"] = segments
    (folder / "params.yaml").write_text(yaml.safe_dump(raw))
    script, corpus = str(ROOT / "stages" / "speech_mix.py"), str(ROOT / "data" / "speech" / "corpus")
    outs = [str(folder / n) for n in ("train.pt", "test.pt", "split.json")]
    for args in (["train", corpus, *outs], ["matrix", corpus, str(folder / "matrix")]):
        if subprocess.run([sys.executable, script, *args], cwd=folder).returncode:
            sys.exit("error: mixing failed; run dvc repro first (the speech stages)")
    return params.Params.model_validate(raw)


def trained(p, init: str, lr: float, data: dict, seconds: float, centred: int = 0, **shape) -> tuple:
    """The recipe's network from `init`, centred up to `centred` (and `shape`: other
    model.masknet values), Adam at `lr` on the si_sdr loss for `seconds`."""
    from cnn_denoise.models import model as cnn
    from cnn_denoise.training.losses import loss_of

    net_params = p.model.masknet.model_copy(update={"centred": centred, **shape})
    m = p.model.model_copy(update={"masknet": net_params})
    net = cnn.build(m, seed=p.train.seed)
    if init == "filterbank":
        net.start_as_filterbank()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    order = torch.Generator().manual_seed(p.train.seed)
    x, y, steps, start = data["x"], data["y"], 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for idx in torch.randperm(len(x), generator=order).split(p.train.batch_size):
            opt.zero_grad()
            loss_of(p.train.loss, net(x[idx]), y[idx]).backward()
            opt.step()
            steps += 1
            if time.perf_counter() - start >= seconds:
                break
    return net.eval(), steps


@torch.no_grad()
def scores(net, folder: Path) -> dict:
    """Mean SI-SDR change (dB) over the noisy input per matrix set."""
    from cnn_denoise.training.losses import si_sdr_db

    index = json.loads((folder / "matrix" / "index.json").read_text())
    out = {}
    for name, entry in index["sets"].items():
        s = torch.load(folder / "matrix" / entry["file"], weights_only=True)
        out[name] = round((si_sdr_db(net(s["x"]), s["y"]) - si_sdr_db(s["x"], s["y"])).mean().item(), 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=240.0, help="training budget per start (s)")
    parser.add_argument("--segments", type=int, default=1000, help="training segments mixed (count)")
    parser.add_argument("--variants", help=f"which rows of STARTS (0..{len(STARTS) - 1}, comma-separated; default all)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "masknet_start.json"), help="the JSON written")
    args = parser.parse_args()
    rows_asked = (args.variants or ",".join(map(str, range(len(STARTS))))).split(",")
    if not all(i.isdigit() and int(i) < len(STARTS) for i in rows_asked):
        parser.error(f"--variants {args.variants}: give row numbers 0..{len(STARTS) - 1}, comma-separated")
    sys.path.insert(0, str(ROOT / "src"))
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        p = mixed(folder, args.segments)
        data = torch.load(folder / "train.pt", weights_only=True)
        rows = []
        for name, init, lr, centred in (STARTS[int(i)] for i in rows_asked):
            net, steps = trained(p, init, lr, data, args.seconds, centred)
            sets = scores(net, folder)
            rows.append(
                {"start": name, "steps": steps, "mean_db": round(sum(sets.values()) / len(sets), 2), "sets": sets}
            )
            print(f"{name:36} {steps:5d} steps  mean SI-SDR change {rows[-1]['mean_db']:+.2f} dB", flush=True)
    result = {
        "rev": rev.stdout.strip(),
        "seconds_each": args.seconds,
        "segments": args.segments,
        "threads": torch.get_num_threads(),
        "starts": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

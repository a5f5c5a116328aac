"""How big the masking CNN should be: quality and live speed of a few shapes, side by side.

Each shape of the speech recipe's network (recipes/speech.yaml: width 64, 16 dilated layers)
is trained for the same wall-clock budget from the filter-bank start, one after the other in
this process, on the same mixtures (bench/masknet_start.py's mixing and training), scored on
the speech test matrix (mean SI-SDR change over the noisy input) and timed as `cnn-denoise
stream --engine onnx` runs it at 10 ms blocks on one thread (bench/realtime.py's path), so a
smaller network's speed is set against what it loses. Equal time, not equal steps: a smaller
network takes more steps in it. Writes bench/masknet_size.json and prints a table. Not a
test: nothing here asserts a time or a score. Needs `dvc repro` first (data/speech/corpus).

    python bench/masknet_size.py [--seconds 180] [--segments 1000] [--out FILE]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {  # name: model.masknet values over the recipe's
    "recipe: width 64, 16 layers": {},
    "width 48, 16 layers": {"width": 48},
    "width 64, 12 layers": {"dilations": [1, 2, 4, 8, 16, 32, 1, 2, 4, 8, 16, 32]},
    "width 32, 16 layers": {"width": 32},
}


def stream_rtf(net, audio_rms: float, folder: Path, seconds: float = 8.0) -> float:
    """Real-time factor of `net` through stream's path on onnxruntime, one thread, 10 ms blocks, 16 kHz mono."""
    from bench.realtime import audio, best_of, stream_once  # main() put ROOT on sys.path
    from cnn_denoise.enhance.backend import OnnxDenoiser
    from cnn_denoise.enhance.denoiser import Denoiser
    from cnn_denoise.enhance.engine import OnnxEngine
    from cnn_denoise.models import checkpoint as ckpt
    from cnn_denoise.models.export import export

    path = folder / "net.pt"
    ckpt.save(net, path, {"sample_rate": 16000, "input_rms": audio_rms})
    export(Denoiser.load(str(path)), folder / "net.onnx")
    onnx = OnnxDenoiser(OnnxEngine(str(folder / "net.onnx"), 1), str(folder / "net.onnx"))
    x = audio(16000, 1, seconds)
    return best_of(2, lambda: stream_once(onnx, x, 16000)) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180.0, help="training budget per shape (s)")
    parser.add_argument("--segments", type=int, default=1000, help="training segments mixed (count)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "masknet_size.json"), help="the JSON written")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from bench.masknet_start import mixed, scores, trained

    torch.set_num_threads(1)  # what one core does; the speed column is one thread too
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        p = mixed(folder, args.segments)
        data = torch.load(folder / "train.pt", weights_only=True)
        rms = float(data["x"].square().mean().sqrt())
        for name, shape in SHAPES.items():
            start = time.perf_counter()
            net, steps = trained(p, "filterbank", p.train.lr, data, args.seconds, p.model.masknet.centred, **shape)
            sets = scores(net, folder)
            rtf = stream_rtf(net, rms, folder)
            row = {
                "shape": name,
                "masknet": shape,
                "weights": sum(t.numel() for t in net.parameters()),
                "steps": steps,
                "mean_db": round(sum(sets.values()) / len(sets), 2),
                "stream_rtf": round(rtf, 4),
                "sets": sets,
            }
            rows.append(row)
            print(
                f"{name:30} {row['weights']:7d} weights {steps:5d} steps  mean SI-SDR change {row['mean_db']:+.2f} dB"
                f"  stream RTF {rtf:.4f}  ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    result = {
        "rev": rev.stdout.strip(),
        "seconds_each": args.seconds,
        "segments": args.segments,
        "threads": 1,
        "shapes": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

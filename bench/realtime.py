"""Real-time factors of the CNN beside the peers, on the same audio in one run (issue 37).

For each thread count (one, and all cores), on a few seconds of speech-like noisy audio at
16 kHz mono and 48 kHz stereo:

    cnn enhance   Denoiser over the whole array (enhance's path), on PyTorch and onnxruntime
    cnn stream    live.run at 10 ms blocks through in-memory pipes (stream's path), both engines
    peers         RNNoise, DTLN, DeepFilterNet3 through cnn_denoise.peers.run (resampling included)

`stream` runs one thread unless told (--threads), and is timed so: 10 ms blocks hold too little
arithmetic to share, and on two busy cores PyTorch's thread pool made them 88 times slower than
real time. Each figure is the best of --repeats runs (seconds of compute per second of audio: below 1
is faster than real time). Prints a table and writes bench/realtime.json.

    python bench/realtime.py [--model MODEL] [--seconds 8] [--repeats 2]   (make bench-realtime)

The default model is what `enhance` takes; where none exists yet (no trained speech model on
this clone) an untrained MaskNet of recipes/speech.yaml's shape stands in: the arithmetic,
and so the speed, is the same whatever the weights, and the JSON says which it was.
"""

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def audio(rate: int, channels: int, seconds: float) -> np.ndarray:
    """Speech-like noisy audio (peers.align's formant syllables in white noise at 5 dB), (channels, n)."""
    from cnn_denoise.peers.align import noisy, speechlike

    return np.stack([noisy(speechlike(rate, seconds, seed=c), 5.0, seed=10 + c) for c in range(channels)]) * 0.3


def recipe_shaped(path: Path) -> str:
    """A checkpoint of an untrained MaskNet shaped as recipes/speech.yaml trains it."""
    from cnn_denoise.models import checkpoint as ckpt
    from cnn_denoise.models.masknet import MaskNet

    base = yaml.safe_load((ROOT / "params.yaml").read_text())["model"]
    overrides = yaml.safe_load((ROOT / "recipes" / "speech.yaml").read_text())["params"]
    net, scale = dict(base["masknet"]), base["input_scale"]
    for key, value in overrides.items():
        if key.startswith("model.masknet."):
            net[key.removeprefix("model.masknet.")] = value
        elif key == "model.input_scale":
            scale = value
    model = MaskNet(**net, input_scale=scale)
    model.start_as_filterbank()
    ckpt.save(model, path, {"sample_rate": 16000, "input_rms": 0.05})
    return str(path)


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def stream_once(denoiser, x: np.ndarray, rate: int) -> None:
    from cnn_denoise.enhance import live, pipes

    raw = pipes.Format(rate, x.shape[0], "f32le")
    fin, fout = io.BytesIO(x.T.astype("<f4").tobytes()), io.BytesIO()
    live.run(denoiser, fin, fout, raw, 10.0, True, -25.0, lambda line: None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a checkpoint or MLflow URI (default: what enhance takes)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "realtime.json"))
    args = parser.parse_args()
    import torch

    from cnn_denoise import peers
    from cnn_denoise.common.errors import PipelineError
    from cnn_denoise.enhance.backend import OnnxDenoiser
    from cnn_denoise.enhance.denoiser import Denoiser
    from cnn_denoise.enhance.engine import OnnxEngine
    from cnn_denoise.enhance.which import default_model
    from cnn_denoise.models.export import export

    tmp = Path(tempfile.mkdtemp(prefix="realtime-"))
    model = args.model or default_model()
    try:
        torch_denoiser = Denoiser.load(model)
    except PipelineError as exc:
        if args.model:
            raise
        print(f"{model}: {exc}; timing an untrained model of recipes/speech.yaml's shape", file=sys.stderr)
        model = recipe_shaped(tmp / "speech-shaped.pt")
        torch_denoiser = Denoiser.load(model)
    onnx_path = tmp / "model.onnx"
    export(torch_denoiser, onnx_path)
    files = {"16k mono": (16000, audio(16000, 1, args.seconds)), "48k stereo": (48000, audio(48000, 2, args.seconds))}
    cores = os.cpu_count() or 1
    rows = []
    for threads in sorted({1, cores}):
        torch.set_num_threads(threads)
        onnx_denoiser = OnnxDenoiser(OnnxEngine(str(onnx_path), threads), str(onnx_path))
        systems = {
            "cnn enhance (PyTorch)": lambda x, r: torch_denoiser(x.T, r),
            "cnn enhance (onnxruntime)": lambda x, r, d=onnx_denoiser: d(x.T, r),
        }
        if threads == 1:  # stream's default; see the module docstring for why not all cores
            systems["cnn stream 10 ms (PyTorch)"] = lambda x, r: stream_once(torch_denoiser, x, r)
            systems["cnn stream 10 ms (onnxruntime)"] = lambda x, r, d=onnx_denoiser: stream_once(d, x, r)
        for name, why in peers.available().items():
            if why is None:
                systems[name] = lambda x, r, n=name, t=threads: peers.run(n, x.astype(np.float32), r, threads=t)
            else:
                print(f"{name}: not timed ({why})", file=sys.stderr)
        for system, run in systems.items():
            for label, (rate, x) in files.items():
                took = best_of(args.repeats, lambda run=run, x=x, rate=rate: run(x, rate))
                rows.append({"system": system, "audio": label, "threads": threads, "rtf": took / args.seconds})
                print(f"{system:32} {label:11} {threads} thread(s)  RTF {took / args.seconds:.4f}", file=sys.stderr)
    table(rows)
    import subprocess

    rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    result = {
        "commit": rev.stdout.strip(),
        "load_average": os.getloadavg()[0],
        "model": "untrained MaskNet, recipes/speech.yaml's shape"
        if "speech-shaped" in model and not args.model
        else (
            Path(model).resolve().relative_to(ROOT).as_posix() if Path(model).resolve().is_relative_to(ROOT) else model
        ),
        "delay_ms": 1000 * torch_denoiser.block_engine().latency / torch_denoiser.sample_rate,
        "seconds_per_file": args.seconds,
        "repeats": args.repeats,
        "cores": cores,
        "machine": os.uname().machine,
        "torch": torch.__version__,
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


def table(rows: list[dict]) -> None:
    """System by (audio, threads): real-time factors, the fastest peer's per column beside."""
    columns = sorted({(r["audio"], r["threads"]) for r in rows}, key=lambda c: (c[1], c[0]))
    print("| system | " + " | ".join(f"{a}, {t} thread{'s' if t > 1 else ''}" for a, t in columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    for system in dict.fromkeys(r["system"] for r in rows):
        cells = {(r["audio"], r["threads"]): r["rtf"] for r in rows if r["system"] == system}
        print(f"| {system} | " + " | ".join(f"{cells[c]:.3f}" if c in cells else "-" for c in columns) + " |")


if __name__ == "__main__":
    main()

"""Peak memory of `cnn-denoise enhance` on a long 48 kHz stereo file, and how denoiser.BLOCK,
BUDGET and MODEL_FLOATS move it: the numbers behind those constants (the enhance issue asked
for under 500 MiB for ten minutes; tests/test_enhance.py's slow test holds it).

Each run is its own process (`cnn-denoise enhance`'s main(), with the constants set first) whose
peak RSS is its VmHWM read at exit; the model is the lab's kind (a [31, 1]-tap CNN at 32 kHz,
as the test's: the file is resampled 48 -> 32 -> 48 kHz) or the speech recipe's masknet.

    python bench/enhance_memory.py [--seconds 600] [--model lab|masknet] [--set BUDGET=22 ...]   (2^22)

Writes bench/enhance_memory.json (--out names another file) and prints one line per run.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = """
import atexit, sys
atexit.register(lambda: print('VmHWM', open('/proc/self/status').read().split('VmHWM:')[1].split()[0], file=sys.stderr))
from cnn_denoise.enhance import denoiser
for kv in sys.argv[1].split(',') if sys.argv[1] else []:
    k, v = kv.split('=')
    setattr(denoiser, k, 1 << int(v))
from cnn_denoise.cli import main
main(sys.argv[2:])
"""


def long_file(path: Path, seconds: int) -> None:
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", 48000, 2, "PCM_16") as f:
        for a in range(0, seconds, 10):
            f.write(rng.standard_normal((48000 * min(10, seconds - a), 2)) * 0.05)


def make_model(path: Path, kind: str) -> None:
    """The lab's kind of model (a [31, 1]-tap CNN at 32 kHz, as the test's) or the speech
    recipe's masknet at 16 kHz (what enhance takes by default), untrained: memory is the same."""
    import torch

    from cnn_denoise.lab.cnn import MIMOCNN
    from cnn_denoise.models import checkpoint
    from cnn_denoise.models.masknet import MaskNet

    torch.manual_seed(0)
    if kind == "lab":
        model, rate = MIMOCNN([31, 1], [1, 3, 1], "linear", input_scale=1000.0), 32000
    else:
        model, rate = MaskNet(16, 64, 64, 3, [1, 2, 4, 8, 16, 32, 64, 128] * 2, 30.0, centred=8), 16000
    checkpoint.save(model, path, {"sample_rate": rate, "input_rms": 0.05})


def run(src: Path, model: Path, out: Path, settings: str) -> dict:
    argv = [sys.executable, "-c", RUN, settings, "enhance", str(src), "-o", str(out), "-m", str(model)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    text, _, peak = proc.stderr.rpartition("VmHWM")
    if proc.returncode != 0:
        raise SystemExit(text)
    line = next((x for x in text.splitlines() if "real-time" in x), "")
    return {"set": settings or "as committed", "peak_mib": round(int(peak.split()[0]) / 1024), "enhance": line}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--model", choices=["lab", "masknet"], default="lab")
    parser.add_argument("--set", action="append", default=[], help="NAME=LOG2[,NAME=LOG2...]: one run each")
    parser.add_argument("--out", default=str(ROOT / "bench" / "enhance_memory.json"))
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        src, model = Path(tmp) / "long.wav", Path(tmp) / "model.pt"
        long_file(src, args.seconds)
        make_model(model, args.model)
        for i, settings in enumerate(["", *args.set]):
            results.append(run(src, model, Path(tmp) / f"out{i}", settings))
            print(f"{results[-1]['set']}: peak RSS {results[-1]['peak_mib']} MiB; {results[-1]['enhance']}")
    Path(args.out).write_text(
        json.dumps({"seconds": args.seconds, "model": args.model, "runs": results}, indent=1) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""make demo: a recording to listen to, denoised by `cnn-denoise enhance`, measured before and after.

Makes speech-like audio and band noise as the default data does (src/cnn_denoise/lab/synth.py),
at 48 kHz, stereo, 16-bit, at a normal listening level (not the course's 1e-3), so that the
command's rate, channel and level policies all take part; writes demo/noisy.wav and
demo/clean.wav, runs `cnn-denoise enhance` into demo/enhanced/, and prints SNR and SI-SDR of
the noisy and the enhanced file against the clean one.

    python -m cnn_denoise.views.demo [-m MODEL] [--seconds 5]
"""

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.signal

RATE = 48000
PEAK = 0.5  # of full scale


def make(folder: Path, seconds: float, seed: int = 0) -> tuple[Path, Path]:
    import soundfile as sf

    from cnn_denoise.lab import synth

    rng = np.random.default_rng(seed)
    n = int(synth.SAMPLE_RATE * seconds)
    clean = np.stack([synth.clean_speech(rng, n) for _ in range(2)], -1)  # two voices, one per channel
    noisy = 0.5 * clean + np.stack([synth.band_noise(rng, n) for _ in range(2)], -1)
    g = PEAK / np.abs(noisy).max()
    up, down = 3, 2  # 32 kHz -> 48 kHz
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "noisy.wav", folder / "clean.wav"
    for path, signal in zip(paths, (noisy, clean), strict=True):
        sf.write(path, scipy.signal.resample_poly(signal * g, up, down, axis=0), RATE, subtype="PCM_16")
    return paths


def measures(out: np.ndarray, clean: np.ndarray) -> dict:
    import torch

    from cnn_denoise.scoring import quality

    p, t = torch.from_numpy(out.T), torch.from_numpy(clean.T)
    return {"SNR (dB)": quality.snr_db(p, t), "SI-SDR (dB)": quality.si_sdr_db(p, t)}


def main(argv=None) -> int:
    import soundfile as sf

    parser = argparse.ArgumentParser(
        prog="python -m cnn_denoise.views.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-m", "--model", default="models/model.pt", help="as for cnn-denoise enhance (default: %(default)s)"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the recording (default: %(default)s)")
    parser.add_argument("--out", default="demo", help="folder for the WAVs (default: %(default)s)")
    args = parser.parse_args(argv)
    noisy, clean = make(Path(args.out), args.seconds)
    enhanced = Path(args.out) / "enhanced"
    cmd = ["cnn-denoise", "enhance", str(noisy), "-o", str(enhanced), "-m", args.model]
    print("+ " + " ".join(cmd), file=sys.stderr)
    if subprocess.run(cmd).returncode:
        return 1
    ref, _ = sf.read(clean)
    # the models learnt y from x = 0.5 y + n: against the clean speech, the noisy file is x / 0.5
    rows = {
        "noisy (x 2)": measures(2 * sf.read(noisy)[0], ref),
        "enhanced": measures(sf.read(enhanced / noisy.name)[0], ref),
    }
    print(f"\n{'':14}" + "".join(f"{k:>14}" for k in next(iter(rows.values()))))
    for name, m in rows.items():
        print(f"{name:14}" + "".join(f"{v:14.2f}" for v in m.values()))
    print(f"\nlisten: {noisy}, {enhanced / noisy.name}, {clean}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""cnn-denoise: the project's command line.

cnn-denoise enhance INPUT... -o OUT_DIR [-m MODEL]    denoise WAV files
cnn-denoise promote NAME [--alias best]              models:/cnn-denoise@best -> that run's model
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .errors import PipelineError, run_stage

WAV_FORMATS = ("WAV", "WAVEX", "RF64")  # what soundfile calls the RIFF WAV family
POLICIES = """policies:
  rate      resampled to the model's rate (its checkpoint records it) with SciPy's polyphase
            resampler, denoised, resampled back: the output has the input's rate
  channels  each channel is denoised on its own; the output has the input's channels
  level     the recording is scaled to the training inputs' RMS and the output scaled back;
            the models learnt y from x = 0.5 y + n, so speech comes out about twice as loud
  clipping  never wrapped around: an output past full scale is scaled down as a whole (said)
  format    the output has the input's length and sample format (16/24/32-bit PCM, float...);
            inputs are never overwritten; long files stream in blocks with bounded memory
"""


def wav_files(inputs: list[str]) -> list[Path]:
    """The WAV files named, and those directly inside the folders named."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
            if not found:
                raise PipelineError(f"{item} holds no .wav file; give WAV files or folders of them")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise PipelineError(f"{item}: no such file or folder")
    names = [p.name for p in files]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise PipelineError(
            f"two inputs are named {twice[0]}; their outputs would collide in one folder: enhance them separately"
        )
    return files


def _info(path: Path):
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile's own error type for anything it cannot parse
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(": ")[-1][:160]
        raise PipelineError(f"{path} is not a readable WAV file ({reason}); give a .wav file") from None
    if info.format not in WAV_FORMATS:
        raise PipelineError(
            f"{path} is a {info.format} file, not a WAV; convert it to WAV first (e.g. sox in.flac out.wav)"
        )
    if info.frames == 0:
        raise PipelineError(f"{path} holds no samples; give a recording")
    return info


def enhance_file(denoiser, src: Path, dst: Path) -> dict:
    """Denoise one WAV file into dst (same rate, channels, length and sample format), in
    blocks; returns {"seconds": audio length, "scaled": the factor applied to avoid clipping}."""
    import soundfile as sf

    from .atomic import atomic_path
    from .enhance import BLOCK, FULL_SCALE

    info = _info(src)
    with sf.SoundFile(str(src)) as f, tempfile.TemporaryDirectory() as tmp:

        def read(lo, hi):
            f.seek(lo)
            return f.read(hi - lo, dtype="float64", always_2d=True).T

        square = 0.0
        for a in range(0, info.frames, BLOCK):
            block = read(a, min(a + BLOCK, info.frames))
            if not np.isfinite(block).all():
                raise PipelineError(f"{src} holds NaN or infinite samples; clean it first")
            square += float(np.square(block).sum())
        gain = denoiser.gain((square / (info.frames * info.channels)) ** 0.5)
        raw, peak = Path(tmp) / "out.f64", 0.0
        with open(raw, "wb") as out:
            for block in denoiser.blocks(read, info.frames, info.samplerate, gain):
                peak = max(peak, float(np.abs(block).max(initial=0.0)))
                np.ascontiguousarray(block.T).tofile(out)
        scale = FULL_SCALE / peak if peak > 1.0 else 1.0
        with (
            atomic_path(dst) as tmp_out,
            sf.SoundFile(str(tmp_out), "w", info.samplerate, info.channels, info.subtype, format=info.format) as w,
        ):
            for a in range(0, info.frames, BLOCK):
                n = min(BLOCK, info.frames - a)
                w.write(
                    np.fromfile(raw, dtype=np.float64, count=n * info.channels, offset=a * info.channels * 8).reshape(
                        n, info.channels
                    )
                    * scale
                )
    return {"seconds": info.frames / info.samplerate, "scaled": scale}


def enhance(argv) -> int:
    parser = argparse.ArgumentParser(
        prog="cnn-denoise enhance",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Denoise WAV recordings with a trained model.",
        epilog=POLICIES,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="WAV files, or folders of them")
    parser.add_argument(
        "-o", "--out", required=True, metavar="OUT_DIR", help="folder for the outputs (same file names)"
    )
    parser.add_argument(
        "-m",
        "--model",
        default="models/model.pt",
        help="a checkpoint of the train stage, or an MLflow URI: runs:/<run id>, models:/<name>@<alias> "
        "(default: %(default)s)",
    )
    args = parser.parse_args(argv)
    from tqdm import tqdm

    from .enhance import Denoiser

    files = wav_files(args.inputs)
    for src in files:
        _info(src)  # every input readable before any work
    out_dir = Path(args.out)
    for src in files:
        if (out_dir / src.name).resolve() == src.resolve():
            raise PipelineError(
                f"{out_dir / src.name} is the input itself; give another -o folder (inputs are never overwritten)"
            )
    denoiser = Denoiser.load(args.model)
    start, audio = time.perf_counter(), 0.0
    for src in tqdm(files, desc="enhance", unit="file", file=sys.stderr, disable=None):
        done = enhance_file(denoiser, src, out_dir / src.name)
        audio += done["seconds"]
        if done["scaled"] != 1.0:
            print(
                f"note: {src.name}: the output would have passed full scale; scaled by {done['scaled']:.3g} as a whole",
                file=sys.stderr,
            )
    took = time.perf_counter() - start
    print(
        f"enhanced {len(files)} file(s) into {out_dir}: {audio:.1f} s of audio in {took:.1f} s "
        f"(real-time factor {took / audio:.3f})",
        file=sys.stderr,
    )
    return 0


def promote(argv) -> int:
    parser = argparse.ArgumentParser(
        prog="cnn-denoise promote", description="Point a registered-model alias at a run's model."
    )
    parser.add_argument("name", help="the run: a DVC experiment's name (dvc exp show) or an MLflow run name")
    parser.add_argument("--alias", default="best", help="the alias to set (default: %(default)s)")
    args = parser.parse_args(argv)
    from . import tracking

    version = tracking.promote(args.name, args.alias)
    print(
        f"models:/{tracking.REGISTERED_MODEL}@{args.alias} is now version {version} (run {args.name}); "
        f"cnn-denoise enhance -m models:/{tracking.REGISTERED_MODEL}@{args.alias} uses it",
        file=sys.stderr,
    )
    return 0


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"enhance": enhance, "promote": promote}
    if not argv or argv[0] not in commands:
        print(
            "usage: cnn-denoise enhance INPUT... -o OUT_DIR [-m MODEL] | cnn-denoise promote NAME [--alias best]",
            file=sys.stderr,
        )
        sys.exit(2)
    run_stage(lambda: commands[argv[0]](argv[1:]))

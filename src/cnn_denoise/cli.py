"""cnn-denoise: the project's command line.

cnn-denoise enhance INPUT... -o OUT_DIR [-m MODEL]    denoise WAV files
cnn-denoise promote NAME [--alias best]              models:/cnn-denoise@best -> that run's model
"""

import argparse
import re
import sys
import time
from pathlib import Path

from cnn_denoise.common.errors import PipelineError, printable, run_stage
from cnn_denoise.enhance import policy
from cnn_denoise.enhance.files import TEMP_TAG, audio_info, enhance_file, identity, refuse_inputs_as_outputs, wav_files
from cnn_denoise.enhance.score import score_line
from cnn_denoise.enhance.which import default_model, heard, verdict


def enhance(argv) -> int:
    parser = argparse.ArgumentParser(
        prog="cnn-denoise enhance",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Denoise WAV recordings with a trained model.",
        epilog=policy.help_text(),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="WAV files, or folders of them")
    parser.add_argument(
        "-o", "--out", required=True, metavar="OUT_DIR", help="folder for the outputs (same file names)"
    )
    parser.add_argument(
        "-m",
        "--model",
        help="a checkpoint of the train stage, or an MLflow URI: runs:/<run id>, models:/<name>@<alias> "
        "(default: models:/cnn-denoise@speech, else @best, when registered; else models/model.pt)",
    )
    parser.add_argument(
        "--score", action="store_true", help="print DNSMOS (SIG, BAK, OVRL; no clean reference) before and after"
    )
    args = parser.parse_args(argv)
    from tqdm import tqdm

    from cnn_denoise.common.atomic import clean_abandoned
    from cnn_denoise.enhance.denoiser import Denoiser

    files = wav_files(args.inputs)
    infos = [audio_info(src) for src in files]  # every input readable before any work
    out_dir = Path(args.out)
    refuse_inputs_as_outputs(files, out_dir)
    model = args.model or default_model()
    denoiser = Denoiser.load(model)
    if line := verdict(model, denoiser.audio):
        print(printable(line), file=sys.stderr)
    for src, info in zip(files, infos, strict=True):
        policy.ratio(info.samplerate, denoiser.sample_rate, str(src))  # every rate workable before any work
    clean_abandoned(out_dir, TEMP_TAG, keep={identity(src) for src in files})
    start, audio = time.perf_counter(), 0.0
    for src, info in tqdm(
        list(zip(files, infos, strict=True)), desc="enhance", unit="file", file=sys.stderr, disable=None
    ):
        done = enhance_file(denoiser, src, out_dir / src.name)
        audio += done["seconds"]
        if args.score:
            tqdm.write(score_line(src, out_dir / src.name), file=sys.stderr)
        if done["scaled"] != 1.0:
            print(f"note: {policy.clipping_note(src.name, done['scaled'])}", file=sys.stderr)
        if done["subtype"] != info.subtype:
            print(
                f"note: {src.name}: written as {done['subtype']} WAV (libsndfile cannot write its {info.subtype})",
                file=sys.stderr,
            )
    took = time.perf_counter() - start
    print(
        f"enhanced {len(files)} file(s) into {out_dir}: {audio:.1f} s of audio in {took:.1f} s "
        f"(real-time factor {took / audio:.3f})",
        file=sys.stderr,
    )
    return 0


def info(argv) -> int:
    parser = argparse.ArgumentParser(prog="cnn-denoise info", description="What a model is and what it heard.")
    parser.add_argument("model", nargs="?", help="a checkpoint or an MLflow URI (default: what enhance would use)")
    args = parser.parse_args(argv)
    from cnn_denoise.enhance.denoiser import Denoiser

    model = args.model or default_model()
    d = Denoiser.load(model)
    spec_ = d.model.spec() if hasattr(d.model, "spec") else {"taps": d.model.taps, "features": d.model.features}
    about = d.audio.get("trained_on") or {}
    lines = [
        f"model        {model}",
        f"network      {', '.join(f'{k} {v}' for k, v in spec_.items())}",
        f"trained on   {heard(d.audio)}",
        f"rate, level  {d.sample_rate} Hz, input RMS {d.input_rms:.3g}"
        + (f" (levels {about['level_db']} dBFS)" if about.get("level_db") else ""),
    ]
    if "test_si_sdr_db" in d.audio:
        lines.append(
            f"own test set SI-SDR {d.audio['test_si_sdr_db']:.2f} dB (noisy input {d.audio['noisy_si_sdr_db']:.2f} dB)"
        )
    from cnn_denoise.models import shipped

    if shipped.available() and Path(model).resolve() == shipped.WEIGHTS.resolve():
        lines += shipped.lines(shipped.card())
    lines.append(verdict(model, d.audio) or "")
    for line in filter(None, lines):
        print(printable(line))  # a checkpoint's text is anyone's: no escape sequence reaches the terminal
    return 0


# A run or experiment name as promote accepts it: what `dvc exp show` and MLflow print, less
# the quotes and backslashes that MLflow's search filter (a quoted string) cannot carry.
RUN_NAME = re.compile(r"[^'\"\\\x00-\x1f\x7f]{1,250}")
ALIAS = re.compile(r"[\w-]{1,255}")  # MLflow's rule, less its reserved latest and v<number>


def promote(argv) -> int:
    parser = argparse.ArgumentParser(
        prog="cnn-denoise promote", description="Point a registered-model alias at a run's model."
    )
    parser.add_argument("name", help="the run: a DVC experiment's name (dvc exp show) or an MLflow run name")
    parser.add_argument("--alias", default="best", help="the alias to set (default: %(default)s)")
    args = parser.parse_args(argv)
    if not RUN_NAME.fullmatch(args.name):
        raise PipelineError(
            f"run name {args.name!r} holds a quote, a backslash or a control character, which MLflow's search "
            "cannot match; give the name as dvc exp show lists it, or rename the experiment"
        )
    if not ALIAS.fullmatch(args.alias) or args.alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", args.alias):
        raise PipelineError(
            f"alias {args.alias!r} is not one MLflow accepts; use letters, digits, _ and - (not latest or v<number>)"
        )
    from cnn_denoise import tracking

    version = tracking.promote(args.name, args.alias)
    print(
        f"models:/{tracking.REGISTERED_MODEL}@{args.alias} is now version {version} (run {args.name}); "
        f"cnn-denoise enhance -m models:/{tracking.REGISTERED_MODEL}@{args.alias} uses it",
        file=sys.stderr,
    )
    return 0


# What a person is told after Ctrl-C and when memory runs out, by command (the stages' words
# name dvc repro and training knobs, which mean nothing here).
HINTS = {
    "enhance": {
        "interrupted": "no output was left half-written (a run killed outright leaves a hidden temp file the next "
        "run removes); run it again",
        "out_of_memory": "enhance holds a few blocks of a recording whatever its size, so the machine is short of "
        "memory; close other programs and run it again",
    },
    "info": {"interrupted": "nothing was changed", "out_of_memory": "close other programs and run it again"},
    "promote": {
        "interrupted": "the alias may not be set; run it again",
        "out_of_memory": "close other programs and run it again",
    },
}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"enhance": enhance, "promote": promote, "info": info}
    if not argv or argv[0] not in commands:
        print(
            "usage: cnn-denoise enhance INPUT... -o OUT_DIR [-m MODEL] [--score] | cnn-denoise info [MODEL] | "
            "cnn-denoise promote NAME [--alias best]",
            file=sys.stderr,
        )
        sys.exit(2)
    run_stage(lambda: commands[argv[0]](argv[1:]), **HINTS[argv[0]])

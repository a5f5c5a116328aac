"""cnn-denoise: the project's command line. It parses arguments and calls the library; COMMANDS
is the table `cnn-denoise --help` prints, one line per command (a new command is a row there).
"""

import argparse
import re
import sys
from pathlib import Path

from cnn_denoise.common.errors import PipelineError, printable, run_stage
from cnn_denoise.enhance import policy
from cnn_denoise.enhance.which import default_model, heard, verdict


def enhance(argv) -> int:
    parser = argparse.ArgumentParser(
        prog="cnn-denoise enhance",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Denoise recordings with a trained model: WAVs come back in their own format, what PyAV "
        "decodes (MP3, FLAC, AAC, Opus...) as WAVs; a file that cannot be read is named at the end (exit status 1) "
        "after the others are done.",
        epilog=policy.help_text(),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="recordings, or folders of them")
    parser.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="OUT_DIR",
        help="folder for the outputs (same names; <stem>.wav for what is not a WAV)",
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
    from cnn_denoise.enhance.batch import enhance as enhance_all

    return enhance_all(args.inputs, Path(args.out), args.model, args.score)


def info(argv) -> int:
    parser = argparse.ArgumentParser(prog="cnn-denoise info", description="What a model is and what it heard.")
    parser.add_argument("model", nargs="?", help="a checkpoint or an MLflow URI (default: what enhance would use)")
    args = parser.parse_args(argv)
    from cnn_denoise.enhance.denoiser import Denoiser

    model = args.model or default_model()
    d = Denoiser.load(model)
    spec_ = d.model.spec() if hasattr(d.model, "spec") else {"taps": d.model.taps, "features": d.model.features}
    about = d.audio.get("trained_on") or {}
    voices = about.get("voices")  # a split by voice: what its own test set and the matrix speak
    lines = [
        f"model        {model}",
        f"network      {', '.join(f'{k} {v}' for k, v in spec_.items())}",
        f"trained on   {heard(d.audio)}",
        *([f"voices       {len(voices['train'])} trained on; held out: {', '.join(voices['test'])}"] if voices else []),
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
    parser.add_argument("name", help="the run: a DVC experiment's name (make exps lists them) or an MLflow run name")
    parser.add_argument("--alias", default="best", help="the alias to set (default: %(default)s)")
    args = parser.parse_args(argv)
    if not RUN_NAME.fullmatch(args.name):
        raise PipelineError(
            f"run name {args.name!r} holds a quote, a backslash or a control character, which MLflow's search "
            "cannot match; give the name as make exps lists it, or rename the experiment"
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


# Every command: its name, the one line `cnn-denoise --help` gives it, and its function.
COMMANDS = {
    "enhance": ("denoise recordings (WAV, FLAC, MP3...) into a folder, optionally scored with DNSMOS", enhance),
    "info": ("what a model is, what it was trained on, and its SI-SDR on its own test set", info),
    "promote": ("point models:/cnn-denoise@ALIAS (default best) at a run's model", promote),
}
GENERIC_HINTS = {"interrupted": "run it again", "out_of_memory": "close other programs and run it again"}


def overview() -> str:
    """What `cnn-denoise` and `cnn-denoise --help` print: the commands, one line each."""
    width = max(map(len, COMMANDS))
    lines = ["usage: cnn-denoise COMMAND [ARGUMENTS]   (cnn-denoise COMMAND --help: its arguments)", "", "commands:"]
    lines += [f"  {name:{width}}  {about}" for name, (about, _) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(overview())
        sys.exit(0)
    if not argv:
        print(overview(), file=sys.stderr)
        sys.exit(2)
    if argv[0] not in COMMANDS:
        print(f"error: no command {argv[0]!r}; cnn-denoise --help lists them ({', '.join(COMMANDS)})", file=sys.stderr)
        sys.exit(2)
    command = COMMANDS[argv[0]][1]
    run_stage(lambda: command(argv[1:]), **HINTS.get(argv[0], GENERIC_HINTS))

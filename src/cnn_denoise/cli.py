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
    _engine_options(parser)
    args = parser.parse_args(argv)
    from cnn_denoise.enhance.batch import enhance as enhance_all

    _export_note(args.model or default_model(), args.engine)
    return enhance_all(args.inputs, Path(args.out), args.model, args.score, args.engine, args.threads)


MODEL_HELP = (
    "a checkpoint of the train stage, or an MLflow URI: runs:/<run id>, models:/<name>@<alias> "
    "(default: models:/cnn-denoise@speech, else @best, when registered; else models/model.pt)"
)


def _engine_options(parser, threads: str = "its own, all cores") -> None:
    parser.add_argument(
        "--engine",
        choices=("torch", "onnx"),
        default="torch",
        help="what runs the model: torch (PyTorch) or onnx (onnxruntime; a checkpoint is exported first); -m "
        "FILE.onnx of cnn-denoise export always runs on onnxruntime, without PyTorch (default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, help=f"threads the engine may use (default: {threads})")


def _export_note(model: str, engine: str) -> None:
    if engine == "onnx" and not str(model).endswith(".onnx"):
        print(
            f"note: exporting {model} to ONNX first (a minute); cnn-denoise export -o model.onnx once, then "
            "-m model.onnx, saves it",
            file=sys.stderr,
        )


def stream(argv) -> int:
    from cnn_denoise.enhance import live, pipes

    parser = argparse.ArgumentParser(
        prog="cnn-denoise stream",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Denoise audio from a pipe as it arrives, flushing every block: a WAV stream (or raw PCM with "
        "--rate, --channels, --format) in, the same format out.",
        epilog="examples:\n"
        "  sox -n -r 16000 -c 1 -b 16 -t wav - synth 5 pinknoise | cnn-denoise stream - -o - > out.wav\n"
        "  arecord -f S16_LE -r 16000 -c 1 -t raw | cnn-denoise stream - --rate 16000 --channels 1 --format s16le "
        "| aplay -f S16_LE -r 16000 -c 1 -t raw\n\n" + live.help_text(),
    )
    parser.add_argument("input", nargs="?", default="-", help="a WAV (or raw) file, or - for standard input (default)")
    parser.add_argument("-o", "--out", default="-", help="the output file, or - for standard output (default)")
    parser.add_argument("-m", "--model", help=MODEL_HELP)
    parser.add_argument("--block-ms", type=float, default=10.0, help="ms of audio per block (default: %(default)s)")
    parser.add_argument("--align", action="store_true", help="compensate the model's delay (see delay below)")
    parser.add_argument("--level", type=float, metavar="DBFS", help="the input's RMS in dBFS, fixed (default: auto)")
    parser.add_argument("--rate", type=int, help="raw PCM input: samples per second")
    parser.add_argument("--channels", type=int, help="raw PCM input: channels")
    parser.add_argument("--format", choices=tuple(pipes.FORMATS), help="raw PCM input: sample format")
    _engine_options(parser, "1: a block's arithmetic is too small to share, and a busy core would delay it")
    args = parser.parse_args(argv)
    raw = live.check_options(args.rate, args.channels, args.format, args.block_ms)
    from cnn_denoise.enhance import backend

    model = args.model or default_model()
    _export_note(model, args.engine)
    denoiser = backend.load(model, args.engine, args.threads or 1)
    fin = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")  # noqa: SIM115 (closed at exit)
    fout = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")  # noqa: SIM115
    note = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        done, took = live.timed_run(denoiser, fin, fout, raw, args.block_ms, args.align, args.level, note)
    except BrokenPipeError:  # the reader went away (| head, a closed player): the end, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second complaint at exit
        return 0
    note(live.summary(done, took))
    return 0


def export(argv) -> int:
    parser = argparse.ArgumentParser(
        prog="cnn-denoise export",
        description="Write a model as ONNX: OUT (the whole signal: noisy (batch, 1, n) -> clean) and OUT's "
        ".stream.onnx beside it (one block of whole frames and the state in, the block and the new state out); "
        "both carry the rate, level, frame and delay as metadata. cnn-denoise enhance/stream --engine onnx -m OUT "
        "runs them on onnxruntime.",
    )
    parser.add_argument("model", nargs="?", help=MODEL_HELP)
    parser.add_argument("-o", "--out", required=True, help="the .onnx file to write (and .stream.onnx beside it)")
    args = parser.parse_args(argv)
    from cnn_denoise.enhance.denoiser import Denoiser
    from cnn_denoise.models.export import export as write

    whole, step = write(Denoiser.load(args.model or default_model()), Path(args.out))
    print(f"wrote {whole} (whole signal) and {step} (a block at a time)", file=sys.stderr)
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
    voices = about.get("voices") if isinstance(about.get("voices"), dict) else None  # a split by voice
    held = ", ".join(map(str, (voices or {}).get("test", [])))
    lines = [
        f"model        {model}",
        f"network      {', '.join(f'{k} {v}' for k, v in spec_.items())}",
        f"trained on   {heard(d.audio)}",
        *([f"voices       {len(voices.get('train', []))} trained on; held out: {held}"] if voices else []),
        f"rate, level  {d.sample_rate} Hz, input RMS {d.input_rms:.3g}"
        + (f" (levels {about['level_db']} dBFS)" if about.get("level_db") else ""),
    ]
    engine = d.block_engine()
    lines.append(
        f"delay        {1000 * engine.latency / d.sample_rate:g} ms algorithmic ({engine.latency} samples; "
        f"frames of {engine.stride}); receptive field {1000 * d.model.receptive_field / d.sample_rate:g} ms"
    )
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
    "stream": {
        "interrupted": "what came before was written (every block is flushed)",
        "out_of_memory": "stream holds a few blocks whatever the input's length; close other programs and run it again",
    },
    "export": {
        "interrupted": "no file was left half-written; run it again",
        "out_of_memory": "close other programs and run it again",
    },
    "promote": {
        "interrupted": "the alias may not be set; run it again",
        "out_of_memory": "close other programs and run it again",
    },
}


# Every command: its name, the one line `cnn-denoise --help` gives it, and its function.
COMMANDS = {
    "enhance": ("denoise recordings (WAV, FLAC, MP3...) into a folder, optionally scored with DNSMOS", enhance),
    "stream": (
        "denoise audio from a pipe as it arrives (WAV or raw PCM, 10 ms blocks), e.g. from arecord or sox",
        stream,
    ),
    "export": ("write a model as ONNX: the whole signal, and a block at a time with its state", export),
    "info": ("what a model is, what it was trained on, its delay, and its SI-SDR on its own test set", info),
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

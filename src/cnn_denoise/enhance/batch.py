"""`cnn-denoise enhance` on a batch of recordings: every input checked before any work, each one
that can be read denoised and written whole, and the ones that cannot named at the end with exit
status 1, so one bad file in a folder costs only itself, never the batch's other recordings.

What stops the whole batch before any work: an input path that does not exist (a typo on the
command line), two outputs of one name, an output that is an input, a model that cannot be
loaded. What stops it midway: an interrupt, a full or read-only output disk."""

import sys
import time
from pathlib import Path

from cnn_denoise.common.errors import PipelineError, printable
from cnn_denoise.enhance import policy
from cnn_denoise.enhance.files import (
    TEMP_TAG,
    audio_files,
    audio_info,
    enhance_file,
    identity,
    output_path,
    refuse_collisions,
    refuse_inputs_as_outputs,
)


def notes(src: Path, dst: Path, info, done: dict) -> list[str]:
    """What a person should know of one output: its level scaled, its format or name changed."""
    from cnn_denoise.enhance.decoded import AvInfo

    said = []
    if done["scaled"] != 1.0:
        said.append(f"note: {policy.clipping_note(src.name, done['scaled'])}")
    if isinstance(info, AvInfo):
        said.append(
            f"note: {src.name}: decoded with PyAV ({info.codec}), written as {dst.name}, a {done['subtype']} WAV "
            "(enhance writes WAV files only)"
        )
    elif done["subtype"] != info.subtype:
        said.append(f"note: {src.name}: written as {done['subtype']} WAV (libsndfile cannot write its {info.subtype})")
    return said


def enhance(
    inputs: list[str], out_dir: Path, model: str | None = None, score: bool = False, engine="torch", threads=None
) -> int:
    """Denoise every recording of `inputs` into out_dir; 0 when all were, 1 when some could not be
    read or denoised (each named on its own `error:` line, after the others are done). `engine`,
    `threads`: what runs the model (backend.load)."""
    from tqdm import tqdm

    from cnn_denoise.common.atomic import clean_abandoned
    from cnn_denoise.enhance import backend
    from cnn_denoise.enhance.score import MEANING, score_line
    from cnn_denoise.enhance.which import default_model, verdict

    files, failed, infos = audio_files(inputs), {}, {}
    for src in files:  # every input looked at before any work: a bad one is known before the first output
        try:
            infos[src] = audio_info(src)
        except PipelineError as exc:
            failed[src] = str(exc)
    outputs = {src: output_path(out_dir, src, info) for src, info in infos.items()}
    refuse_collisions(outputs)
    refuse_inputs_as_outputs(files, list(outputs.values()))
    start, audio, enhanced = time.perf_counter(), 0.0, 0
    if infos:
        model = model or default_model()
        denoiser = backend.load(model, engine, threads)
        if line := verdict(model, denoiser.audio):
            print(printable(line), file=sys.stderr)  # a checkpoint's text: no escape sequence reaches the terminal
        for src, info in list(infos.items()):
            try:
                policy.ratio(info.samplerate, denoiser.sample_rate, str(src))
            except PipelineError as exc:
                failed[src] = str(exc)
                del infos[src]
        clean_abandoned(out_dir, TEMP_TAG, keep={identity(src) for src in files})
        start = time.perf_counter()
        for src, info in tqdm(list(infos.items()), desc="enhance", unit="file", file=sys.stderr, disable=None):
            try:
                done = enhance_file(denoiser, src, outputs[src], info)
            except PipelineError as exc:  # this recording's problem (undecodable past a point, NaN...): the next
                failed[src] = str(exc)
                continue
            audio, enhanced = audio + done["seconds"], enhanced + 1
            if score:
                try:
                    tqdm.write(score_line(src, outputs[src], info), file=sys.stderr)
                except PipelineError as exc:  # the output is written; only its score is missing
                    tqdm.write(f"note: {src.name}: not scored: {exc}", file=sys.stderr)
            for line in notes(src, outputs[src], info, done):
                tqdm.write(line, file=sys.stderr)
    if score and enhanced:
        print(MEANING, file=sys.stderr)
    if enhanced:
        took = time.perf_counter() - start
        print(
            f"enhanced {enhanced} file(s) into {out_dir}: {audio:.1f} s of audio in {took:.1f} s "
            f"(real-time factor {took / audio:.3f})" + (f"; {len(failed)} not, each below" if failed else ""),
            file=sys.stderr,
        )
    for src in files:
        if src in failed:
            print(f"error: {failed[src]}", file=sys.stderr)
    return 1 if failed else 0

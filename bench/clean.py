"""What a model takes from a voice when there is nothing to remove.

Clean held-out prompts of both voices, the English one the speech recipe trains on and the
French-Canadian one it never hears (bench/unseen.py's), go through each model as
`cnn-denoise enhance` runs it. The SI-SDR of the output against the clean speech says how much of
the voice the model damages: at high SNRs, where little noise is left, that damage rather than the
noise decides the score, and a voice the model does not know loses more of it. The segments are
drawn by the matrix's mixer (same length and levels), with white noise QUIET_DB below the speech,
as good as none. Writes bench/clean.json (--out names another file) and prints the table.

    python bench/clean.py [--out FILE] [NAME=MODEL ...]    (default: speech=models:/cnn-denoise@speech)

Needs what bench/unseen.py needs.
"""

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEGMENTS = 96  # per voice
QUIET_DB = 80.0  # dB SNR: the white noise the mixer must add, far below anything a model could hear


def main(argv) -> int:
    sys.path.insert(0, str(ROOT / "stages"))
    sys.path.insert(0, str(ROOT / "bench"))
    import speech_mix
    import unseen

    from cnn_denoise.common.atomic import write_json
    from cnn_denoise.config import choices
    from cnn_denoise.enhance.denoiser import Denoiser
    from cnn_denoise.scoring import matrix, quality
    from cnn_denoise.speech import mixer

    args = unseen.parser(__doc__).parse_intermixed_args(argv)
    models = dict(args.models) or {"speech": "models:/cnn-denoise@speech"}
    with tempfile.TemporaryDirectory() as tmp:
        p, unheard, corpus, split, mix = unseen.setting(Path(tmp), [choices.WHITE])  # only the quiet white noise
    quiet = speech_mix.scored(mix, choices.WHITE, (QUIET_DB, QUIET_DB))
    voices = {"own": {n: corpus["speech"][n] for n in split["test"]}, "unseen": unheard}
    sets = {v: mixer.mix_set(f"clean-{v}", t, {}, quiet, SEGMENTS, p.speech.seed)[0] for v, t in voices.items()}
    out = {"segments": SEGMENTS, "quiet_db": QUIET_DB, "voices": {}}
    for name, source in models.items():
        denoiser = Denoiser.load(source)
        out["voices"][name] = {
            v: quality.si_sdr_db(matrix.enhanced(denoiser, pairs["x"], unseen.RATE), pairs["y"])
            for v, pairs in sets.items()
        }
    write_json(args.out or ROOT / "bench" / "clean.json", out)
    print(f"{'model':16}{'own':>10}{'unseen':>10}   (SI-SDR of clean speech after the model, dB)")
    for name, row in out["voices"].items():
        print(f"{name:16}{row['own']:>10.2f}{row['unseen']:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""speech_mix: noisy speech in the lab's layout ({"x", "y"} float32 [Q, 1, N]) from the corpus.

    speech_mix.py train CORPUS TRAIN_OUT TEST_OUT SPLIT_OUT   training and validation sets
    speech_mix.py matrix CORPUS MATRIX_OUT                    one test set per noise kind and SNR band

Both split the corpus alike (speech.validation_voices, speech.split_seed): test sets speak only
held-out voices (or, for a corpus of one voice, held-out prompts).
"""

from cnn_denoise.common import numerics

numerics.pin()  # before torch and NumPy load: they pick their kernels then (same bits on every machine)

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from cnn_denoise.common.atomic import atomic_dir, clean_stale, save_torch, write_json
from cnn_denoise.common.errors import PipelineError, first_line, run_stage
from cnn_denoise.config import choices, params
from cnn_denoise.speech import mixer


def load_corpus(folder) -> dict:
    path = Path(folder) / "corpus.pt"
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise PipelineError(f"{path}: no corpus; run dvc repro (the speech_corpus stage writes it)") from None
    except Exception as exc:
        raise PipelineError(f"{path} is not a corpus ({first_line(exc)}); run dvc repro -f speech_corpus") from None


def mixer_weights(s) -> tuple:
    """speech.kind_weights of the kinds mixed (a kind not named: 1), or () when they are all alike."""
    return mixer.uneven(s.kind_weights.get(k, 1.0) for k in s.kinds)


def about(s, rate: int, split: dict | None = None) -> dict:
    """What a model trained on these segments has heard (its checkpoint keeps it; cnn-denoise info):
    with a split by voice, which voices it trained on and which were held out."""
    packages = ", ".join(f"{v.package} {v.version}" for v in s.voices)
    voice = f"folder {s.folder}" if s.folder else f"Debian {packages}"
    weights = mixer_weights(s)
    return {
        "speech": voice,
        "kinds": list(s.kinds),
        "snr_db": list(s.snr_db),
        "level_db": list(s.level_db),
        "speed": list(s.speed),
        **({"formant": list(s.formant)} if s.formant != [1.0, 1.0] else {}),
        **({"eq": s.eq} if s.eq else {}),
        **({"kind_weights": dict(zip(s.kinds, weights, strict=True))} if weights else {}),
        "rate": rate,
        **({"voices": split["voices"]} if split and "voices" in split else {}),
    }


def setup(p, corpus):
    s = p.speech
    if choices.MUSIC in s.kinds and not corpus.get("music"):
        raise PipelineError("speech.kinds has music but the corpus holds none; run dvc repro -f speech_corpus")
    if choices.RECORDED in s.kinds and not corpus.get("recorded"):
        raise PipelineError(f"speech.kinds has recorded but {s.folder}/noise holds no WAVs; add some or drop recorded")
    split = mixer.split_corpus(corpus["speech"], s.validation_voices, s.test_fraction, s.babble_fraction, s.split_seed)
    mix = mixer.Mix(
        kinds=tuple(s.kinds),
        snr_db=tuple(s.snr_db),
        level_db=tuple(s.level_db),
        babble_talkers=tuple(s.babble_talkers),
        seconds=s.seconds,
        rate=p.data.sample_rate,
        speed=tuple(s.speed),
        weights=mixer_weights(s),
        eq=s.eq,
        formant=tuple(s.formant),
    )
    return split, mix


def scored(mix: mixer.Mix, kind: str | None = None, band=None) -> mixer.Mix:
    """The Mix a test set is drawn with: the voice as recorded (no speed, formant or filter) and every kind
    alike, so scores stay comparable whatever the training mix; a matrix set's also holds one
    noise kind and one SNR band."""
    one = {"kinds": (kind,), "snr_db": tuple(band)} if kind else {}
    return dataclasses.replace(mix, speed=(1.0, 1.0), formant=(1.0, 1.0), weights=(), eq=0.0, **one)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["train", "matrix"])
    parser.add_argument("corpus")
    parser.add_argument("outs", nargs="+")
    args = parser.parse_args(argv)
    if len(args.outs) != (3 if args.what == "train" else 1):
        parser.error("train takes TRAIN_OUT TEST_OUT SPLIT_OUT, matrix takes MATRIX_OUT")
    clean_stale(*args.outs)
    p = params.load()
    s = p.speech
    corpus = load_corpus(args.corpus)
    split, mix = setup(p, corpus)
    clips = corpus["speech"]
    parts = {part: mixer.pools_for(corpus, split, part, s.test_fraction) for part in ("train", "test")}
    if args.what == "train":
        train, train_meta = mixer.mix_set(
            "train", {k: clips[k] for k in split["train"]}, parts["train"], mix, s.train_segments, s.seed
        )
        test, test_meta = mixer.mix_set(  # test sets hear the voice as recorded: scores stay comparable
            "test", {k: clips[k] for k in split["test"]}, parts["test"], scored(mix), s.test_segments, s.seed
        )
        save_torch(args.outs[0], train)
        save_torch(args.outs[1], test)
        write_json(
            args.outs[2],
            {
                "rate": mix.rate,
                "about": about(s, mix.rate, split),
                "prompts": split,
                "segments": {"train": train_meta, "test": test_meta},
            },
        )
        held = f"; held-out voices: {', '.join(split['voices']['test'])}" if "voices" in split else ""
        print(
            f"speech_mix: {s.train_segments} training and {s.test_segments} test segments of {s.seconds} s at "
            f"{mix.rate} Hz ({len(split['train'])} and {len(split['test'])} prompts{held})",
            file=sys.stderr,
        )
        return
    index = {}
    targets = {k: clips[k] for k in split["test"]}
    with atomic_dir(args.outs[0]) as tmp:
        for kind in s.kinds:
            for band in s.matrix.bands:
                name = mixer.set_name(kind, band)
                pairs, meta = mixer.mix_set(
                    name, targets, parts["test"], scored(mix, kind, band), s.matrix.segments, s.seed
                )
                save_torch(tmp / f"{name}.pt", pairs)
                index[name] = {"kind": kind, "snr_db": list(band), "file": f"{name}.pt", "segments": meta}
        write_json(tmp / "index.json", {"rate": mix.rate, "seconds": s.seconds, "sets": index})
    print(f"speech_mix: {len(index)} test sets of {s.matrix.segments} segments", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, fast_exit=True)
